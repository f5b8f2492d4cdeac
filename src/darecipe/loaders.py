"""Raw data sets -> one normalised task record (`TaskRecord`), built with polars.

Loaders raise `InputError` (file, line, field on one line) for input that cannot be read at all, and send
records that cannot be used to `rejects` with the reason; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from .datafiles import SQLITE_SUFFIXES, check_data_file, first_line, read_csv_table
from .io import InputError, Rejects, decode_line, read_jsonl, read_text, require
from .sets import FILE_KINDS


@dataclass
class TaskRecord:
    id: str
    source: str
    question: str
    answer: str
    table: list[list[str]] | None = None
    text: str | None = None
    files: list[str] = field(default_factory=list)
    kind: str = "tableqa"  # tableqa | tablegpt | file_database | file_csv | file_xlsx | file_any
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> TaskRecord:
        return cls(**d)


def _unescape_tsv(s: str) -> str:
    """WikiTQ's TSV escapes: \\n newline, \\p pipe, \\\\ backslash."""
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            out.append({"n": "\n", "p": "|", "\\": "\\"}.get(s[i + 1], s[i + 1]))
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def read_tsv(path: Path, columns: tuple[str, ...]) -> pl.DataFrame:
    """A TSV with a header naming at least `columns`; a line with the wrong number of fields is an error."""
    rows: list[list[str]] = []
    with open(path, "rb") as f:
        header: list[str] | None = None
        for lineno, raw in enumerate(f, start=1):
            line = decode_line(raw, path, lineno).rstrip("\r\n")
            if not line:
                continue
            fields = line.split("\t")
            if header is None:
                header = fields
                missing = [c for c in columns if c not in header]
                if missing:
                    raise InputError(f"{path}:{lineno}: header lacks column(s) {', '.join(missing)}")
                continue
            if len(fields) != len(header):
                raise InputError(f"{path}:{lineno}: {len(fields)} tab-separated fields, the header has {len(header)}")
            rows.append(fields + [str(lineno)])
    if header is None:
        raise InputError(f"{path}:1: empty file (no header)")
    return pl.DataFrame(rows, schema=[*header, "_line"], orient="row")


