"""Rule rl_sets: the synthesised RL tasks -> results/data/rl/<set>.parquet, one set per reward method (qa, datatask,
research; darecipe.reward.METHODS), in SkyRL's schema, with one workspace per task under
results/data/rl/workspaces/<data>/<workspace_id>/."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from darecipe.io import atomic_dir, atomic_path, read_jsonl
from darecipe.runlog import run_script
from darecipe.sets import RL_SETS
from darecipe.synthesis import RL_PARQUET_SCHEMA, RL_SET_OF, copy_workspace_files


def main(smk, log):
    rows = {name: [] for name in RL_SETS}
    sources = {Path(w).name: Path(w) for w in smk.input.workspaces}
    with atomic_dir(smk.output.workspaces) as tmp:
        for path in smk.input.sets:
            for _, rec in read_jsonl(path):
                row = {**rec["row"], "provenance": "synthesised"}
                copy_workspace_files(sources[row["data"]], Path(tmp) / row["data"] / row["workspace_id"])
                rows[RL_SET_OF[row["reward_spec"]["method"]]].append(row)
    for name, rl_rows in rows.items():
        path = smk.output[name]
        with atomic_path(path) as out:
            pq.write_table(pa.Table.from_pylist(rl_rows, schema=RL_PARQUET_SCHEMA), out)
        log(f"{name}: {len(rl_rows)} tasks -> {path}")


run_script(main, globals().get("snakemake"))
