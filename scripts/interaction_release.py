"""Rule interaction_release: results/data/interaction/<category>_<N>.json for every category with trajectories,
and categories.json listing all twelve with their counts (empty ones are listed, never filled with fakes)."""

import json
from pathlib import Path

from darecipe.io import atomic_dir, read_jsonl, write_json
from darecipe.runlog import run_script


def main(smk, log):
    counts = {}
    with atomic_dir(smk.output[0]) as tmp:
        for path in map(Path, smk.input.sets):
            category = path.name.removesuffix(".jsonl")
            records = [{"messages": r["messages"], "id": r["id"], "category": category} for _, r in read_jsonl(path)]
            counts[category] = len(records)
            if records:
                (Path(tmp) / f"{category}_{len(records)}.json").write_text(
                    json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
                )
        write_json(Path(tmp) / "categories.json", counts)
    empty = sorted(c for c, n in counts.items() if n == 0)
    log(f"{sum(counts.values())} trajectories; empty categories: {', '.join(empty) or 'none'}")


run_script(main, globals().get("snakemake"))