def read_wikitq_table(path: Path) -> list[list[str]]:
    """WikiTQ CSVs write a quote inside a field as \\" (not RFC 4180's ""); see the data's NOTICE."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = [row for row in csv.reader(f, escapechar="\\", doublequote=False)]
    if not rows:
        raise ValueError("empty table")
    return rows


def load_wikitq(tsv: Path, root: Path, rejects: Rejects, limit: int | None = None) -> list[TaskRecord]:
    """WikiTableQuestions TSV (id, utterance, context, targetValue) + its CSV tables under `root`."""
    df = read_tsv(tsv, ("id", "utterance", "context", "targetValue"))
    df = df.with_columns(
        pl.col("utterance").map_elements(_unescape_tsv, return_dtype=pl.String).str.strip_chars(),
        pl.col("targetValue").map_elements(_unescape_tsv, return_dtype=pl.String).str.strip_chars(),
    )
    out = []
    for row in df.iter_rows(named=True):
        if limit is not None and len(out) >= limit:
            break
        where = f"{tsv}:{row['_line']}"
        if not row["utterance"]:
            rejects.add(where, row["id"], "empty question")
            continue
        if not row["targetValue"]:
            rejects.add(where, row["id"], "empty gold answer")
            continue
        table_path = root / row["context"]
        if not table_path.is_file():
            rejects.add(where, row["id"], f"missing table: {row['context']}")
            continue
        try:
            table = read_wikitq_table(table_path)
        except (ValueError, UnicodeDecodeError, csv.Error) as e:
            rejects.add(where, row["id"], f"unreadable table: {row['context']} ({e})")
            continue
        # Several gold values are separated by "|" in targetValue.
        answer = " | ".join(v.strip() for v in row["targetValue"].split("|"))
        out.append(
            TaskRecord(
                row["id"],
                "wikitq",
                row["utterance"],
                answer,
                table=table,
                meta={"context": row["context"], "answer_list": row["targetValue"].split("|")},
            )
        )
    return out


def _pipe_table(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.split(" | ")] for line in text.strip("\n").split("\n") if line.strip()]


def _load_json_list(path: Path) -> list:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, list):
        raise InputError(f"{path}:1: expected a JSON list of records")
    return data


def load_finqa(path: Path, rejects: Rejects, limit: int | None = None) -> list[TaskRecord]:
    """FinQA-family JSON: the Program-of-Thoughts packaging of ConvFinQA `Single_*` records, or FinQA's own format."""
    out = []
    for i, rec in enumerate(_load_json_list(path)):
        if limit is not None and len(out) >= limit:
            break
        where = f"{path}:record {i}"
        rid = str(rec.get("id") or f"record-{i}")
        if "qa" in rec:  # original FinQA: pre_text, post_text, table (rows), qa.question / qa.answer
            qa = rec["qa"] or {}
            question, answer = str(qa.get("question") or "").strip(), qa.get("exe_ans", qa.get("answer"))
            table = rec.get("table")
            text = " ".join(rec.get("pre_text", []) + rec.get("post_text", []))
        else:  # PoT ConvFinQA: the conversation's turns, the final turn's answer
            turns = [t.strip() for t in rec.get("questions") or [] if str(t).strip()]
            question = _conversation(turns)
            answer = rec.get("answer")
            table = _pipe_table(rec["table"]) if rec.get("table") else None
            text = rec.get("text")
        if not question:
            rejects.add(where, rid, "empty question")
            continue
        if answer in (None, ""):
            rejects.add(where, rid, "empty gold answer")
            continue
        if not table:
            rejects.add(where, rid, "missing table")
            continue
        out.append(
            TaskRecord(
                f"finqa-{rid.removeprefix('Single_')}",
                "finqa",
                question,
                _num_str(answer),
                table=table,
                text=text,
                meta={"program": (rec.get("programs") or [None])[-1]},
            )
        )
    return out


def _conversation(turns: list[str]) -> str:
    if len(turns) <= 1:
        return turns[0] if turns else ""
    lines = "\n".join(f"{i}. {t}" for i, t in enumerate(turns, start=1))
    return f"Answer the last question of this conversation about the report below.\n{lines}"


def _num_str(v) -> str:
    if isinstance(v, float):
        return f"{v:.5f}".rstrip("0").rstrip(".")
    return str(v).strip()


def load_tatqa(path: Path, rejects: Rejects, limit: int | None = None) -> list[TaskRecord]:
    """TAT-QA as released upstream (tatqa_dataset_*.json: a table with its paragraphs and several questions), or in
    the Program-of-Thoughts packaging (one question per record: answer list, answer_type, scale, text, table)."""
    data = _load_json_list(path)
    if data and isinstance(data[0], dict) and "questions" in data[0]:
        return _load_tatqa_raw(path, data, rejects, limit)
    out = []
    for i, rec in enumerate(data):
        if limit is not None and len(out) >= limit:
            break
        where = f"{path}:record {i}"
        rid = str(rec.get("question_id") or f"record-{i}")
        question = str(rec.get("question") or "").strip()
        if not question:
            rejects.add(where, rid, "empty question")
            continue
        ans = rec.get("answer")
        if isinstance(ans, list):
            answer = ", ".join(str(a) for a in ans)
        else:
            answer = _num_str(ans) if ans is not None else ""
        if not answer:
            rejects.add(where, rid, "empty gold answer")
            continue
        if not rec.get("table"):
            rejects.add(where, rid, "missing table")
            continue
        out.append(
            TaskRecord(
                f"tatqa-{rid[:8]}",
                "tatqa",
                question,
                answer,
                table=_pipe_table(rec["table"]),
                text=rec.get("text"),
                meta={"answer_type": rec.get("answer_type"), "scale": rec.get("scale") or ""},
            )
        )
    return out


