"""Each raw loader on a fixture in its upstream format (WikiTQ full release, FinQA, TAT-QA, SKGInstruct,
AM-DeepSeek-R1-0528-Distilled subsets, BIRD / Spider database folders), and the rules that turn them into stage-1
sets and synthesis workspaces."""

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import REPO, copy_repo, snakemake

from darecipe.loaders import (
    Rejects,
    database_workspace_files,
    load_am_distilled,
    load_finqa,
    load_skginstruct,
    load_tatqa,
    load_wikitq,
    sqlite_databases,
)
from darecipe.mix import set_records
from darecipe.synthesis_plan import PlanError, category_workspaces, jobs, workspaces

SHIPPED = REPO / "resources/data/wikitablequestions"


def wikitq_release(root: Path) -> Path:
    """The layout of the WikiTableQuestions v1.0.2 release: data/*.tsv next to csv/<2xx>-csv/<n>.csv (two real
    tables from the shipped subset, in the release's CSV dialect)."""
    for rel in ("csv/204-csv/590.csv", "csv/204-csv/622.csv"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHIPPED / rel, root / rel)
    (root / "data").mkdir()
    (root / "data/training.tsv").write_text(
        "id\tutterance\tcontext\ttargetValue\n"
        "nt-0\twhat was the last year where this team was a part of the usl a-league?\tcsv/204-csv/590.csv\t2004\n"
        "nt-1\tin what city did piotr's last 1st place finish occur?\tcsv/204-csv/622.csv\tBangkok, Thailand\n"
        "nt-9\twhich table is missing?\tcsv/204-csv/1.csv\tnone\n",
        encoding="utf-8",
    )
    return root


def test_wikitq_full_release_layout(tmp_path):
    root = wikitq_release(tmp_path / "WikiTableQuestions-7d455a5a707b96341ef72aff9428749d443d8aa9")
    rejects = Rejects()
    tasks = load_wikitq(root / "data/training.tsv", root, rejects)
    assert [(t.id, t.answer) for t in tasks] == [("nt-0", "2004"), ("nt-1", "Bangkok, Thailand")]
    assert tasks[0].table[0][0] == "Year" and len(tasks[0].table) > 5
    assert [(r["id"], r["reason"]) for r in rejects] == [("nt-9", "missing table: csv/204-csv/1.csv")]


def test_finqa_original_format(tmp_path):
    records = [
        {
            "pre_text": ["revenue rose in 2009 ."],
            "post_text": ["( in millions )"],
            "table": [["", "2009", "2008"], ["revenue", "$ 5829", "$ 5735"]],
            "id": "ETR/2016/page_23.pdf-2",
            "filename": "ETR/2016/page_23.pdf",
            "qa": {
                "question": "what is the net change in revenue from 2008 to 2009?",
                "program": "subtract(5829, 5735)",
                "exe_ans": 94.0,
                "gold_inds": {"table_1": "revenue"},
            },
        },
        {
            "pre_text": [],
            "post_text": [],
            "table": [],
            "id": "X/2010/page_1.pdf-1",
            "qa": {"question": "a question without its table", "exe_ans": 1.0},
        },
    ]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(records))
    rejects = Rejects()
    tasks = load_finqa(path, rejects)
    assert [(t.id, t.answer, t.text) for t in tasks] == [
        ("finqa-ETR/2016/page_23.pdf-2", "94", "revenue rose in 2009 . ( in millions )")
    ]
    assert rejects[0]["reason"] == "missing table"


def test_tatqa_upstream_format(tmp_path):
    block = {
        "table": {
            "uid": "3ffd9053",
            "table": [
                ["", "2019", "2018"],
                ["Fixed Price", "$ 1,452.4", "$ 1,146.2"],
                ["Total sales", "$1,496.5", "$1,202.9"],
            ],
        },
        "paragraphs": [
            {"uid": "p2", "order": 2, "text": "Second paragraph."},
            {"uid": "p1", "order": 1, "text": "First."},
        ],
        "questions": [
            {
                "uid": "23801627-ff77",
                "order": 1,
                "question": "What is the amount of total sales in 2019?",
                "answer": ["$1,496.5"],
                "derivation": "",
                "answer_type": "span",
                "answer_from": "table-text",
                "rel_paragraphs": ["2"],
                "req_comparison": False,
                "scale": "million",
            },
            {
                "uid": "4960801d-277d",
                "order": 2,
                "question": "What is the change in total sales?",
                "answer": 293.6,
                "derivation": "1,496.5-1,202.9",
                "answer_type": "arithmetic",
                "scale": "million",
            },
            {"uid": "empty-answer", "order": 3, "question": "What is nothing?", "answer": [], "answer_type": "span"},
        ],
    }
    path = tmp_path / "tatqa_dataset_train.json"
    path.write_text(json.dumps([block]))
    rejects = Rejects()
    tasks = load_tatqa(path, rejects)
    assert [(t.question, t.answer, t.meta["scale"]) for t in tasks] == [
        ("What is the amount of total sales in 2019?", "$1,496.5", "million"),
        ("What is the change in total sales?", "293.6", "million"),
    ]
    assert tasks[0].text == "First.\nSecond paragraph." and tasks[0].table[2][0] == "Total sales"
    assert [(r["where"].rsplit(":", 1)[-1], r["reason"]) for r in rejects] == [
        ("record 0 question 2", "empty gold answer")
    ]


