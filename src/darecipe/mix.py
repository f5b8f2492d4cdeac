"""The stage-1 mix: sets -> one seeded SFT file with configured shares by role (polars, no per-record Python).

Token lengths are counted once per set by `count_tokens` (real tokenizer, batched in Rust) and stored beside the
set, so changing the mix ratios reshuffles without re-tokenising.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

def write_set(records: list[dict], path: str | Path) -> None:
    """A set as parquet: one row per record, the record itself as one JSON line (its text ends in a newline),
    so the mix writes the chosen records out byte for byte."""
    from .io import atomic_path

    df = pl.DataFrame(
        {"id": [str(r.get("id", i)) for i, r in enumerate(records)],
         "record": [json.dumps(r, ensure_ascii=False) + "\n" for r in records]},
        schema={"id": pl.String, "record": pl.String},
    )  # fmt: skip
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, compression="lz4")


def read_set(path: str | Path) -> pl.DataFrame:
    return pl.read_parquet(path)


def set_records(path: str | Path) -> list[dict]:
    return [json.loads(r) for r in read_set(path)["record"]]


def write_json_array(path_in: str | Path, path_out: str | Path) -> int:
    """The released form of a set: a JSON array of records."""
    records = read_set(path_in)["record"].to_list()
    Path(path_out).write_text("[\n" + ",\n".join(r.rstrip("\n") for r in records) + "\n]\n", encoding="utf-8")
    return len(records)


def count_tokens(set_path: str | Path, tokenizer_json: str | Path) -> pl.DataFrame:
    """(row, n_tokens) for every record of a set, with the training tokenizer, on the chat text as the Qwen3
    template lays it out."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    texts = [
        "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in rec["messages"])
        for rec in set_records(set_path)
    ]
    lengths = [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)] if texts else []
    return pl.DataFrame({"row": range(len(lengths)), "n_tokens": lengths}, schema={"row": pl.UInt32, "n_tokens": pl.UInt32})


def mix(
    sets: list[tuple[str, str, pl.DataFrame, pl.DataFrame]],
    ratios: dict[str, float] | None,
    total: int | None,
    replace: bool,
    seed: int,
    max_tokens: int,
) -> tuple[pl.DataFrame, dict]:
    """`sets`: (name, role, records, token counts). Returns the shuffled mix (id, record, set, role, n_tokens)
    and its statistics.

    With `ratios`, each role gets round(total × share) records, sampled without replacement unless `replace`;
    without `total`, the total is the largest one the available records allow at those shares.
    Without `ratios`, every record is kept. Records longer than `max_tokens` are dropped first and counted.
    Sampling works on a light index (set, row, role, length); only the chosen records' text is copied.
    """
    if not sets:
        raise ValueError("no stage-1 sets to mix")
    index_parts, texts, ids = [], [], []
    offset = 0
    for name, role, df, toks in sets:
        if df.height != toks.height:
            raise ValueError(f"set {name}: {df.height} records but {toks.height} token counts (stale token file?)")
        index_parts.append(pl.DataFrame({
            "g": pl.int_range(offset, offset + df.height, dtype=pl.UInt32, eager=True),
            "set": pl.Series([name] * df.height, dtype=pl.Categorical),
            "role": pl.Series([role] * df.height, dtype=pl.Categorical),
            "n_tokens": toks["n_tokens"],
        }))  # fmt: skip
        texts.append(df["record"])
        ids.append(df["id"])
        offset += df.height
    index = pl.concat(index_parts)
    kept = index.filter(pl.col("n_tokens") <= max_tokens)
    dropped = index.height - kept.height
    available = {str(k): v for k, v in kept.group_by("role").len().iter_rows()}
    if ratios:
        shares = {r: v for r, v in ratios.items() if v > 0}
        norm = sum(shares.values())
        shares = {r: v / norm for r, v in shares.items()}
        if total is None:
            total = int(min(available.get(r, 0) / v for r, v in shares.items()))
        parts = []
        for i, (role, share) in enumerate(sorted(shares.items())):
            want = round(total * share)
            if want == 0:
                continue
            pool = kept.filter(pl.col("role") == role)
            if pool.height == 0:
                raise ValueError(f"the mix needs {want} '{role}' records and there are none")
            if want > pool.height and not replace:
                raise ValueError(f"the mix needs {want} '{role}' records, only {pool.height} exist (set mix.replace)")
            parts.append(pool.sample(n=want, with_replacement=replace, seed=seed + i))
        chosen = pl.concat(parts)
    else:
        chosen = kept
    chosen = chosen.sample(fraction=1.0, shuffle=True, seed=seed)
    g = chosen["g"]
    out = chosen.select(
        pl.Series("id", pl.concat(ids, rechunk=False).gather(g)),
        pl.Series("record", pl.concat(texts, rechunk=False).gather(g)),
        pl.col("set").cast(pl.String),
        pl.col("role").cast(pl.String),
        "n_tokens",
    )
    stats = {
        "records": out.height,
        "dropped_over_length": dropped,
        "max_tokens": max_tokens,
        "by_role": dict(sorted(out.group_by("role").len().iter_rows())),
        "by_set": dict(sorted(out.group_by("set").len().iter_rows())),
        "available_by_role": dict(sorted(available.items())),
        "tokens": _token_stats(out["n_tokens"]),
        "ratios": ratios,
    }
    return out, stats


def _token_stats(s: pl.Series) -> dict:
    if s.len() == 0:
        return {}
    return {"total": int(s.sum()), "mean": round(float(s.mean()), 1), "p50": int(s.median()), "max": int(s.max())}


def write_jsonl(df: pl.DataFrame, path: str | Path) -> None:
    """One ms-swift `messages` record per line: the chosen records' JSON lines written verbatim, in one write
    of the column's Arrow data buffer. Roles and lengths are in the mix's stats."""
    arr = df["record"].to_arrow()
    if arr.num_chunks if hasattr(arr, "num_chunks") else False:
        arr = arr.combine_chunks()
    offsets = arr.buffers()[1]
    data = arr.buffers()[2]
    import numpy as np

    off = np.frombuffer(offsets, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    with open(path, "wb") as f:
        if len(arr):
            f.write(memoryview(data)[off[0] : off[-1]])


def plain_mix(set_files: list[tuple[str, str, str, list[int]]], ratios, total, replace, seed, max_tokens, out_path):
    """The same mix with the json module and Python loops (bench/stage1_mix.py compares against it)."""
    records = []
    for name, role, path, lengths in set_files:
        with open(path, encoding="utf-8") as f:
            for rec, n in zip(json.load(f), lengths):
                if n <= max_tokens:
                    records.append({**rec, "set": name, "role": role, "n_tokens": n})
    import random

    rng = random.Random(seed)
    by_role: dict[str, list] = {}
    for r in records:
        by_role.setdefault(r["role"], []).append(r)
    norm = sum(ratios.values())
    if total is None:
        total = int(min(len(by_role.get(r, [])) / (s / norm) for r, s in ratios.items()))
    out = []
    for role, share in sorted(ratios.items()):
        want = round(total * share / norm)
        pool = by_role.get(role, [])
        out += [rng.choice(pool) for _ in range(want)] if replace else rng.sample(pool, want)
    rng.shuffle(out)
    with open(out_path, "w", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return len(out)
