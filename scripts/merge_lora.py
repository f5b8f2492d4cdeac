"""Rule merge_domain_lora: `swift export --merge_lora` of the LoRA adapters into a full HF checkpoint (atomic)."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from darecipe.runlog import run_script
from darecipe.swift_args import export_args
from darecipe.training import OFFLINE_ENV, carried, export


def main(smk, log):
    adapter, out = Path(smk.input.adapter), Path(smk.output[0])
    with tempfile.TemporaryDirectory(prefix="merge-", dir=out.parent) as tmp:
        merged = Path(tmp) / "merged"
        argv = [sys.executable, "-m", "swift.cli.export", *export_args(adapter, Path(smk.input.base), merged)]
        log(" ".join(argv))
        with open(smk.log[0], "a", encoding="utf-8") as f:
            rc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE_ENV}).returncode
        if rc != 0:
            raise RuntimeError(f"swift export exited with status {rc}; see {smk.log[0]}")
        metrics = json.loads((adapter / "metrics.json").read_text())
        export(
            merged,
            out,
            {**metrics, "merged_from": str(adapter), "base": smk.input.base},
            extra_files=carried(Path(smk.input.base)),
        )
    log(f"merged {adapter} into {out}")


run_script(main, globals().get("snakemake"))
