"""Rule released_rl_sets: RL/{qa,datatask,reseach}.parquet of the release -> results/data/released/rl/<set>.parquet
in this pipeline's RL schema. A row whose workspace is not in data.zip (the release's issue #68: research/
mondial_geo) is a counted reject naming the file and row, as is a row with no prompt or an unknown reward method."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from darecipe.io import InputError, Rejects, atomic_path, write_json, write_jsonl
from darecipe.released import normalise_rl_row, rl_file
from darecipe.runlog import run_script
from darecipe.sets import RL_SETS
from darecipe.synthesis import RL_PARQUET_SCHEMA


def main(smk, log):
    root, workspaces = Path(smk.params.root), Path(smk.input.workspaces)
    rejects, counts = Rejects(), {}
    for name in RL_SETS:
        path = rl_file(root, name)
        try:
            rows = pq.read_table(path).to_pylist()
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"{path}: not a readable parquet file ({e})") from None
        kept = []
        for i, row in enumerate(rows):
            norm, reason = normalise_rl_row(row, workspaces, dict(smk.params.folders))
            if reason:
                rid = str(row.get("workspace_id") or f"{name}-{i}")
                rejects.add(f"{path}:row {i}", rid, reason)
            else:
                kept.append(norm)
        with atomic_path(smk.output[name]) as tmp:
            pq.write_table(pa.Table.from_pylist(kept, schema=RL_PARQUET_SCHEMA), tmp)
        counts[name] = {"file": str(path), "read": len(rows), "tasks": len(kept)}
        log(f"{name}: {len(kept)} of {len(rows)} tasks from {path}")
    write_jsonl(smk.output.rejects, rejects)
    write_json(
        smk.output.metrics,
        {"category": "released:RL", "sets": counts, "rejected": len(rejects), "reject_reasons": rejects.counts()},
    )
    log(f"rejected {len(rejects)} rows {rejects.counts()}")
    for r in rejects[:100]:
        log(f"  rejected {r['where']} ({r['id']}): {r['reason']}")


run_script(main, globals().get("snakemake"))
