"""The stage-1 mix: sets -> one seeded SFT file with configured shares by role.

Sets are Arrow IPC files, memory-mapped when read; sampling runs on a light polars index (set, row, role,
length); the output is the chosen records' bytes gathered from the maps with `writev` (no record is parsed).

Token lengths are counted once per set by `count_tokens` (real tokenizer, batched in Rust) and stored beside the
set, so changing the mix ratios reshuffles without re-tokenising.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl

from .chat import chat_text


def write_set(records: list[dict], path: str | Path) -> None:
    """A set as an Arrow IPC file (uncompressed): one row per record, the record itself as one JSON line (its
    text ends in a newline). The mix memory-maps it and writes the chosen records out byte for byte."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from .io import atomic_path

    table = pa.table(
        {
            "id": pa.array([str(r.get("id", i)) for i, r in enumerate(records)], pa.string()),
            "record": pa.array([json.dumps(r, ensure_ascii=False) + "\n" for r in records], pa.large_string()),
        }
    )
    with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def read_set(path: str | Path):
    """The set as a pyarrow Table over a memory map of the file (nothing is copied until it is used)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    return ipc.open_file(pa.memory_map(str(path), "r")).read_all()


def set_records(path: str | Path) -> list[dict]:
    return [json.loads(r) for r in read_set(path).column("record").to_pylist()]


def write_json_array(path_in: str | Path, path_out: str | Path) -> int:
    """The released form of a set: a JSON array of records."""
    records = read_set(path_in).column("record").to_pylist()
    Path(path_out).write_text("[\n" + ",\n".join(r.rstrip("\n") for r in records) + "\n]\n", encoding="utf-8")
    return len(records)


def count_tokens(
    set_path: str | Path, tokenizer_json: str | Path, threads: int | None = None, chunk: int = 8192
) -> pl.DataFrame:
    """(row, n_tokens) for every record of a set, with the training tokenizer, on the chat text as the Qwen3
    template lays it out. The tokenizer encodes each chunk of records on `threads` cores (its Rust thread pool;
    None: every core) while the records stay memory-mapped; only one chunk of texts is in memory at a time."""
    if threads:
        # sized before the pool starts: the tokenizer's first parallel call creates it
        os.environ["RAYON_NUM_THREADS"] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false" if threads == 1 else "true"
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    records = read_set(set_path).column("record")
    lengths: list[int] = []
    for start in range(0, len(records), chunk):
        texts = [chat_text(json.loads(r)["messages"]) for r in records.slice(start, chunk).to_pylist()]
        lengths += [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]
    return pl.DataFrame(
        {"row": range(len(lengths)), "n_tokens": lengths}, schema={"row": pl.UInt32, "n_tokens": pl.UInt32}
    )


class Mixed:
    """The chosen records: an index (id, set, role, n_tokens, g = row in the concatenated sets) in output order,
    over the sets' memory-mapped record columns. Writing copies each chosen record once, from the map to the file."""

    def __init__(self, index: pl.DataFrame, sources: list, starts: np.ndarray):
        self.index, self.sources, self.starts = index, sources, starts

    @property
    def height(self) -> int:
        return self.index.height

    def _ranges(self):
        """(source, byte start, byte end) of every chosen record, as numpy arrays."""
        g = self.index["g"].to_numpy().astype(np.int64)
        src = np.searchsorted(self.starts, g, side="right") - 1
        row = g - self.starts[src]
        lo, hi = np.empty(len(g), np.int64), np.empty(len(g), np.int64)
        for k, (offsets, _) in enumerate(self.sources):
            m = src == k
            lo[m], hi[m] = offsets[row[m]], offsets[row[m] + 1]
        return src, lo, hi

    def records(self) -> list[str]:
        src, lo, hi = self._ranges()
        return [
            bytes(self.sources[k][1][a:b]).decode("utf-8") for k, a, b in zip(src.tolist(), lo.tolist(), hi.tolist())
        ]

    def write_jsonl(self, path: str | Path) -> None:
        """One ms-swift `messages` record per line, the chosen records' bytes gathered by `writev`."""
        src, lo, hi = self._ranges()
        views = [data for _, data in self.sources]
        with open(path, "wb") as f:
            fd, batch = f.fileno(), []
            for k, a, b in zip(src.tolist(), lo.tolist(), hi.tolist()):
                batch.append(views[k][a:b])
                if len(batch) == IOV_BATCH:
                    _writev_all(fd, batch)
                    batch = []
            if batch:
                _writev_all(fd, batch)


