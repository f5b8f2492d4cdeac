"""Rule stage1_mix: the stage-1 sets -> results/data/stage1/train.jsonl at the configured shares by role."""

import polars as pl

from darecipe.io import atomic_path, write_json
from darecipe.mix import mix, read_set
from darecipe.runlog import run_script


def main(smk, log):
    cfg = smk.params.mix
    sets = []
    for path, tok, (name, role) in zip(smk.input.sets, smk.input.tokens, smk.params.sets):
        df = read_set(path)
        if df.num_rows == 0:
            log(f"{name}: empty, skipped")
            continue
        sets.append((name, role, df, pl.read_parquet(tok)))
    out, stats = mix(sets, cfg["ratios"], cfg["total"], cfg["replace"], cfg["seed"], smk.params.max_tokens)
    with atomic_path(smk.output.train) as tmp:
        out.write_jsonl(tmp)
    write_json(smk.output.stats, stats)
    log(
        f"{stats['records']} records; by role {stats['by_role']}; dropped over {stats['max_tokens']} tokens: "
        f"{stats['dropped_over_length']}"
    )


run_script(main, globals().get("snakemake"))
