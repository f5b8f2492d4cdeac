import json

import pytest

from darecipe.io import InputError
from darecipe.sandbox import SandboxLimits
from darecipe.loaders import Rejects
from darecipe.seed import interaction_records, rl_rows

from conftest import REPO

DATA = REPO / "resources/data"


def write(path, lines):
    path.write_text("".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in lines))
    return path


def test_seed_files_build_cleanly(tmp_path):
    rejects = Rejects()
    by_cat = interaction_records(REPO / "resources/seed/interaction.jsonl", DATA, SandboxLimits(), rejects)
    assert sum(map(len, by_cat.values())) == 6 and not rejects
    rows = rl_rows(REPO / "resources/seed/rl_tasks.jsonl", DATA, tmp_path)
    assert {k: len(v) for k, v in rows.items()} == {"qa": 3, "datatask": 3, "research": 3}
    for set_rows in rows.values():
        for r in set_rows:
            assert (tmp_path / r["data"] / r["workspace_id"]).is_dir()


def test_trajectory_whose_code_fails_is_rejected(tmp_path):
    rec = {
        "id": "t", "category": "data_analysis", "task": "x", "files": [],
        "steps": [{"Analyze": "a"}, {"Code": "```python\n1/0\n```"}, {"Answer": "b"}],
    }  # fmt: skip
    rejects = Rejects()
    assert interaction_records(write(tmp_path / "i.jsonl", [rec]), DATA, SandboxLimits(), rejects) == {}
    assert "ZeroDivisionError" in rejects[0]["reason"]


def test_missing_workspace_file_is_named(tmp_path):
    rec = {"id": "r", "set": "qa", "data": "d", "task": "t", "answer": "1", "files": ["nowhere.csv"]}
    with pytest.raises(InputError, match=r"r\.jsonl:1: field 'files': .*nowhere\.csv does not exist"):
        rl_rows(write(tmp_path / "r.jsonl", [rec]), DATA, tmp_path / "ws")
