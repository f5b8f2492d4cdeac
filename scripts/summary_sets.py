"""Rule summary_sets: the summary-prefix and summary-only sets (JSONL, every sample) and, with the multi-turn
traces, a seeded train/val split by trace (all samples of a trace on one side) written as parquet for ms-swift."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from darecipe.io import atomic_path, read_jsonl, write_json, write_jsonl
from darecipe.runlog import run_script
from darecipe.summary import (
    multiturn_train_record,
    split_records,
    summary_only_record,
    summary_prefix_record,
    val_traces,
)

SCHEMA = pa.schema(
    [
        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("id", pa.string()),
        ("trace_id", pa.string()),
        ("step", pa.int32()),
    ]
)


def write_parquet(records, path):
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(records, schema=SCHEMA), tmp)


def main(smk, log):
    traces = [rec for _, rec in read_jsonl(smk.input.multiturn)]
    records = [rec for _, rec in read_jsonl(smk.input.records)]
    sets = {
        "summary_prefix": [summary_prefix_record(r) for r in records],
        "summary_only": [summary_only_record(r) for r in records],
        "multiturn": [multiturn_train_record(t) for t in traces],
    }
    write_jsonl(smk.output.summary_prefix, sets["summary_prefix"])
    write_jsonl(smk.output.summary_only, sets["summary_only"])
    val = val_traces([t["id"] for t in traces], smk.params.val_ratio, smk.params.seed)
    out = {Path(p).name.removesuffix(".parquet"): p for p in smk.output.parquet}
    counts = {}
    for name, recs in sets.items():
        train, held = split_records(recs, val)
        write_parquet(train, out[f"{name}_train"])
        write_parquet(held, out[f"{name}_val"])
        counts[name] = {"train": len(train), "val": len(held)}
        log(f"{name}: {len(train)} train, {len(held)} val")
    write_json(
        smk.output.split,
        {
            "val_ratio": smk.params.val_ratio,
            "seed": smk.params.seed,
            "traces": len(traces),
            "val_traces": sorted(val),
            "records": counts,
        },
    )
    log(f"{len(traces)} traces, {len(val)} held out for validation: {', '.join(sorted(val)) or 'none'}")


run_script(main, globals().get("snakemake"))
