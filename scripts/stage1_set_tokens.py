"""Rule stage1_set_tokens: token length of every record of a set, with the training tokenizer."""

from pathlib import Path

from darecipe.io import atomic_path
from darecipe.mix import count_tokens
from darecipe.runlog import run_script


def main(smk, log):
    counts = count_tokens(smk.input.records, Path(smk.input.model) / "tokenizer.json", threads=smk.threads)
    with atomic_path(smk.output[0]) as tmp:
        counts.write_parquet(tmp)
    total = int(counts["n_tokens"].sum()) if counts.height else 0
    log(f"{smk.wildcards.set}: {counts.height} records, {total} tokens ({smk.threads} threads)")


run_script(main, globals().get("snakemake"))
