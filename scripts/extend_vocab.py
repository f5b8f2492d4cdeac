"""Rule extend_vocab: base checkpoint + the ten action tags, each one token; writes tags.json."""

from pathlib import Path

from darecipe.io import atomic_dir
from darecipe.runlog import run_script
from darecipe.vocab import extend_vocab


def main(smk, log):
    with atomic_dir(smk.output[0]) as tmp:
        info = extend_vocab(Path(smk.input[0]), Path(tmp), smk.params.vocab["special_tokens"], smk.params.vocab["init"])
    log(f"extended vocabulary of {smk.input[0]}: {info}")


run_script(main, snakemake)  # noqa: F821