def skginstruct_file(path: Path) -> Path:
    path.write_text(
        json.dumps(
            [
                {
                    "task_name": "wikitq",
                    "sys_prompt": "You are an AI assistant that specializes in analyzing tables.",
                    "input": "[TLE] The table is about medals. col : nation | gold row 1 : norway | 3\n\nwhich nation won the most?",
                    "label": "norway",
                    "arg_path": "META_TUNING/wikitq.cfg",
                },
                {
                    "task_name": "tab_fact",
                    "sys_prompt": "",
                    "input": "table: ... statement: x",
                    "label": "",
                    "arg_path": "x",
                },
                {"task_name": "slimorca", "sys_prompt": "", "input": "Say hi.", "label": "Hi!"},
            ]
        )
    )
    return path


def test_skginstruct_records_become_messages(tmp_path):
    rejects = Rejects()
    recs = load_skginstruct(skginstruct_file(tmp_path / "skginstruct.json"), rejects)
    assert [m["role"] for m in recs[0]["messages"]] == ["system", "user", "assistant"]
    assert recs[0]["messages"][-1]["content"] == "norway" and recs[0]["source"] == "skginstruct/wikitq"
    assert [m["role"] for m in recs[1]["messages"]] == ["user", "assistant"]
    assert [(r["where"].rsplit(":", 1)[-1], r["reason"]) for r in rejects] == [("record 1", "empty label")]


def am_subset(path: Path, n: int = 10) -> Path:
    lines = [
        {
            "system": "You are a helpful assistant. Think inside <think></think>, answer inside <answer></answer>.",
            "conversations": [
                {
                    "from": "human",
                    "value": f"What is {i} squared?",
                    "info": {"source": "OpenMathReasoning", "category": "math", "ground_truth": str(i * i)},
                },
                {
                    "from": "assistant",
                    "value": f"<think>{i} times {i}.</think> <answer>{i * i}</answer>",
                    "info": {
                        "source": "OpenMathReasoning",
                        "think_content": f"{i} times {i}.",
                        "answer_content": str(i * i),
                        "verify_score": 1.0,
                        "model_name": "deepseek-r1-0528",
                    },
                },
            ],
        }
        for i in range(n)
    ]
    lines.insert(3, {"system": "", "conversations": [{"from": "human", "value": "no reply"}]})
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_am_distilled_subset_sampled_reproducibly(tmp_path):
    path = am_subset(tmp_path / "math.jsonl")
    rejects = Rejects()
    all_recs = load_am_distilled(path, rejects)
    assert len(all_recs) == 10 and rejects[0]["where"] == f"{path}:4"
    assert all_recs[2]["messages"] == [
        {"role": "user", "content": "What is 2 squared?"},
        {"role": "assistant", "content": "<think>2 times 2.</think> <answer>4</answer>"},
    ]
    assert all_recs[0]["source"] == "am-0528/OpenMathReasoning"
    a = load_am_distilled(path, Rejects(), limit=4, seed=7)
    assert len(a) == 4 and a == load_am_distilled(path, Rejects(), limit=4, seed=7)
    assert [r["id"] for r in a] != [r["id"] for r in load_am_distilled(path, Rejects(), limit=4, seed=8)]


