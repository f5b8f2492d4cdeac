"""Rule build_tiny_model: a random tiny Qwen3 on the real Qwen3 tokenizer, fully offline."""

from pathlib import Path

from darecipe.io import atomic_dir, write_json
from darecipe.runlog import run_script
from darecipe.tiny_model import TinySpec, build_tiny_qwen3


def main(smk, log):
    spec = TinySpec(**smk.params.spec)
    with atomic_dir(smk.output[0]) as tmp:
        info = build_tiny_qwen3(Path(tmp), spec)
        write_json(Path(tmp) / "build.json", {"spec": smk.params.spec, **info})
    log(f"built tiny Qwen3 at {smk.output[0]}: {info}")


run_script(main, globals().get("snakemake"))