def _load_tatqa_raw(path: Path, data: list, rejects: Rejects, limit: int | None) -> list[TaskRecord]:
    out = []
    for i, block in enumerate(data):
        table = ((block.get("table") or {}).get("table")) if isinstance(block, dict) else None
        paragraphs = (
            sorted(block.get("paragraphs") or [], key=lambda p: p.get("order", 0)) if isinstance(block, dict) else []
        )
        text = "\n".join(str(p.get("text", "")).strip() for p in paragraphs if str(p.get("text", "")).strip())
        for j, q in enumerate(block.get("questions") or [] if isinstance(block, dict) else []):
            if limit is not None and len(out) >= limit:
                return out
            where = f"{path}:record {i} question {j}"
            rid = str(q.get("uid") or f"record-{i}-{j}")
            question = str(q.get("question") or "").strip()
            ans = q.get("answer")
            answer = ", ".join(str(a) for a in ans) if isinstance(ans, list) else ("" if ans is None else _num_str(ans))
            if not question:
                rejects.add(where, rid, "empty question")
            elif not answer.strip():
                rejects.add(where, rid, "empty gold answer")
            elif not table:
                rejects.add(where, rid, "missing table")
            else:
                rows = [[str(c) for c in row] for row in table]
                out.append(
                    TaskRecord(
                        f"tatqa-{rid[:8]}",
                        "tatqa",
                        question,
                        answer,
                        table=rows,
                        text=text or None,
                        meta={
                            "answer_type": q.get("answer_type"),
                            "scale": q.get("scale") or "",
                            "derivation": q.get("derivation") or "",
                        },
                    )
                )
    return out


# ---------------------------------------------------------------- stage-1 sets supplied as upstream files


def _stream_records(path: Path):
    """(where, record) of a JSON array or a JSON Lines file, one record at a time for JSON Lines (AM's files are
    tens of GB)."""
    with open(path, "rb") as f:
        head = f.read(64).lstrip()
    if head.startswith(b"["):
        yield from ((f"{path}:record {i}", rec) for i, rec in enumerate(_load_json_list(path)))
    else:
        yield from ((f"{path}:{lineno}", rec) for lineno, rec in read_jsonl(path))


def reservoir_sample(items, limit: int | None, seed: int) -> list:
    """All items, or `limit` of them by seeded reservoir sampling (one pass, `limit` records in memory), in file
    order."""
    if limit is None:
        return list(items)
    import random

    rng, keep = random.Random(seed), []
    for n, item in enumerate(items):
        if n < limit:
            keep.append((n, item))
        elif (k := rng.randint(0, n)) < limit:
            keep[k] = (n, item)
    return [item for _, item in sorted(keep, key=lambda x: x[0])]


def load_skginstruct(path: Path, rejects: Rejects, limit: int | None = None, seed: int = 0) -> list[dict]:
    """TIGER-Lab/SKGInstruct (skginstruct.json: sys_prompt, input, label, task_name) -> ms-swift `messages`;
    `limit` usable records sampled with `seed`."""

    def usable():
        for where, rec in _stream_records(path):
            if not isinstance(rec, dict):
                rejects.add(where, where, "not a JSON object")
                continue
            rid = str(rec.get("id") or f"skg-{where.rsplit(':', 1)[-1].replace('record ', '')}")
            prompt, label = str(rec.get("input") or "").strip(), str(rec.get("label") or "").strip()
            if not prompt or not label:
                rejects.add(where, rid, "empty input" if not prompt else "empty label")
                continue
            system = str(rec.get("sys_prompt") or "").strip()
            msgs = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": label},
            ]
            yield {"messages": msgs, "id": rid, "source": f"skginstruct/{rec.get('task_name') or 'unknown'}"}

    return reservoir_sample(usable(), limit, seed)