IOV_BATCH = 1024  # Linux's IOV_MAX


def _writev_all(fd: int, bufs: list) -> None:
    total = sum(len(b) for b in bufs)
    done = os.writev(fd, bufs)
    if done < total:  # a short write (rare on regular files): write the rest plainly
        rest = b"".join(bytes(b) for b in bufs)[done:]
        while rest:
            rest = rest[os.write(fd, rest) :]


def _record_buffers(table) -> list[tuple[np.ndarray, memoryview]]:
    """Offsets and data of each chunk of a set's `record` column (large_string): views of the memory map, not
    copies (combining chunks would copy the whole column)."""
    out = []
    for arr in table.column("record").chunks:
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
        data = arr.buffers()[2]
        out.append((offsets, memoryview(data) if data is not None else memoryview(b"")))
    return out


def mix(
    sets: list[tuple],
    ratios: dict[str, float] | None,
    total: int | None,
    replace: bool,
    seed: int,
    max_tokens: int,
) -> tuple[Mixed, dict]:
    """`sets`: (name, role, records table from `read_set`, token counts). Returns the shuffled mix and its
    statistics.

    With `ratios`, each role gets round(total × share) records, sampled without replacement unless `replace`;
    without `total`, the total is the largest one the available records allow at those shares.
    Without `ratios`, every record is kept. Records longer than `max_tokens` are dropped first and counted.
    Sampling works on a light index (set, row, role, length); only the chosen records' bytes are written.
    """
    if not sets:
        raise ValueError("no stage-1 sets to mix")
    index_parts, ids, sources, starts = [], [], [], [0]
    offset = 0
    for name, role, table, toks in sets:
        if table.num_rows != toks.height:
            raise ValueError(f"set {name}: {table.num_rows} records but {toks.height} token counts (stale token file?)")
        index_parts.append(
            pl.DataFrame(
                {
                    "g": pl.int_range(offset, offset + table.num_rows, dtype=pl.UInt32, eager=True),
                    "set": pl.Series([name] * table.num_rows, dtype=pl.Categorical),
                    "role": pl.Series([role] * table.num_rows, dtype=pl.Categorical),
                    "n_tokens": toks["n_tokens"],
                }
            )
        )
        ids.append(pl.from_arrow(table.column("id")))
        for offsets, data in _record_buffers(table):
            sources.append((offsets, data))
            starts.append(starts[-1] + len(offsets) - 1)
        offset += table.num_rows
    index = pl.concat(index_parts)
    kept = index.filter(pl.col("n_tokens") <= max_tokens)
    dropped = index.height - kept.height
    available = {str(k): v for k, v in kept.group_by("role").len().iter_rows()}
    if ratios:
        shares = {r: v for r, v in ratios.items() if v > 0}
        norm = sum(shares.values())
        shares = {r: v / norm for r, v in shares.items()}
        missing = sorted(r for r in shares if not available.get(r))
        if missing:
            raise ValueError(
                f"mix.ratios gives role(s) {', '.join(missing)} a share but no set of that role has "
                f"records; give them a set (stage1_data.extra_sets) or drop them from mix.ratios"
            )
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
    out = chosen.select(
        pl.Series("id", pl.concat(ids, rechunk=False).gather(chosen["g"])),
        pl.col("set").cast(pl.String),
        pl.col("role").cast(pl.String),
        "n_tokens",
        "g",
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
    return Mixed(out, sources, np.array(starts, dtype=np.int64)), stats


def _token_stats(s: pl.Series) -> dict:
    if s.len() == 0:
        return {}
    return {"total": int(s.sum()), "mean": round(float(s.mean()), 1), "p50": int(s.median()), "max": int(s.max())}
