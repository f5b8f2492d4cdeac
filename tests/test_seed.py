import json

import pytest

from darecipe.io import InputError
from darecipe.sandbox import SandboxLimits
from darecipe.seed import Rejects, interaction_records, rl_rows, stage1_records

from conftest import REPO

DATA = REPO / "resources/data"


def write(path, lines):
    path.write_text("".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in lines))
    return path


def test_seed_files_build_cleanly(tmp_path):
    rejects = Rejects()
    assert len(stage1_records(REPO / "resources/seed/stage1.jsonl", DATA, rejects)) == 12
    by_cat = interaction_records(REPO / "resources/seed/interaction.jsonl", DATA, SandboxLimits(), rejects)
    assert sum(map(len, by_cat.values())) == 6 and not rejects.rows
    rows = rl_rows(REPO / "resources/seed/rl_tasks.jsonl", DATA, tmp_path)
    assert {k: len(v) for k, v in rows.items()} == {"qa": 3, "datatask": 3, "research": 3}
    for set_rows in rows.values():
        for r in set_rows:
            assert (tmp_path / r["data"] / r["workspace_id"]).is_dir()


def test_bad_json_line_names_file_and_line(tmp_path):
    seed = write(tmp_path / "s.jsonl", [{"id": "a", "question": "q", "answer": "1", "response": "x"}, "{not json\n"])
    with pytest.raises(InputError, match=r"s\.jsonl:2: invalid JSON"):
        stage1_records(seed, DATA, Rejects())


def test_missing_or_empty_field_names_it(tmp_path):
    seed = write(tmp_path / "s.jsonl", [{"id": "a", "question": "  ", "answer": "1", "response": "x"}])
    with pytest.raises(InputError, match=r"s\.jsonl:1: field 'question' must be a non-empty str"):
        stage1_records(seed, DATA, Rejects())


def test_non_utf8_line_is_named(tmp_path):
    seed = tmp_path / "s.jsonl"
    good = b'{"id": "a", "question": "q", "answer": "2", "response": "<Analyze>x</Analyze><Answer>2</Answer>"}\n'
    seed.write_bytes(good + b'{"id": "\xff"}\n')
    with pytest.raises(InputError, match=r"s\.jsonl:2: not valid UTF-8"):
        stage1_records(seed, DATA, Rejects())


def test_wrong_answer_and_bad_tags_are_rejected_with_reasons(tmp_path):
    good = {"id": "ok", "question": "q", "answer": "2", "response": "<Analyze>1+1</Analyze><Answer>2</Answer>"}
    wrong = {**good, "id": "wrong", "answer": "3"}
    broken = {**good, "id": "broken", "response": "<Analyze>1+1<Answer>2</Answer>"}
    rejects = Rejects()
    recs = stage1_records(write(tmp_path / "s.jsonl", [good, wrong, broken]), DATA, rejects)
    assert [r["id"] for r in recs] == ["ok"]
    reasons = {r["id"]: r["reason"] for r in rejects.rows}
    assert reasons["wrong"].startswith("answer mismatch") and reasons["broken"].startswith("malformed tags")


def test_trajectory_whose_code_fails_is_rejected(tmp_path):
    rec = {
        "id": "t", "category": "data_analysis", "task": "x", "files": [],
        "steps": [{"Analyze": "a"}, {"Code": "```python\n1/0\n```"}, {"Answer": "b"}],
    }  # fmt: skip
    rejects = Rejects()
    assert interaction_records(write(tmp_path / "i.jsonl", [rec]), DATA, SandboxLimits(), rejects) == {}
    assert "ZeroDivisionError" in rejects.rows[0]["reason"]


def test_missing_workspace_file_is_named(tmp_path):
    rec = {"id": "r", "set": "qa", "data": "d", "task": "t", "answer": "1", "files": ["nowhere.csv"]}
    with pytest.raises(InputError, match=r"r\.jsonl:1: field 'files': .*nowhere\.csv does not exist"):
        rl_rows(write(tmp_path / "r.jsonl", [rec]), DATA, tmp_path / "ws")
