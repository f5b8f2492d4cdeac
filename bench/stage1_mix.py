"""Records per second of the stage-1 mix on a generated 421,060-record input (the paper's stage-1 size),
next to a plain json-module loop doing the same work, in one run. The last line printed is the figure.

Both read the 13 sets and their per-set token counts, drop over-length records, keep every other record (the
paper trained stage 1 on all 421,060; with --ratios, sample each role at those shares instead), shuffle with a
seed and write JSONL: the mix from the pipeline's Arrow sets (records kept as JSON text, memory-mapped, written
out verbatim), the plain loop from the released JSON arrays with json.load / json.dumps. It prints the shares by
role of what was kept. Target: the mix >= 10x the plain loop.

    .venv/bin/python bench/stage1_mix.py [--records 421060] [--ratios 0.2,0.4,0.35,0.05] [--workdir /tmp/mixbench]
"""

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import polars as pl

from darecipe.mix import mix, read_set, write_set
from darecipe.sets import SET_ROLES, STAGE1_SETS

# The released stage-1 counts (docs/recipe.md §3), scaled to --records.
COUNTS = {name: s.released for name, s in STAGE1_SETS.items()}
ROLES = ("general_reasoning", "structured_knowledge", "data_science", "file")


def plain_mix(set_files, ratios, seed, max_tokens, out_path) -> int:
    """The same mix with the json module and Python loops: every record under the length limit, or (with
    `ratios`) each role sampled without replacement at its share of the largest total the records allow."""
    records = []
    for name, role, path, lengths in set_files:
        with open(path, encoding="utf-8") as f:
            for rec, n in zip(json.load(f), lengths):
                if n <= max_tokens:
                    records.append({**rec, "set": name, "role": role, "n_tokens": n})
    rng = random.Random(seed)
    if ratios:
        by_role: dict[str, list] = {}
        for r in records:
            by_role.setdefault(r["role"], []).append(r)
        norm = sum(ratios.values())
        total = int(min(len(by_role.get(r, [])) / (s / norm) for r, s in ratios.items()))
        records = [
            x
            for role, share in sorted(ratios.items())
            for x in rng.sample(by_role.get(role, []), round(total * share / norm))
        ]
    rng.shuffle(records)
    with open(out_path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return len(records)


def generate(root: Path, total: int) -> list[tuple[str, str, Path, Path]]:
    rng = random.Random(0)
    scale = total / sum(COUNTS.values())
    out = []
    for name, n in COUNTS.items():
        n = max(1, round(n * scale))
        recs, lengths = [], []
        for i in range(n):
            q = f"Question {i} of {name}: " + " ".join(
                rng.choice(("table", "value", "year", "sum", "rate")) for _ in range(rng.randint(5, 40))
            )
            a = (
                "<Analyze>"
                + " ".join(rng.choice(("read", "compare", "add", "check")) for _ in range(rng.randint(10, 120)))
                + "</Analyze><Answer>42</Answer>"
            )
            recs.append(
                {
                    "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                    "id": f"{name}-{i}",
                    "source": name,
                }
            )
            lengths.append(rng.randint(50, 9000))
        path = root / f"{name}.json"  # the released form, read by the plain loop
        path.write_text(json.dumps(recs))
        write_set(recs, root / f"{name}.arrow")  # the pipeline's form, read by the mix
        tok = root / f"{name}.tokens.parquet"
        pl.DataFrame(
            {"row": range(n), "n_tokens": lengths}, schema={"row": pl.UInt32, "n_tokens": pl.UInt32}
        ).write_parquet(tok)
        out.append((name, SET_ROLES[name], path, tok))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=421060)
    ap.add_argument("--ratios", default=None, help="shares of " + ",".join(ROLES) + " (default: keep every record)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    ratios = dict(zip(ROLES, map(float, args.ratios.split(",")))) if args.ratios else None
    root = args.workdir or Path(tempfile.mkdtemp(prefix="mixbench-"))
    root.mkdir(parents=True, exist_ok=True)
    sets = generate(root, args.records)
    n_in = sum(pl.read_parquet(t).height for *_, t in sets)
    os.sync()  # start both timings with no dirty pages from the generation waiting to be written back

    t0 = time.perf_counter()
    frames = [
        (name, role, read_set(path.with_suffix(".arrow")), pl.read_parquet(tok)) for name, role, path, tok in sets
    ]
    out, stats = mix(frames, ratios, None, False, 0, 8192)
    out.write_jsonl(root / "mix.jsonl")
    t_mix = time.perf_counter() - t0
    os.sync()

    t0 = time.perf_counter()
    plain = [(name, role, str(path), pl.read_parquet(tok)["n_tokens"].to_list()) for name, role, path, tok in sets]
    n_plain = plain_mix(plain, ratios, 0, 8192, root / "plain.jsonl")
    t_plain = time.perf_counter() - t0

    print(
        f"input: {n_in} records in {len(sets)} sets; mix kept {stats['records']} (plain loop {n_plain}), "
        f"{stats['dropped_over_length']} over 8,192 tokens dropped"
    )
    shares = ", ".join(f"{role} {n:,} ({100 * n / stats['records']:.1f} %)" for role, n in stats["by_role"].items())
    print(f"shares by role ({'resampled to --ratios' if ratios else 'every record kept'}): {shares}")
    print(f"pipeline mix (Arrow maps + polars index + writev): {t_mix:.2f} s = {n_in / t_mix:,.0f} records/s")
    print(f"plain json loop: {t_plain:.2f} s = {n_in / t_plain:,.0f} records/s")
    print(f"stage1_mix: {n_in / t_mix:,.0f} records/s, {t_plain / t_mix:.1f}x the plain json loop")


if __name__ == "__main__":
    main()
