"""Stage-2/3 synthesis spread over jobs: one job per (category, workspace, batch), each asking its questioner for its
share of the tasks and keeping its own response cache, so a rerun after a kill repeats no completed request. The
teacher is a real OpenAI-compatible endpoint on 127.0.0.1 that counts what it receives."""

import json
import re
import shutil

from conftest import copy_repo, job_counts, snakemake

from darecipe.testserver import FakeOpenAI

CODE = "```python\nimport pandas as pd\nprint(len(pd.read_csv('Simpson.csv')))\n```"


def teacher(messages: list[dict], body: dict) -> str:
    first = messages[0]["content"]
    if first.startswith("You are the questioner"):
        n_sft, n_rl = map(int, re.search(r"Write (\d+) task\(s\).*?and (\d+) task\(s\)", first, re.DOTALL).groups())
        batch = re.search(r"This is batch (\d+) of", first)
        tag = f"batch {batch.group(1)}" if batch else "single batch"
        tasks = [
            {"purpose": "sft", "task": f"Count the rows ({tag}, {i}).", "checklist": {"turn_budget": 2}}
            for i in range(n_sft)
        ]
        tasks += [
            {"purpose": "rl", "rl_method": "qa", "task": f"How many rows? ({tag}, {i})", "answer": "14"}
            for i in range(n_rl)
        ]
        return json.dumps({"tasks": tasks})
    if first.startswith("You are the inspector"):
        return '{"accept": true, "reasons": []}'
    if messages[-1]["role"] == "user" and messages[-1]["content"].startswith("<Execute>"):
        return "<Answer>The file has the rows printed above.</Answer>"
    return f"<Analyze>Count the rows.</Analyze><Code>{CODE}</Code>"


def test_batches_are_jobs_with_their_own_caches_and_a_rerun_asks_nothing_again(tmp_path_factory, monkeypatch):
    work = copy_repo(tmp_path_factory.mktemp("shards"))
    monkeypatch.setenv("DARECIPE_TEST_KEY", "test-key")
    with FakeOpenAI(reply=teacher) as server:
        cfg = work / "shards.yaml"
        cfg.write_text(
            json.dumps(
                {
                    "llm": {
                        "backend": "openai",
                        "model": "teacher",
                        "base_url": server.base_url,
                        "api_key_env": "DARECIPE_TEST_KEY",
                    },
                    "synthesis": {
                        "workspaces": {"simpson": ["deepanalyze_examples/simpson/Simpson.csv"]},
                        "categories": {"data_analysis": ["simpson"]},
                        "sft_per_workspace": 3,
                        "rl_per_workspace": 1,
                        "tasks_per_job": 2,
                        "tasks_per_request": 1,
                        "max_turns": 3,
                    },
                }
            )
        )
        args = ("results/data/synthesis/data_analysis.jsonl", "--configfile", str(cfg), "--replace-workflow-config")
        assert job_counts(snakemake(work, "-n", *args).stdout)["synth_shard"] == 2  # 4 tasks, at most 2 a job
        snakemake(work, "--cores", "2", *args)
        asked = server.requests
        # 3 + 1 tasks in jobs of at most 2 ((2, 0) and (1, 1)), asked one task per questioner request
        questions = [b["messages"][0]["content"] for b in server.bodies if "questioner" in b["messages"][0]["content"]]
        assert sorted(re.search(r"Write (\d+) task.*?and (\d+) task", q, re.DOTALL).groups() for q in questions) == [
            ("0", "1"),
            ("1", "0"),
            ("1", "0"),
            ("1", "0"),
        ]
        assert sorted(re.search(r"This is (request \d of 2 in batch \d of 2)", q).group(1) for q in questions) == [
            "request 1 of 2 in batch 1 of 2",
            "request 1 of 2 in batch 2 of 2",
            "request 2 of 2 in batch 1 of 2",
            "request 2 of 2 in batch 2 of 2",
        ]

        out = [
            json.loads(line) for line in (work / "results/data/synthesis/data_analysis.jsonl").read_text().splitlines()
        ]
        assert sorted(r["id"] for r in out) == [
            "data_analysis-simpson-b0-r0-0",
            "data_analysis-simpson-b0-r1-0",
            "data_analysis-simpson-b1-r0-0",
        ]
        metrics = json.loads((work / "results/data/synthesis/data_analysis.metrics.json").read_text())
        assert (metrics["shards"], metrics["accepted"], metrics["rl_tasks"]) == (2, 3, 1)
        caches = sorted(
            p.relative_to(work / "results/cache/llm/synthesis").as_posix()
            for p in (work / "results/cache/llm/synthesis").rglob("*.jsonl")
        )
        assert caches == [
            f"data_analysis/simpson/{b}/{role}.jsonl" for b in (0, 1) for role in ("inspector", "questioner", "solver")
        ]

        # a killed job loses its outputs, not its cache: the rerun is answered from the cache alone
        shutil.rmtree(work / "results/data/synthesis/shards/data_analysis/simpson")
        snakemake(work, "--cores", "2", *args)
        assert server.requests == asked
        rerun = [
            json.loads(line) for line in (work / "results/data/synthesis/data_analysis.jsonl").read_text().splitlines()
        ]
        assert rerun == out
