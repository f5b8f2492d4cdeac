"""A small copy of DataScience-Instruct-500K in its released layout, for tests: every file the release has, a few
records each, the release's spellings (`interation/`, `RL/reseach.parquet`), and an RL/data.zip without the
`research/mondial_geo` workspace that two research rows name (the release's issue #68)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from darecipe.sets import CATEGORIES, STAGE1_SETS

PER_FILE = 3
MISSING = ("research", "mondial_geo")


def _table_record(name: str, i: int) -> dict:
    a, b = 10 + i, 20 + i
    return {
        "messages": [
            {
                "role": "user",
                "content": f"Question {i} of {name}: what is the total of column x?\n\nx | y\n{a} | 1\n{b} | 2",
            },
            {
                "role": "assistant",
                "content": f"<Analyze>The total of x is the sum of its rows.</Analyze>"
                f"<Understand>Two rows: x = {a} and x = {b}.</Understand>"
                f"<Answer>{a + b}</Answer>",
            },
        ],
        "id": f"{name}-{i}",
    }


def _plain_record(name: str, i: int) -> dict:
    # sharegpt form (from/value): ms-swift reads it, so the release may use it
    return {
        "conversations": [
            {"from": "human", "value": f"{name} problem {i}: what is {i} + {i}?"},
            {"from": "gpt", "value": f"<think>Add {i} to itself.</think> The answer is {2 * i}."},
        ]
    }


def _trajectory(category: str, i: int) -> dict:
    code = "```python\nimport pandas as pd\ndf = pd.read_csv('sales.csv')\nprint(df['amount'].sum())\n```"
    return {
        "messages": [
            {
                "role": "user",
                "content": f"# Instruction\n{category} task {i}: report the total amount.\n\n"
                '# Data\nFile 1: {"name": "sales.csv", "size": "0.1KB"}',
            },
            {
                "role": "assistant",
                "content": f"<Analyze>Read the file and sum the amounts.</Analyze><Code>{code}</Code>"
                f"<Execute>\n60\n</Execute><Answer>The total amount is 60.</Answer>",
            },
        ],
        "id": f"{category}-{i}",
    }


def _sqlite(path: Path, table: str, rows: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as con:
        con.execute(f"create table {table} (name text, amount integer)")
        con.executemany(f"insert into {table} values (?, ?)", rows)


def _rl_row(data: str, workspace_id: str, method: str, task: str, files: str, truth: str = "") -> dict:
    prompt = f"# Instruction\n{task}\n\n# Data\n{files}"
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "env_class": "deepanalyze",
        "reward_spec": {"method": method, "ground_truth": truth, "function": ""},
        "data": data,
        "workspace_id": workspace_id,
        "input_seq": task,
    }


def build_released(root: Path) -> Path:
    """Write the fixture under `root` and return it."""
    (root / "reasoning").mkdir(parents=True)
    for name, s in STAGE1_SETS.items():
        make = _plain_record if s.role == "general_reasoning" else _table_record
        records = [make(name, i) for i in range(PER_FILE)]
        (root / "reasoning" / f"{name}_{PER_FILE}.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    (root / "interation").mkdir()
    for category in CATEGORIES:
        records = [_trajectory(category, i) for i in range(PER_FILE)]
        (root / "interation" / f"{category}_{PER_FILE}.json").write_text(json.dumps(records), encoding="utf-8")

    ws = root / "_workspaces" / "data"
    _sqlite(ws / "bird" / "student_club" / "student_club.sqlite", "budget", [("food", 20), ("venue", 40)])
    (ws / "files" / "f001").mkdir(parents=True)
    (ws / "files" / "f001" / "sales.csv").write_text("name,amount\na,10\nb,20\nc,30\n", encoding="utf-8")
    _sqlite(ws / "research" / "european_football_2" / "european_football_2.sqlite", "team", [("x", 1), ("y", 2)])
    rl = root / "RL"
    rl.mkdir()
    with zipfile.ZipFile(rl / "data.zip", "w") as zf:
        for p in sorted(ws.rglob("*")):
            zf.write(p, p.relative_to(ws.parent))
    db = '{"name": "student_club.sqlite", "size": "8.0KB"}'
    csv = '{"name": "sales.csv", "size": "0.0KB"}'
    sets = {
        "qa.parquet": [
            _rl_row("bird", "student_club", "qa", f"What is the total budget? ({i})", f"File 1: {db}", "60")
            for i in range(2)
        ],
        "datatask.parquet": [
            _rl_row(
                "files", "f001", "datatask", f"Sum the amounts per name ({i}).", f"File 1: {csv}", "a 10, b 20, c 30"
            )
            for i in range(2)
        ],
        "reseach.parquet": [
            _rl_row("research", "european_football_2", "openresearch", "Write a report on the teams.", "File 1: x"),
            _rl_row(*MISSING, "openresearch", "Write a report on the world's deserts.", "File 1: mondial_geo.sqlite"),
            _rl_row(*MISSING, "openresearch", "Write a report on the rivers.", "File 1: mondial_geo.sqlite"),
        ],
    }
    for fname, rows in sets.items():
        pq.write_table(pa.Table.from_pylist(rows), rl / fname)
    shutil.rmtree(root / "_workspaces")
    return root
