"""Rule stage2_data: the per-category trajectory files of data.source -> results/data/stage2/train.jsonl, one
ms-swift `messages` record a line with id, category and provenance (released or synthesised), and its counts."""

from pathlib import Path

from darecipe.io import read_jsonl, write_json, write_jsonl
from darecipe.runlog import run_script


def main(smk, log):
    counts: dict[str, dict[str, int]] = {}

    def records():
        for path in map(Path, smk.input.sets):
            released = path.parent.name == "interaction" and path.parent.parent.name == "released"
            category = path.name.removesuffix(".jsonl")
            for _, rec in read_jsonl(path):
                provenance = rec.get("provenance") or ("released" if released else "synthesised")
                by = counts.setdefault(provenance, {})
                by[category] = by.get(category, 0) + 1
                yield {"messages": rec["messages"], "id": rec["id"], "category": category, "provenance": provenance}

    n = write_jsonl(smk.output.train, records())
    write_json(
        smk.output.stats,
        {"records": n, "by_provenance": {k: sum(v.values()) for k, v in counts.items()}, "by_category": counts},
    )
    log(f"{n} trajectories: {', '.join(f'{k} {sum(v.values())}' for k, v in counts.items()) or 'none'}")


run_script(main, globals().get("snakemake"))
