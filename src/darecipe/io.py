"""File I/O at the pipeline's edges: atomic writes, line-numbered JSONL reading, checksums."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


class InputError(Exception):
    """Bad input a user can fix; the message names file, line and field on one line."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _share(path: Path, is_dir: bool) -> None:
    """mkstemp/mkdtemp create 0600/0700 entries; give outputs the modes a plain open()/mkdir() would (labmates
    on a shared cluster read each other's results)."""
    os.chmod(path, (0o777 if is_dir else 0o666) & ~_umask())


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            _share(tmp_path, is_dir=False)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh directory beside `path`; it becomes `path` (by rename) only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _share(tmp, is_dir=True)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def decode_line(raw: bytes, path: str | Path, lineno: int) -> str:
    """One line of a text file; bytes that are not UTF-8 are an InputError naming the file, line and column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte {e.start + 1} of the line)") from None


def check_utf8(path: str | Path) -> None:
    """The whole file is UTF-8 (read line by line: a file of any size), else an InputError naming the first bad line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            decode_line(raw, path, lineno)


def read_text(path: str | Path) -> str:
    """A UTF-8 text file's content; a bad byte is an InputError naming the file and line, not a bare
    UnicodeDecodeError."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        start = data.rfind(b"\n", 0, e.start) + 1
        decode_line(data[start : data.find(b"\n", e.start) + 1 or len(data)], path, data.count(b"\n", 0, e.start) + 1)
        raise  # not reached: the line holding the bad byte fails to decode


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record); a line that is not a JSON object is an InputError naming it."""
    path = Path(path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            line = decode_line(raw, path, lineno)
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(rec, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            yield lineno, rec


def require(rec: dict, field: str, kind: type, where: str):
    """`rec[field]` if it has type `kind`, else an InputError naming `where` (file:line) and the field."""
    if field not in rec:
        raise InputError(f"{where}: field '{field}' is missing")
    value = rec[field]
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise InputError(f"{where}: field '{field}' must be a non-empty {kind.__name__}")
    return value


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class Rejects(list):
    """Records that could not be used, each with where it came from and why."""

    def add(self, where: str, rec_id: str, reason: str) -> None:
        self.append({"where": where, "id": rec_id, "reason": reason})

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self:
            k = r["reason"].split(":")[0]
            out[k] = out.get(k, 0) + 1
        return out
