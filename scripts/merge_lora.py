"""Rule merge_domain_lora: `swift export --merge_lora` of the LoRA adapters into a full HF checkpoint (atomic)."""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from darecipe.io import atomic_dir, write_json
from darecipe.runlog import run_script
from darecipe.training import OFFLINE_ENV


def main(smk, log):
    import os

    adapter, out = Path(smk.input.adapter), Path(smk.output[0])
    with tempfile.TemporaryDirectory(prefix="merge-", dir=out.parent) as tmp:
        merged = Path(tmp) / "merged"
        argv = [sys.executable, "-m", "swift.cli.export", "--adapters", str(adapter), "--model", smk.input.base,
                "--merge_lora", "true", "--output_dir", str(merged)]  # fmt: skip
        log(" ".join(argv))
        with open(smk.log[0], "a", encoding="utf-8") as f:
            rc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE_ENV}).returncode
        if rc != 0:
            raise RuntimeError(f"swift export exited with status {rc}; see {smk.log[0]}")
        with atomic_dir(out) as dest:
            for p in merged.iterdir():
                (shutil.copytree if p.is_dir() else shutil.copy2)(p, dest / p.name)
            for extra in ("tags.json",):
                src = Path(smk.input.base) / extra
                if src.is_file() and not (dest / extra).exists():
                    shutil.copy2(src, dest / extra)
            metrics = json.loads((adapter / "metrics.json").read_text())
            write_json(dest / "metrics.json", {**metrics, "merged_from": str(adapter), "base": smk.input.base})
    log(f"merged {adapter} into {out}")


run_script(main, snakemake)  # noqa: F821
