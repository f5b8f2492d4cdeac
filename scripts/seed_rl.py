"""Rule seed_rl: seed RL tasks -> results/data/rl/{qa,datatask,research}.parquet + one workspace per task."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from darecipe.io import atomic_dir, atomic_path
from darecipe.runlog import run_script
from darecipe.seed import rl_rows


def main(smk, log):
    with atomic_dir(smk.output.workspaces) as tmp:
        rows = rl_rows(Path(smk.input.seed), Path(smk.params.data_root), Path(tmp))
    for name, path in smk.output.items():
        if name == "workspaces":
            continue
        with atomic_path(path) as out:
            pq.write_table(pa.Table.from_pylist(rows[name]), out)
        log(f"{name}: {len(rows[name])} tasks -> {path}")


run_script(main, snakemake)  # noqa: F821
