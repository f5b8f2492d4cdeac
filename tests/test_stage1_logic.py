"""Raw loaders on malformed input, answer matching, teacher-reply checks, file tasks run for real, the mix."""

import json

import polars as pl
import pytest
from conftest import REPO

from darecipe.answers import answers_match
from darecipe.io import InputError, Rejects
from darecipe.loaders import TaskRecord, load_file_tasks, load_finqa, load_wikitq
from darecipe.mix import mix, read_set, write_set
from darecipe.sandbox import SandboxLimits
from darecipe.stage1 import check_reasoning, read_cues, run_file_reply, sample_cues

DATA = REPO / "resources/data"
HEADER = "id\tutterance\tcontext\ttargetValue\n"


def wikitq(tmp_path, body: bytes):
    tsv = tmp_path / "q.tsv"
    tsv.write_bytes(HEADER.encode() + body)
    return tsv


def test_wikitq_loader_reads_escapes_and_tables():
    rejects = Rejects()
    tasks = load_wikitq(DATA / "wikitablequestions/data/training-first50.tsv", DATA / "wikitablequestions", rejects)
    assert len(tasks) == 50 and not rejects
    nt9 = next(t for t in tasks if t.id == "nt-9")
    assert nt9.answer == "Siim Ennemuist | Andri Aganits"  # several gold values, '|' separated
    # 203-csv/733.csv escapes quotes as \" (see the NOTICE): the cell must come back with a plain quote.
    table = next(
        t
        for t in load_wikitq(
            DATA / "wikitablequestions/data/pristine-unseen-tables-first50.tsv", DATA / "wikitablequestions", Rejects()
        )
        if t.id == "nu-0"
    ).table
    assert not any('\\"' in cell for row in table for cell in row)


def test_broken_tsv_line_names_file_and_line(tmp_path):
    tsv = wikitq(tmp_path, b"nt-0\tq?\tcsv/204-csv/590.csv\t2004\nnt-1\tbroken line\n")
    with pytest.raises(InputError, match=r"q\.tsv:3: 2 tab-separated fields, the header has 4"):
        load_wikitq(tsv, DATA / "wikitablequestions", Rejects())


def test_non_utf8_bytes_name_file_and_line(tmp_path):
    tsv = wikitq(tmp_path, b"nt-0\tq?\tcsv/204-csv/590.csv\t2004\nnt-1\tcaf\xe9?\tcsv/204-csv/590.csv\tx\n")
    with pytest.raises(InputError, match=r"q\.tsv:3: not valid UTF-8"):
        load_wikitq(tsv, DATA / "wikitablequestions", Rejects())


def test_missing_table_and_empty_question_are_counted_rejects(tmp_path):
    tsv = wikitq(
        tmp_path,
        b"a\twhat?\tcsv/999-csv/1.csv\t1\nb\t \tcsv/204-csv/590.csv\t2004\nc\tok?\tcsv/204-csv/590.csv\t2004\n",
    )
    rejects = Rejects()
    tasks = load_wikitq(tsv, DATA / "wikitablequestions", rejects)
    assert [t.id for t in tasks] == ["c"]
    assert rejects.counts() == {"missing table": 1, "empty question": 1}
    assert rejects[0]["where"].endswith("q.tsv:2")


def test_bad_json_line_in_file_tasks_names_file_and_line(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"id": "a", "kind": "file_csv", "question": "q", "answer": "1", "files": []}\n{"id": oops}\n')
    with pytest.raises(InputError, match=r"tasks\.jsonl:2: invalid JSON"):
        load_file_tasks(path, DATA, Rejects())


def test_finqa_json_error_names_line(tmp_path):
    path = tmp_path / "finqa.json"
    path.write_text('[\n{"id": "x",\n "answer": }\n]')
    with pytest.raises(InputError, match=r"finqa\.json:3: invalid JSON"):
        load_finqa(path, Rejects())


@pytest.mark.parametrize(
    "pred,gold,ok",
    [
        ("12467", "12,467", True),
        ("1.4240", "1.42403", True),
        ("1.43", "1.42403", False),
        ("-9.71%", "-0.09709", True),
        ("Wolfe Tones.", "Wolfe Tones", True),
        ("Andri Aganits | Siim Ennemuist", "Siim Ennemuist | Andri Aganits", True),
        ("Siim Ennemuist", "Siim Ennemuist | Andri Aganits", False),
        ("Bangkok", "Bangkok, Thailand", False),
    ],
)
def test_answers_match(pred, gold, ok):
    assert answers_match(pred, gold) is ok


def task(answer="2004"):
    return TaskRecord("nt-0", "wikitq", "q", answer, table=[["Year"], ["2004"]])


