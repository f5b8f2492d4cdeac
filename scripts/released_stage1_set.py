"""Rule released_stage1_set: reasoning/<set>_<N>.json of the release -> results/data/stage1/released/<set>.arrow
(+ rejects and metrics): every record checked (schema, tag structure), the count checked against N."""

from pathlib import Path

from darecipe.io import write_json, write_jsonl
from darecipe.mix import write_set
from darecipe.released import reasoning_file, released_records
from darecipe.runlog import run_script


def main(smk, log):
    name = smk.wildcards.set
    path, expected = reasoning_file(Path(smk.params.root), name)
    records, rejects, read = released_records(path, name, expected, "set", False, smk.params.strict)
    for r in records:
        r["source"] = name
    write_set(records, smk.output.records)
    write_jsonl(smk.output.rejects, rejects)
    write_json(
        smk.output.metrics,
        {
            "set": f"released:{name}",
            "file": str(path),
            "read": read,
            "records": len(records),
            "rejected": len(rejects),
            "reject_reasons": rejects.counts(),
        },
    )
    log(f"released {name}: {len(records)} of {read} records from {path}, {len(rejects)} rejected {rejects.counts()}")
    for r in rejects[:50]:
        log(f"  rejected {r['id']} ({r['where']}): {r['reason']}")


run_script(main, globals().get("snakemake"))
