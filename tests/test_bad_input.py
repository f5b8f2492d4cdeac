"""Acceptance (issue 18, bad data): a data file that is broken past its first rows, a corrupt database, a trace or
prompt that is not UTF-8, stops the rule that takes it in with one line naming the file and the line or table, and
no later job starts."""

import sqlite3
import zipfile
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import REPO, copy_repo, snakemake

from darecipe.datafiles import check_data_file, read_csv_table
from darecipe.io import InputError, Rejects, read_text
from darecipe.loaders import database_workspace_files, load_file_tasks
from darecipe.prompts import load_template
from darecipe.released import unpack_workspaces
from darecipe.synthesis import build_workspace, preview


def late_bad_byte_csv(path: Path, bad_line: int = 1001) -> Path:
    """1,500 rows wide enough that polars' first look (a few rows) never reaches the byte that is not UTF-8."""
    lines = [b"id,name,value"] + [f"{i},{'n' * 100}{i},{i * 1.5}".encode() for i in range(1, 1500)]
    lines[bad_line - 1] = lines[bad_line - 1].replace(b"nn", b"n\xff", 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def corrupt_sqlite(path: Path) -> Path:
    """A good schema page (sqlite_master answers) and a data page of table `readings` overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as con:
        con.execute("create table readings (id integer primary key, note text)")
        con.executemany("insert into readings values (?, ?)", [(i, "x" * 200) for i in range(5000)])
    con.close()
    data = bytearray(path.read_bytes())
    data[4096 * 100 : 4096 * 101] = b"\xa5" * 4096
    path.write_bytes(bytes(data))
    return path


def test_the_old_sampling_checks_passed_these_files(tmp_path):
    """What made them dangerous: the first rows and the schema read fine."""
    csv = late_bad_byte_csv(tmp_path / "late.csv")
    assert pl.read_csv(csv, n_rows=5, infer_schema_length=0).height == 5
    db = corrupt_sqlite(tmp_path / "c.sqlite")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        assert con.execute("select name from sqlite_master where type='table'").fetchall() == [("readings",)]


def test_a_bad_byte_on_row_1000_is_named_by_line(tmp_path):
    csv = late_bad_byte_csv(tmp_path / "late.csv")
    with pytest.raises(
        InputError, match=r"late\.csv:1001: not valid UTF-8 \(invalid start byte at byte 7 of the line\)"
    ):
        check_data_file(csv)


def test_a_corrupt_data_page_is_named_by_table(tmp_path):
    db = corrupt_sqlite(tmp_path / "c.sqlite")
    with pytest.raises(InputError, match=r"c\.sqlite: table 'readings': corrupt SQLite database"):
        check_data_file(db)


CSV_CASES = [
    ("ragged.csv", "a,b\n1,2\n3,4,5\n", r"ragged\.csv:3: not a readable CSV \(3 fields, the header has 2\)"),
    ("quote.csv", 'a,b\n1,2\n3,"four\n5,6\n', r"quote\.csv:3: not a readable CSV \(a quoted field opened on this line"),
    ("header.csv", "a,b\n", r"header\.csv: empty CSV \(a header and no rows\)"),
    ("empty.csv", "", r"empty\.csv: empty CSV \(no header\)"),
    ("broken.xlsx", "PK not a workbook", r"broken\.xlsx: not a readable XLSX workbook"),
    ("text.sqlite", "hello", r"text\.sqlite: reading its schema: corrupt SQLite database \(file is not a database\)"),
]


@pytest.mark.parametrize("name,content,message", CSV_CASES, ids=[c[0] for c in CSV_CASES])
def test_unreadable_data_files_name_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(InputError, match=message):
        check_data_file(tmp_path / name)


def test_a_directory_where_a_data_file_is_expected(tmp_path):
    (tmp_path / "data.csv").mkdir()
    with pytest.raises(InputError, match=r"data\.csv: a directory, not a data file"):
        check_data_file(tmp_path / "data.csv")


def test_a_word_late_in_a_number_column_is_a_good_file_the_preview_can_show(tmp_path):
    """Not bad input: a CSV whose row 1000 breaks the types polars infers from the first rows, and a workbook column
    mixing numbers and text, pass the check and are shown to the questioner."""
    rows = ["id,value"] + [f"{i},{i}" for i in range(1, 1500)]
    rows[1000] = "1000,unknown"
    (tmp_path / "mixed.csv").write_text("\n".join(rows) + "\n")
    pd = pytest.importorskip("pandas")
    pd.DataFrame({"a": [1, "x", 3.5], "b": [1, 2, 3]}).to_excel(tmp_path / "mixed.xlsx", index=False)
    for f in ("mixed.csv", "mixed.xlsx"):
        check_data_file(tmp_path / f)
    assert read_csv_table(tmp_path / "mixed.csv")["value"][999] == "unknown"
    text = preview([tmp_path / "mixed.csv", tmp_path / "mixed.xlsx"])
    assert "mixed.csv: 1499 rows" in text and "mixed.xlsx: 3 rows" in text


def test_a_workspace_is_checked_before_its_variants_are_generated(tmp_path):
    corrupt_sqlite(tmp_path / "data" / "c.sqlite")
    with pytest.raises(InputError, match=r"^workspace w: .*c\.sqlite: table 'readings': corrupt"):
        build_workspace(
            "w", [{"name": "r.csv", "from": "c.sqlite", "table": "readings"}], tmp_path / "data", tmp_path / "out"
        )
    assert not (tmp_path / "out" / "r.csv").exists()


def test_bird_descriptions_with_stray_bytes_are_repaired_and_said(tmp_path, darecipe_log):
    """BIRD's database_description CSVs hold stray non-UTF-8 bytes (AlibabaResearch/DAMO-ConvAI#52): documentation,
    so the byte is replaced and the log says so; the same file as a data file stops the rule."""
    root = tmp_path / "train_databases"
    (root / "shop" / "database_description").mkdir(parents=True)
    with sqlite3.connect(root / "shop" / "shop.sqlite") as con:
        con.execute("create table items (id integer)")
        con.execute("insert into items values (1)")
    con.close()
    (root / "shop" / "database_description" / "items.csv").write_bytes(b"column,description\nid,the item \x96 key\n")
    files = database_workspace_files(root, "shop", descriptions=True)
    made = build_workspace("bird_shop", files, root, tmp_path / "ws", repair=tuple(files[1:]))
    assert (tmp_path / "ws" / "items.csv").read_text(encoding="utf-8") == "column,description\nid,the item \ufffd key\n"
    assert [p.name for p in made] == ["shop.sqlite", "items.csv"]
    assert any("bird_shop: items.csv: bytes that are not UTF-8 replaced" in m for m in darecipe_log)
    with pytest.raises(InputError, match=r"items\.csv:2: not valid UTF-8"):
        build_workspace("plain", files, root, tmp_path / "ws2")


def test_two_workspace_files_of_one_name_are_refused(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "data.csv").write_text("x\n1\n")
    with pytest.raises(InputError, match=r"workspace w: two files named data\.csv"):
        build_workspace("w", ["a/data.csv", "b/data.csv"], tmp_path, tmp_path / "out")


def test_a_file_task_names_its_line_the_field_and_the_table(tmp_path):
    shipped = REPO / "resources" / "data"
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        '{"id": "t1", "kind": "file_csv", "question": "q?", "answer": "1", "files": '
        '[{"name": "x.csv", "from": "chinook/Chinook_Sqlite.sqlite", "table": "Nope"}]}\n'
    )
    with pytest.raises(
        InputError, match=r"tasks\.jsonl:1: field 'files': .*Chinook_Sqlite\.sqlite has no table 'Nope'"
    ):
        load_file_tasks(tasks, shipped, Rejects())
    tasks.write_text(
        '{"id": "t1", "kind": "file_csv", "question": "q?", "answer": "1", "files": [{"name": "x.csv"}]}\n'
    )
    with pytest.raises(InputError, match=r"tasks\.jsonl:1: field 'files': .* lacks 'from'"):
        load_file_tasks(tasks, shipped, Rejects())


def test_text_and_prompt_files_name_the_line(tmp_path):
    (tmp_path / "t.txt").write_bytes(b"line one\nline \xe9two\n")
    with pytest.raises(InputError, match=r"t\.txt:2: not valid UTF-8"):
        read_text(tmp_path / "t.txt")
    (tmp_path / "p.txt").write_text("Question: $question\nIt costs $5.\n")
    with pytest.raises(InputError, match=r"p\.txt: Invalid placeholder in string: line 2, col 10 \(write \$\$"):
        load_template(tmp_path / "p.txt")
    (tmp_path / "e.txt").write_text("\n")
    with pytest.raises(InputError, match=r"e\.txt: empty prompt file"):
        load_template(tmp_path / "e.txt")


def test_a_damaged_workspace_archive_names_the_archive_and_member(tmp_path):
    arc = tmp_path / "data.zip"
    with zipfile.ZipFile(arc, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("files/w1/a.csv", "x,y\n" + "1,2\n" * 100)
    raw = bytearray(arc.read_bytes())
    raw[raw.index(b"1,2\n") + 40] ^= 0xFF  # the member's bytes no longer match its CRC
    arc.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"data\.zip: member 'files/w1/a\.csv' cannot be extracted \(Bad CRC-32"):
        unpack_workspaces(arc, tmp_path / "out")
    arc.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match=r"data\.zip: not a readable zip archive"):
        unpack_workspaces(arc, tmp_path / "out2")


# ---------------------------------------------------------------- the real rules


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory):
    """The real rules on a copy of the repository given a workspace CSV with a bad byte on row 1000, a workspace
    database with a corrupt data page, a file task on that database, and a chat_text trace that is not UTF-8."""
    work = copy_repo(tmp_path_factory.mktemp("bad"))
    bad = work / "resources" / "data" / "bad"
    late_bad_byte_csv(bad / "late.csv")
    corrupt_sqlite(bad / "corrupt.sqlite")
    trace = REPO / "resources" / "data" / "search_r1_traces" / "case.txt"
    lines = trace.read_bytes().split(b"\n")
    lines[4] = lines[4] + b" \xff"
    (bad / "case.txt").write_bytes(b"\n".join(lines))
    (bad / "file_tasks.jsonl").write_text(
        '{"id": "f1", "kind": "file_database", "question": "How many readings?", '
        '"answer": "5000", "files": ["bad/corrupt.sqlite"]}\n'
    )
    overlay = {
        "synthesis": {
            "workspaces": {"badcsv": ["bad/late.csv"], "baddb": ["bad/corrupt.sqlite"]},
            "categories": {"data_analysis": ["badcsv", "baddb"]},
        },
        "summary": {
            "traces": [{"path": "resources/data/bad/case.txt", "format": "chat_text", "family": "search"}],
            "pipeline_trajectories": None,
        },
        "stage1_data": {"file_tasks": "resources/data/bad/file_tasks.jsonl"},
    }
    (work / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    targets = [
        "results/data/synthesis/shards/data_analysis/badcsv/0.jsonl",
        "results/data/synthesis/shards/data_analysis/baddb/0.jsonl",
        "results/summary/samples.jsonl",
        "results/data/stage1/tasks/file.jsonl",
    ]
    proc = snakemake(
        work,
        *targets,
        "--cores",
        "1",
        "--keep-going",
        "--configfile",
        "config/config.yaml",
        "overlay.yaml",
        check=False,
    )
    return work, proc


BROKEN = [
    (
        "synth_workspace",
        "logs/synth_workspace/badcsv.log",
        "workspace badcsv: resources/data/bad/late.csv:1001: not valid UTF-8 (invalid start byte at byte 7 of the line)",
    ),
    (
        "synth_workspace",
        "logs/synth_workspace/baddb.log",
        "workspace baddb: resources/data/bad/corrupt.sqlite: table 'readings': corrupt SQLite database",
    ),
    ("summary_samples", "logs/summary_samples.log", "resources/data/bad/case.txt:5: not valid UTF-8"),
    (
        "stage1_tasks",
        "logs/stage1_tasks.log",
        "resources/data/bad/file_tasks.jsonl:1: field 'files': resources/data/bad/corrupt.sqlite: table 'readings': corrupt",
    ),
]


@pytest.mark.parametrize("rule,log,message", BROKEN, ids=[b[1].split("/", 1)[1] for b in BROKEN])
def test_the_rule_taking_the_file_in_stops_with_one_line(broken_run, rule, log, message):
    work, proc = broken_run
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith(f"{rule}: ") and message in line]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert message in (work / log).read_text()  # the rule's log says it too, not only the console


def test_no_job_after_a_broken_input_starts(broken_run):
    work, _ = broken_run
    assert not (work / "logs" / "synth_shard").exists()
    assert not (work / "results" / "data" / "synthesis" / "workspaces" / "badcsv").exists()
    assert not (work / "results" / "summary" / "samples.jsonl").exists()
    assert not (work / "results" / "data" / "stage1" / "tasks" / "file.jsonl").exists()
