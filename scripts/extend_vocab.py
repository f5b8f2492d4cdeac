"""Rule extend_vocab: base checkpoint + the ten action tags, each one token; writes tags.json and chat_format.json
(ms-swift model type and template), with a chat template that gives the same token ids as ms-swift's."""

from pathlib import Path

from darecipe.io import atomic_dir
from darecipe.runlog import run_script
from darecipe.vocab import extend_vocab


def main(smk, log):
    with atomic_dir(smk.output[0]) as tmp:
        info = extend_vocab(
            Path(smk.input[0]),
            Path(tmp),
            smk.params.vocab["special_tokens"],
            smk.params.vocab["init"],
            chat=dict(smk.params.chat),
        )
    log(
        f"extended vocabulary of {smk.input[0]}: --model_type {info['model_type']} --template {info['template']} "
        f"({info['chat_template']} chat template); {info}"
    )


run_script(main, globals().get("snakemake"))
