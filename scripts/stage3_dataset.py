"""Rule stage3_dataset: the RL parquet sets (SkyRL schema) -> the JSONL rows ms-swift GRPO reads."""

import pyarrow.parquet as pq

from darecipe.io import write_jsonl
from darecipe.runlog import run_script


def main(smk, log):
    rows = []
    for path in smk.input.sets:
        for r in pq.read_table(path).to_pylist():
            spec = r["reward_spec"]
            rows.append(
                {
                    "messages": r["prompt"],
                    "method": spec["method"],
                    "ground_truth": spec["ground_truth"],
                    "data": r["data"],
                    "workspace_id": r["workspace_id"],
                    "task": r["input_seq"],
                    "provenance": r.get("provenance") or "synthesised",
                }
            )
    n = write_jsonl(smk.output[0], rows)
    log(f"{n} RL tasks from {len(smk.input.sets)} sets")


run_script(main, globals().get("snakemake"))