def test_reply_checks():
    good = "<Analyze>a</Analyze><Understand>b</Understand><Answer>2004</Answer>"
    assert check_reasoning(good, task()) is None
    assert check_reasoning(good.replace("2004</Answer>", "2003</Answer>"), task()).startswith("answer mismatch")
    assert check_reasoning("<Understand>b</Understand><Answer>2004</Answer>", task()).startswith("malformed tags")
    assert check_reasoning(
        "<Analyze>a</Analyze><Code>x</Code><Execute>\n1\n</Execute><Answer>2004</Answer>", task()
    ).startswith("unexpected tags")
    cued = "<Analyze>But wait, let me look.</Analyze><Answer>2004</Answer>"
    assert check_reasoning(cued, task(), cues=["But wait,"]) is None
    assert check_reasoning(cued, task(), cues=["What happens at the boundaries?"]).startswith("cue not woven in")
    assert check_reasoning("<Analyze>x</Analyze><Answer>It has 10 rows.</Answer>", task("10"), mode="contains") is None
    assert check_reasoning("<Analyze>x</Analyze><Answer>It has 100 rows.</Answer>", task("10"), mode="contains")


def test_cues_are_seeded_per_record_and_read_from_the_vocabulary():
    cues = read_cues(REPO / "config/reasoning_cues.txt")
    assert len(cues) >= 10 and not any(c.startswith("#") for c in cues)
    assert sample_cues(cues, "nt-0", 3, 0) == sample_cues(cues, "nt-0", 3, 0)
    assert sample_cues(cues, "nt-0", 3, 0) != sample_cues(cues, "nt-0", 3, 1)
    assert len(set(sample_cues(cues, "nt-0", 3, 0))) == 3


def file_task(answer="25"):
    return TaskRecord(
        "f", "file", "How many genres?", answer, files=["chinook/Chinook_Sqlite.sqlite"], kind="file_database"
    )


CODE = "<Analyze>Count.</Analyze><Code>```python\nimport sqlite3\nprint(sqlite3.connect('Chinook_Sqlite.sqlite').execute('select count(*) from Genre').fetchone()[0])\n```</Code><Analyze>25 genres.</Analyze><Answer>{}</Answer>"


def test_file_reply_runs_for_real_and_must_be_supported(tmp_path):
    run = run_file_reply(CODE.format("25"), file_task(), DATA, tmp_path / "a", SandboxLimits())
    assert run.reason is None and "<Execute>\n25\n</Execute>" in run.text
    run = run_file_reply(CODE.format("26"), file_task("26"), DATA, tmp_path / "b", SandboxLimits())
    assert run.reason.startswith("unsupported answer")
    broken = CODE.replace("Genre", "Nope").format("25")
    assert run_file_reply(broken, file_task(), DATA, tmp_path / "c", SandboxLimits()).reason.startswith("code failed")


def test_mix_shares_seed_and_length_filter(tmp_path):
    sets = []
    for name, role, n in (("a", "data_science", 50), ("b", "general_reasoning", 50)):
        recs = [
            {
                "messages": [{"role": "user", "content": f"{name}{i}"}, {"role": "assistant", "content": "x"}],
                "id": f"{name}{i}",
            }
            for i in range(n)
        ]
        write_set(recs, tmp_path / f"{name}.arrow")
        toks = pl.DataFrame(
            {"row": range(n), "n_tokens": [10 if i % 10 else 999 for i in range(n)]},
            schema={"row": pl.UInt32, "n_tokens": pl.UInt32},
        )
        sets.append((name, role, read_set(tmp_path / f"{name}.arrow"), toks))
    out, stats = mix(sets, {"data_science": 0.75, "general_reasoning": 0.25}, None, False, 3, 100)
    assert stats["dropped_over_length"] == 10 and stats["available_by_role"] == {
        "data_science": 45,
        "general_reasoning": 45,
    }
    assert stats["by_role"] == {"data_science": 45, "general_reasoning": 15}  # total = 45 / 0.75 = 60
    again, _ = mix(sets, {"data_science": 0.75, "general_reasoning": 0.25}, None, False, 3, 100)
    assert out.index["id"].to_list() == again.index["id"].to_list()
    assert all(json.loads(r)["id"] == i for r, i in zip(out.records(), out.index["id"]))
    out.write_jsonl(tmp_path / "mix.jsonl")
    assert (tmp_path / "mix.jsonl").read_text() == "".join(out.records())
    with pytest.raises(ValueError, match="only 45 exist"):
        mix(sets, {"data_science": 1.0}, 90, False, 3, 100)


def test_mix_reads_sets_written_in_several_record_batches(tmp_path):
    """A set file with more than one record batch (any Arrow writer may produce one) mixes the same records."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    recs = [json.dumps({"id": f"r{i}", "messages": []}) + "\n" for i in range(10)]
    table = pa.table({"id": [f"r{i}" for i in range(10)], "record": pa.array(recs, pa.large_string())})
    path = tmp_path / "multi.arrow"
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as w:
        for batch in table.to_batches(max_chunksize=3):
            w.write_batch(batch)
    t = read_set(path)
    assert t.column("record").num_chunks == 4
    toks = pl.DataFrame({"row": range(10), "n_tokens": [5] * 10}, schema={"row": pl.UInt32, "n_tokens": pl.UInt32})
    out, _ = mix([("m", "data_science", t, toks)], None, None, False, 0, 100)
    assert sorted(out.records()) == sorted(recs)
    assert [json.loads(r)["id"] for r in out.records()] == out.index["id"].to_list()
    out.write_jsonl(tmp_path / "o.jsonl")
    assert (tmp_path / "o.jsonl").read_text() == "".join(out.records())