AM_ROLES = {"human": "user", "user": "user", "assistant": "assistant", "gpt": "assistant"}


def load_am_distilled(path: Path, rejects: Rejects, limit: int | None = None, seed: int = 0) -> list[dict]:
    """One subset of a-m-team/AM-DeepSeek-R1-0528-Distilled (JSON Lines: system, conversations [{from, value,
    info}]) -> ms-swift `messages`; `limit` usable records sampled with `seed`. The `system` field is left out, as
    the data set's card says it is not meant for training; `info` is dropped but its `source` kept."""

    def usable():
        for where, rec in _stream_records(path):
            turns = rec.get("conversations") if isinstance(rec, dict) else None
            rid = f"am-{path.stem}-{where.rsplit(':', 1)[-1].replace('record ', '')}"
            if not isinstance(turns, list) or not turns:
                rejects.add(where, rid, "no conversations")
                continue
            msgs, problem = [], None
            for t in turns:
                role = AM_ROLES.get(str(t.get("from", "")).lower()) if isinstance(t, dict) else None
                value = t.get("value") if isinstance(t, dict) else None
                if role is None or not isinstance(value, str) or not value.strip():
                    problem = "a turn without a known speaker and text"
                    break
                msgs.append({"role": role, "content": value})
            if problem is None and (msgs[0]["role"] != "user" or msgs[-1]["role"] != "assistant"):
                problem = "must start with a human turn and end with an assistant turn"
            if problem:
                rejects.add(where, rid, problem)
                continue
            info = turns[0].get("info") if isinstance(turns[0].get("info"), dict) else {}
            yield {"messages": msgs, "id": rid, "source": f"am-0528/{info.get('source') or path.stem}"}

    return reservoir_sample(usable(), limit, seed)


# ---------------------------------------------------------------- databases as synthesis workspaces


def sqlite_databases(root: Path) -> dict[str, Path]:
    """db_id -> SQLite file of a BIRD (`train_databases/<db>/<db>.sqlite`) or Spider (`database/<db>/<db>.sqlite`)
    folder: every `<db>/<db>.sqlite` (or .db) directly under `root`."""
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        for ext in (".sqlite", ".db"):
            if (d / f"{d.name}{ext}").is_file():
                out[d.name] = d / f"{d.name}{ext}"
                break
    return out


def database_workspace_files(root: Path, db_id: str, descriptions: bool) -> list[str]:
    """The files (relative to root) of a database's workspace: the SQLite file, and BIRD's column descriptions."""
    db = sqlite_databases(root).get(db_id)
    if db is None:
        raise InputError(f"{root}/{db_id}/{db_id}.sqlite: no such database")
    files = [str(db.relative_to(root))]
    desc = root / db_id / "database_description"
    if descriptions and desc.is_dir():
        files += [str(p.relative_to(root)) for p in sorted(desc.glob("*.csv"))]
    return files


def load_file_tasks(path: Path, data_root: Path, rejects: Rejects) -> list[TaskRecord]:
    """Hand-written file-handling tasks (JSONL): id, kind, question, answer, files; a file may be generated
    at build time from a source (`{"name": "Invoice.csv", "from": "chinook/Chinook_Sqlite.sqlite", "table": "Invoice"}`)."""
    out, checked = [], {}  # data file -> its tables (each file read in full once)
    for lineno, rec in read_jsonl(path):
        where = f"{path}:{lineno}"
        rid = require(rec, "id", str, where)
        kind = require(rec, "kind", str, where)
        if kind not in FILE_KINDS:
            raise InputError(f"{where}: field 'kind': {kind!r} is not one of {FILE_KINDS}")
        question = str(rec.get("question") or "").strip()
        if not question:
            rejects.add(where, rid, "empty question")
            continue
        answer = require(rec, "answer", str, where)
        files = require(rec, "files", list, where)
        for f in files:
            _check_task_file(f, data_root, checked, f"{where}: field 'files'")
        out.append(TaskRecord(rid, "file", question, answer, files=files, kind=kind))
    return out


