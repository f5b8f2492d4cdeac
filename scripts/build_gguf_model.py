"""Rule build_gguf_model: an HF checkpoint dequantised from a GGUF file that an installed package ships, offline."""

from pathlib import Path

from darecipe.gguf_model import build_from_gguf, packaged_file
from darecipe.io import atomic_dir, write_json
from darecipe.runlog import run_script


def main(smk, log):
    src = packaged_file(smk.params.gguf["package"], smk.params.gguf["file"])
    with atomic_dir(smk.output[0]) as tmp:
        info = build_from_gguf(src, Path(tmp))
        write_json(Path(tmp) / "build.json", {"source": smk.params.gguf, **info})
    log(f"built {smk.output[0]} from {src}: {info}")


run_script(main, globals().get("snakemake"))
