"""Data files handed to the agent (a workspace's CSV, XLSX and SQLite files, a file task's files), read in full once
where they enter the pipeline, so that a broken one stops that rule with one line naming the file and the line, sheet
or table, instead of killing a later job (the questioner's preview reads whole tables) with a traceback.

Sampling a file is not enough: polars reads the first rows of a CSV whose byte on row 1000 is not UTF-8, and a
SQLite file with a good schema page answers `sqlite_master` while its data pages are corrupt. The readers here are
also the ones the preview uses (darecipe.synthesis.preview), so a file that passed the check reads the same later.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from .io import InputError, check_utf8

SQLITE_SUFFIXES = (".sqlite", ".db")


def first_line(e: BaseException) -> str:
    """An exception's first line (polars' messages run on with hints and the data they failed on)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def read_csv_table(path: Path):
    """A CSV as the questioner's preview shows it: polars' types inferred from the first rows, or, where a later row
    does not fit them (a word in a column of numbers), from the whole file."""
    import polars as pl

    try:
        return pl.read_csv(path)
    except pl.exceptions.ComputeError as e:
        if "could not parse" not in str(e):
            raise
        return pl.read_csv(path, infer_schema_length=None)


def read_xlsx_table(path: Path):
    """The first sheet of a workbook as the preview shows it; a column mixing numbers and text (which one Arrow
    column cannot hold) is shown as text."""
    import pandas as pd
    import polars as pl

    df = pd.read_excel(path)
    try:
        return pl.from_pandas(df)
    except Exception:  # noqa: BLE001 - pyarrow's conversion errors (ArrowInvalid, ArrowTypeError) share no base here
        return pl.from_pandas(df.astype({c: str for c in df.columns if df[c].dtype == object}))


def _bad_row(path: Path) -> tuple[int, str] | None:
    """(line, problem) of the first row with more fields than the header, or whose quoted field never closes: polars
    names no line for either."""
    import csv

    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, strict=True)
        start = 1
        try:
            width = len(next(reader, []))
            while True:
                start = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    return None
                if len(row) > width:
                    return start, f"{len(row)} fields, the header has {width}"
        except csv.Error as e:
            return start, f"a quoted field opened on this line never closes ({e})"


def check_csv(path: Path) -> list[str]:
    """UTF-8 throughout (the line of the first bad byte named), then the whole table parsed as the preview reads it."""
    import polars as pl

    check_utf8(path)
    try:
        rows = read_csv_table(path).height
    except pl.exceptions.NoDataError:
        raise InputError(f"{path}: empty CSV (no header)") from None
    except (pl.exceptions.PolarsError, OSError) as e:
        bad = _bad_row(path)
        offset = re.search(r"offset in the file is (\d+) bytes", str(e))
        if bad is None and offset:
            bad = path.read_bytes()[: int(offset[1])].count(b"\n") + 1, first_line(e)
        where, why = (f"{path}:{bad[0]}", bad[1]) if bad else (str(path), first_line(e))
        raise InputError(f"{where}: not a readable CSV ({why})") from None
    if rows == 0:
        raise InputError(f"{path}: empty CSV (a header and no rows)")
    return []


def check_sqlite(path: Path) -> list[str]:
    """Every table read to its last row (a failure names the table), then SQLite's own integrity check (indexes, free
    pages)."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise InputError(f"{path}: not a readable SQLite database ({e})") from None
    step = "reading its schema"
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table' order by name")]
        if not tables:
            raise InputError(f"{path}: a SQLite database with no tables")
        for table in tables:
            step = f"table {table!r}"
            for _ in con.execute(f'select * from "{table}"'):
                pass
        step = "integrity check"
        problems = [r[0] for r in con.execute("pragma integrity_check")]
    except sqlite3.Error as e:
        raise InputError(f"{path}: {step}: corrupt SQLite database ({e})") from None
    finally:
        con.close()
    if problems != ["ok"]:
        detail = " ".join(problems[0].replace("*** in database main ***", "").split())
        raise InputError(f"{path}: integrity check: corrupt SQLite database ({detail}; {len(problems)} problem(s))")
    return tables


def check_xlsx(path: Path) -> list[str]:
    """Every cell of every sheet read (a failure names the sheet), and the first sheet as the preview reads it."""
    import openpyxl

    sheet = None
    try:
        wb = openpyxl.load_workbook(path, read_only=True)
        try:
            for sheet in wb.sheetnames:
                for _ in wb[sheet].iter_rows(values_only=True):
                    pass
            sheets = list(wb.sheetnames)
        finally:
            wb.close()
        sheet = None
        rows = read_xlsx_table(path).height
    except Exception as e:  # noqa: BLE001 - openpyxl raises many types (zip, XML, KeyError) for broken workbooks
        where = f"sheet {sheet!r}: " if sheet else ""
        raise InputError(f"{path}: {where}not a readable XLSX workbook ({type(e).__name__}: {first_line(e)})") from None
    if rows == 0:
        raise InputError(f"{path}: sheet {sheets[0]!r}: empty (a header and no rows)")
    return sheets


CHECKS = {".csv": check_csv, ".xlsx": check_xlsx, **{s: check_sqlite for s in SQLITE_SUFFIXES}}


def check_data_file(path: str | Path) -> list[str]:
    """A data file the pipeline reads itself (CSV, XLSX, SQLite), read in full; other kinds are the agent's to read.
    Returns the names of its tables (SQLite) or sheets (XLSX)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: a directory, not a data file")
    check = CHECKS.get(path.suffix.lower())
    return check(path) if check is not None else []
