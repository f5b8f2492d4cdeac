"""Rule eval_summary: one table across stages (results/eval/summary.md) and the same numbers as JSON."""

import json
from pathlib import Path

from darecipe.evaluation import summary_markdown
from darecipe.io import write_json, write_text
from darecipe.runlog import run_script


def main(smk, log):
    results = {}
    for path in smk.input.metrics:
        m = json.loads(Path(path).read_text())
        results[m["stage"]] = m
    md = "# Evaluation on held-out tasks\n\n" + summary_markdown(results)
    notes = json.loads(Path(smk.input.check).read_text())["notes"]
    md += "".join(f"\n- {n}" for n in notes) + ("\n" if notes else "")
    md += (
        "\nAccuracy: WikiTQ by denotation (official evaluator), other sources with numeric tolerance. "
        "Rounds: generation turns per task. Code success: executed blocks without error.\n"
    )
    write_text(smk.output.md, md)
    write_json(smk.output.json, results)
    log(md)


run_script(main, globals().get("snakemake"))
