"""Rule seed_interaction: seed trajectories with every <Code> block really run -> interaction/<category>_N.json."""

import json
from pathlib import Path

from darecipe.io import write_jsonl, write_text
from darecipe.runlog import run_script
from darecipe.sandbox import SandboxLimits, describe_isolation
from darecipe.seed import Rejects, interaction_records


def main(smk, log):
    rejects = Rejects()
    log(describe_isolation(SandboxLimits(**smk.params.sandbox)))
    by_cat = interaction_records(
        Path(smk.input.seed), Path(smk.params.data_root), SandboxLimits(**smk.params.sandbox), rejects,
        progress=lambda rid: log(f"executed {rid}"),
    )  # fmt: skip
    write_jsonl(smk.output.rejects, rejects)
    for r in rejects:
        log(f"rejected {r['id']} ({r['where']}): {r['reason']}")
    expected = dict(smk.params.counts)
    for path in smk.output.sets:
        name = Path(path).stem
        category, n = name.rsplit("_", 1)
        recs = by_cat.get(category, [])
        if len(recs) != int(n):
            raise RuntimeError(f"{category}: {len(recs)} trajectories survived, file name promises {n}")
        write_text(path, json.dumps(recs, ensure_ascii=False, indent=1) + "\n")
    empty = sorted(set(expected) - set(by_cat))
    log(f"{sum(map(len, by_cat.values()))} trajectories in {len(by_cat)} categories; {len(rejects)} rejected")
    if empty:
        log(f"categories with no seed trajectory yet: {', '.join(empty)}")


run_script(main, snakemake)  # noqa: F821
