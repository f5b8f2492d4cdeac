"""Rule stage1_merge_set: a set's shards -> results/data/stage1/sets/<set>.arrow (+ rejects and metrics)."""

import json
from pathlib import Path

from darecipe.io import read_jsonl, write_json, write_jsonl
from darecipe.mix import write_set
from darecipe.runlog import run_script


def main(smk, log):
    records, rejects, llm = [], [], {}
    for shard in smk.input.shards:
        records += [{**rec, "provenance": "synthesised"} for _, rec in read_jsonl(shard)]
        base = Path(shard).with_suffix("")
        rejects += [rec for _, rec in read_jsonl(f"{base}.rejects.jsonl")]
        for k, v in json.loads(Path(f"{base}.metrics.json").read_text())["llm"].items():
            llm[k] = llm.get(k, 0) + v
    write_set(records, smk.output.records)
    write_jsonl(smk.output.rejects, rejects)
    reasons = {}
    for r in rejects:
        key = r["reason"].split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    write_json(
        smk.output.metrics, {"records": len(records), "rejected": len(rejects), "reject_reasons": reasons, "llm": llm}
    )
    log(
        f"{smk.wildcards.set}: {len(records)} records from {len(smk.input.shards)} shards, {len(rejects)} rejected {reasons}"
    )


run_script(main, globals().get("snakemake"))
