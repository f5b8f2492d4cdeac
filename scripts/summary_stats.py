"""Rule summary_stats: per-sample token counts of every summary-module set (the training tokenizer), the
comparison of the seed: mean prompt tokens with the full context (summary-prefix) and with the summary alone."""

from pathlib import Path

import pyarrow.parquet as pq
from tokenizers import Tokenizer

from darecipe.io import write_json
from darecipe.runlog import run_script
from darecipe.summary import token_stats


def main(smk, log):
    tok = Tokenizer.from_file(str(Path(smk.input.model) / "tokenizer.json"))

    def encode(text):
        return tok.encode(text, add_special_tokens=False).ids

    stats, by_set = {}, {}
    for path in map(Path, smk.input.sets):
        name = path.name.removesuffix(".parquet")
        records = pq.read_table(path).to_pylist()
        stats[name] = token_stats(records, encode)
        by_set.setdefault(name.rsplit("_", 1)[0], []).extend(records)
        log(f"{name}: {stats[name]}")
    overall = {name: token_stats(records, encode) for name, records in by_set.items()}
    full, short = overall["summary_prefix"]["prompt_tokens_mean"], overall["summary_only"]["prompt_tokens_mean"]
    reduction = round(1 - short / full, 4) if full and short is not None else None
    write_json(
        smk.output[0],
        {"tokenizer": str(smk.input.model), "sets": overall, "splits": stats, "prompt_token_reduction": reduction},
    )
    log(f"mean prompt tokens: full context {full}, summary only {short} (reduction {reduction})")


run_script(main, globals().get("snakemake"))