def file_spec_problem(f) -> str | None:
    """What is wrong with one entry of a task's or workspace's file list (a path relative to the data root, or
    {name, from, table, sheet} for a generated CSV/XLSX variant), or None."""
    if isinstance(f, str):
        return None if f.strip() else "an empty file name"
    if not isinstance(f, dict):
        return f"{f!r} is neither a file name nor {{name, from, table}}"
    for key in ("name", "from"):
        if not isinstance(f.get(key), str) or not f[key].strip():
            return f"{f!r} lacks {key!r} (a generated variant is {{name: x.csv, from: y.sqlite, table: t}})"
    if Path(f["name"]).suffix not in (".csv", ".xlsx"):
        return f"cannot generate {f['name']}: only .csv and .xlsx variants are supported"
    if Path(f["from"]).suffix in SQLITE_SUFFIXES and not f.get("table"):
        return f"{f['name']}: generating it from the SQLite database {f['from']} needs a 'table'"
    return None


def _check_task_file(f, data_root: Path, checked: dict, where: str) -> None:
    """One entry of a file task's `files`: well formed, there, readable in full (darecipe.datafiles), and a generated
    variant's table in its database, so that building the task's workspace later cannot fail."""
    if problem := file_spec_problem(f):
        raise InputError(f"{where}: {problem}")
    src = data_root / (f["from"] if isinstance(f, dict) else f)
    if not src.is_file():
        raise InputError(f"{where}: {src} does not exist")
    if src not in checked:
        try:
            checked[src] = check_data_file(src)
        except InputError as e:
            raise InputError(f"{where}: {e}") from None
    if isinstance(f, dict) and f.get("table") and src.suffix in SQLITE_SUFFIXES and f["table"] not in checked[src]:
        raise InputError(f"{where}: {src} has no table {f['table']!r} (it has {', '.join(checked[src])})")


def materialise_files(files: list, data_root: Path, dest: Path) -> list[Path]:
    """Copy a task's files into `dest`, generating CSV / XLSX variants from a table of a CSV or SQLite source."""
    import shutil
    import sqlite3

    dest.mkdir(parents=True, exist_ok=True)
    made = []
    for f in files:
        if problem := file_spec_problem(f):
            raise InputError(problem)
        target = dest / (Path(f).name if isinstance(f, str) else f["name"])
        if target in made:  # two files of one name would silently overwrite each other
            raise InputError(f"two files named {target.name}: rename one ({{name: ..., from: ...}})")
        made.append(target)
        if isinstance(f, str):
            shutil.copy2(data_root / f, target)
            continue
        src = data_root / f["from"]
        try:
            if src.suffix in SQLITE_SUFFIXES:
                with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as con:
                    df = pl.read_database(f'select * from "{f["table"]}"', con)
            else:
                df = read_csv_table(src)  # as the check and the preview read it
        except (sqlite3.Error, pl.exceptions.PolarsError) as e:
            raise InputError(f"cannot generate {target.name} from {src}: {first_line(e)}") from None
        if target.suffix == ".csv":
            df.write_csv(target)
        else:
            df.to_pandas().to_excel(target, index=False, sheet_name=f.get("sheet", "Sheet1"), engine="openpyxl")
    return made


def table_text(rows: list[list[str]] | None, max_rows: int | None = None) -> str:
    """A table as ` | `-separated lines (header first), cell line breaks flattened."""
    if not rows:
        return ""
    shown = rows if max_rows is None else rows[: max_rows + 1]
    buf = io.StringIO()
    for row in shown:
        buf.write(" | ".join(c.replace("\n", " ").strip() for c in row) + "\n")
    if max_rows is not None and len(rows) > max_rows + 1:
        buf.write(f"… ({len(rows) - 1} rows in all)\n")
    return buf.getvalue().rstrip("\n")
