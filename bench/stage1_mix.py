"""Records per second of the stage-1 mix on a generated 421,060-record input (the paper's stage-1 size),
next to a plain json-module loop doing the same work, in one run. The last line printed is the figure.

Both read the 13 sets and their per-set token counts, drop over-length records, sample each role at the
configured shares with a seed, shuffle and write JSONL: the mix from the pipeline's Arrow sets (records kept
as JSON text, memory-mapped, written out verbatim), the plain loop from the released JSON arrays with json.load / json.dumps.
Target: the mix >= 10x the plain loop.

    .venv/bin/python bench/stage1_mix.py [--records 421060] [--workdir /tmp/mixbench]
"""

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import polars as pl

from darecipe.mix import mix, plain_mix, read_set, write_set
from darecipe.sets import SET_ROLES, STAGE1_SETS

# The released stage-1 counts (RECIPE §3), scaled to --records.
COUNTS = {name: s.released for name, s in STAGE1_SETS.items()}
RATIOS = {"general_reasoning": 0.2, "structured_knowledge": 0.4, "data_science": 0.35, "file": 0.05}


def generate(root: Path, total: int) -> list[tuple[str, str, Path, Path]]:
    rng = random.Random(0)
    scale = total / sum(COUNTS.values())
    out = []
    for name, n in COUNTS.items():
        n = max(1, round(n * scale))
        recs, lengths = [], []
        for i in range(n):
            q = f"Question {i} of {name}: " + " ".join(rng.choice(("table", "value", "year", "sum", "rate")) for _ in range(rng.randint(5, 40)))
            a = "<Analyze>" + " ".join(rng.choice(("read", "compare", "add", "check")) for _ in range(rng.randint(10, 120))) + "</Analyze><Answer>42</Answer>"
            recs.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}], "id": f"{name}-{i}", "source": name})
            lengths.append(rng.randint(50, 9000))
        path = root / f"{name}.json"  # the released form, read by the plain loop
        path.write_text(json.dumps(recs))
        write_set(recs, root / f"{name}.arrow")  # the pipeline's form, read by the mix
        tok = root / f"{name}.tokens.parquet"
        pl.DataFrame({"row": range(n), "n_tokens": lengths}, schema={"row": pl.UInt32, "n_tokens": pl.UInt32}).write_parquet(tok)
        out.append((name, SET_ROLES[name], path, tok))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=421060)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="mixbench-"))
    root.mkdir(parents=True, exist_ok=True)
    sets = generate(root, args.records)
    n_in = sum(pl.read_parquet(t).height for *_, t in sets)
    os.sync()  # start both timings with no dirty pages from the generation waiting to be written back

    t0 = time.perf_counter()
    frames = [(name, role, read_set(path.with_suffix(".arrow")), pl.read_parquet(tok)) for name, role, path, tok in sets]
    out, stats = mix(frames, RATIOS, None, False, 0, 8192)
    out.write_jsonl(root / "mix.jsonl")
    t_mix = time.perf_counter() - t0
    os.sync()

    t0 = time.perf_counter()
    plain = [(name, role, str(path), pl.read_parquet(tok)["n_tokens"].to_list()) for name, role, path, tok in sets]
    n_plain = plain_mix(plain, RATIOS, None, False, 0, 8192, root / "plain.jsonl")
    t_plain = time.perf_counter() - t0

    print(f"input: {n_in} records in {len(sets)} sets; mix kept {stats['records']} (plain loop {n_plain})")
    print(f"pipeline mix (Arrow maps + polars index + writev): {t_mix:.2f} s = {n_in / t_mix:,.0f} records/s")
    print(f"plain json loop: {t_plain:.2f} s = {n_in / t_plain:,.0f} records/s")
    print(f"stage1_mix: {n_in / t_mix:,.0f} records/s, {t_plain / t_mix:.1f}x the plain json loop")


if __name__ == "__main__":
    main()