def _db(path: Path, table: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as con:
        con.execute(f"create table {table} (id integer, name text)")
        con.executemany(f"insert into {table} values (?, ?)", [(1, "a"), (2, "b")])


def bird_and_spider(root: Path) -> tuple[Path, Path]:
    bird = root / "train" / "train_databases"
    for db in ("student_club", "movie_3"):
        _db(bird / db / f"{db}.sqlite", "t")
        (bird / db / "database_description").mkdir()
        (bird / db / "database_description" / "t.csv").write_text("original_column_name,column_description\nid,key\n")
    (bird / "notes").mkdir()  # a folder without a database is not a workspace
    spider = root / "spider" / "database"
    _db(spider / "concert_singer" / "concert_singer.sqlite", "singer")
    (spider / "concert_singer" / "schema.sql").write_text("create table singer (id integer, name text);\n")
    return bird, spider


def test_bird_and_spider_folders_list_their_databases(tmp_path):
    bird, spider = bird_and_spider(tmp_path)
    assert list(sqlite_databases(bird)) == ["movie_3", "student_club"]
    assert list(sqlite_databases(spider)) == ["concert_singer"]
    assert database_workspace_files(bird, "movie_3", True) == [
        "movie_3/movie_3.sqlite",
        "movie_3/database_description/t.csv",
    ]
    syn = {
        "data_root": "resources/data",
        "workspaces": {},
        "sft_per_workspace": 3,
        "rl_per_workspace": 2,
        "tasks_per_job": 2,
        "sqlite_dirs": {"bird": {"path": str(bird)}, "spider": {"path": str(spider)}},
        "categories": {"research_database": ["bird:*", "spider:*"], "data_analysis": ["spider_concert_singer"]},
    }
    assert category_workspaces(syn, "research_database") == [
        "bird_movie_3",
        "bird_student_club",
        "spider_concert_singer",
    ]
    assert workspaces(syn)["bird_movie_3"].database == "movie_3"
    plan = jobs(syn)
    # 5 tasks per (category, workspace) in batches of at most 2: 3 jobs each, sft 3 = 1+1+1, rl 2 = 1+1+0
    assert len(plan) == 4 * 3 and [(j.n_sft, j.n_rl) for j in plan[:3]] == [(1, 1), (1, 1), (1, 0)]
    syn["sqlite_dirs"]["later"] = {"path": str(tmp_path / "not-yet"), "databases": ["x", "y"]}
    syn["categories"]["data_insight"] = ["later:*"]
    assert category_workspaces(syn, "data_insight") == ["later_x", "later_y"]
    syn["sqlite_dirs"]["later"]["databases"] = None
    with pytest.raises(PlanError, match="list its databases"):
        jobs(syn)


def test_raw_files_become_stage1_sets_and_databases_become_workspaces_by_rule(tmp_path_factory):
    """Through the rules: stage1_extra_set reads the upstream formats, synth_workspace builds a workspace per
    database of a BIRD / Spider folder."""
    work = copy_repo(tmp_path_factory.mktemp("raw-rules"))
    raw = work / "raw"
    raw.mkdir()
    bird, spider = bird_and_spider(raw)
    overlay = work / "raw.yaml"
    overlay.write_text(
        json.dumps(
            {
                "stage1_data": {
                    "extra_sets": {
                        "SKGInstruct": {
                            "path": str(skginstruct_file(raw / "skginstruct.json")),
                            "format": "skginstruct",
                        },
                        "math": {"path": str(am_subset(raw / "math.jsonl")), "format": "am_distilled", "limit": 5},
                    }
                },
                "synthesis": {
                    "sqlite_dirs": {"bird": {"path": str(bird), "descriptions": True}, "spider": {"path": str(spider)}}
                },
            }
        )
    )
    targets = [
        "results/data/stage1/sets/SKGInstruct.arrow",
        "results/data/stage1/sets/math.arrow",
        "results/data/synthesis/workspaces/bird_student_club",
        "results/data/synthesis/workspaces/spider_concert_singer",
    ]
    snakemake(work, "--cores", "2", *targets, "--configfile", "config/config.yaml", str(overlay))
    skg = set_records(work / targets[0])
    assert len(skg) == 2 and {r["provenance"] for r in skg} == {"supplied"} and skg[0]["set"] == "SKGInstruct"
    math = set_records(work / targets[1])
    assert len(math) == 5 and math[0]["messages"][0]["role"] == "user"
    assert json.loads((work / "results/data/stage1/sets/math.metrics.json").read_text())["rejected"] == 1
    assert sorted(p.name for p in (work / targets[2]).iterdir() if p.name[0] != ".") == ["student_club.sqlite", "t.csv"]
    assert sorted(p.name for p in (work / targets[3]).iterdir() if p.name[0] != ".") == ["concert_singer.sqlite"]
