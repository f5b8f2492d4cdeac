"""Rule seed_stage1: the hand-written seed records -> results/data/stage1/train.jsonl (+ rejects, stats)."""

from collections import Counter
from pathlib import Path

from darecipe.io import write_json, write_jsonl
from darecipe.runlog import run_script
from darecipe.seed import Rejects, stage1_records


def main(smk, log):
    rejects = Rejects()
    recs = stage1_records(Path(smk.input.seed), Path(smk.params.data_root), rejects)
    write_jsonl(smk.output.rejects, rejects.rows)
    write_jsonl(smk.output.train, recs)
    stats = {"records": len(recs), "rejected": len(rejects.rows), "reject_reasons": rejects.counts(),
             "by_role": dict(Counter(r["role"] for r in recs)), "by_source": dict(Counter(r["source"] for r in recs))}  # fmt: skip
    write_json(smk.output.stats, stats)
    log(f"{len(recs)} records written, {len(rejects.rows)} rejected {rejects.counts()}")


run_script(main, snakemake)  # noqa: F821
