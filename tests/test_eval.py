"""Evaluation: metrics on hand-written trajectories, WikiTQ denotation match, held-out disjointness."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_repo, copy_run, snakemake

from darecipe.agent import State, run_agents
from darecipe.evaluation import aggregate, generated_text, overlaps, score, summary_markdown, wtq_denotation_match
from darecipe.sandbox import SandboxLimits

TASKS = {
    "right": {"id": "right", "source": "wikitq", "answer": "Italy", "meta": {"answer_list": ["Italy"], "canon": None}},
    "wrong": {"id": "wrong", "source": "wikitq", "answer": "Italy", "meta": {"answer_list": ["Italy"], "canon": None}},
    "no_answer": {"id": "no_answer", "source": "finqa", "answer": "12"},
    "malformed": {"id": "malformed", "source": "finqa", "answer": "12"},
    "failed_code": {"id": "failed_code", "source": "file", "answer": "2"},
}

# What a scripted model writes at each turn; code runs for real in the sandbox between turns.
SCRIPT = {
    "right": ["<Analyze>Count the rows.</Analyze><Code>print(1)</Code>", "<Answer>italy.</Answer>"],
    "wrong": ["<Analyze>Guess.</Analyze><Answer>Spain</Answer>"],
    # no code and no answer: each turn gets the failed "No code is provided" observation, up to the turn limit
    "no_answer": ["<Analyze>I keep thinking"] * 5,
    "malformed": ["<Analyze>The sum is 12<Answer>12</Answer>"],
    "failed_code": ["<Code>print(1 / 0)</Code>", "<Code>print(1 + 1)</Code>", "<Answer>2</Answer>"],
}


def scripted(states):
    return [SCRIPT[s.id][s.text.count("</Execute>")] for s in states]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("ws")
    workspaces = [root / name for name in SCRIPT]
    for ws in workspaces:
        ws.mkdir()
    states = [State(name, f"# Instruction\ntask {name}") for name in SCRIPT]
    trajs = run_agents(scripted, states, workspaces, SandboxLimits(timeout_s=10), max_turns=5)
    rows = []
    for tr in trajs:
        traj = {"text": tr.text, "turns": tr.turns, "exec_ok": tr.exec_ok, "exec_total": tr.exec_total}
        rows.append(score(TASKS[tr.id], traj, 1e-3, len(generated_text(tr.text).split())))
    return {r["id"]: r for r in rows}


def test_each_trajectory_scores_as_written(scored):
    expect = {  # format_ok, completed, correct, rounds, code_blocks, code_ok
        "right": (True, True, True, 2, 1, 1),
        "wrong": (True, True, False, 1, 0, 0),
        "no_answer": (False, False, False, 5, 0, 0),
        "malformed": (False, True, True, 1, 0, 0),  # a right answer in broken tags: correct, not format-valid
        "failed_code": (True, True, True, 3, 2, 1),
    }
    for name, (fmt, done, correct, rounds, blocks, ok) in expect.items():
        r = scored[name]
        assert (r["format_ok"], r["completed"], r["correct"], r["rounds"], r["code_blocks"], r["code_ok"]) == (
            fmt,
            done,
            correct,
            rounds,
            blocks,
            ok,
        ), name
    assert scored["no_answer"]["answer"] is None


def test_aggregate_gives_the_expected_numbers(scored):
    m = aggregate(list(scored.values()))
    assert m["tasks"] == 5
    assert m["format_validity"] == 0.6
    assert m["accuracy"] == 0.6
    assert m["completion_rate"] == 0.8
    assert m["avg_rounds"] == 2.4  # (2 + 1 + 5 + 1 + 3) / 5
    assert m["code_blocks"] == 3 and m["code_success_rate"] == round(2 / 3, 6)
    tokens = [scored[n]["tokens"] for n in SCRIPT]
    assert m["tokens_per_task"] == round(sum(tokens) / 5, 6)
    assert m["by_source"] == {
        "wikitq": {"tasks": 2, "accuracy": 0.5},
        "finqa": {"tasks": 2, "accuracy": 0.5},
        "file": {"tasks": 1, "accuracy": 1.0},
    }


def test_tokens_exclude_the_environments_observations():
    text = "<Code>print(1)</Code><Execute>\nlots of output here\n</Execute><Answer>1</Answer>"
    assert "lots of output" not in generated_text(text)


@pytest.mark.parametrize(
    "predicted, targets, canon, expected",
    [
        (["italy."], ["Italy"], None, True),  # case and final period, as the official normaliser
        (['"Italy"'], ["Italy"], None, True),  # outer quotes
        (["100000"], ["100,000"], ["100000.0"], True),  # number against targetCanon
        (["100,000"], ["100,000"], ["100000.0"], True),  # same string
        (["99999"], ["100,000"], ["100000.0"], False),
        (["b", "a"], ["a", "b"], None, True),  # order does not matter
        (["a"], ["a", "b"], None, False),  # every target value needed
        (["a", "b", "c"], ["a", "b"], None, False),
        (["1998"], ["1998-xx-xx"], ["1998-xx-xx"], False),  # a year is a number, not the date value
        (["1998-xx-xx"], ["1998"], ["1998-xx-xx"], True),
        (["17 years"], ["17 years"], None, True),
        (["Caisse d'Épargne"], ["Caisse d'Epargne"], None, True),  # diacritics removed
    ],
)
def test_wikitq_denotation_match(predicted, targets, canon, expected):
    assert wtq_denotation_match(predicted, targets, canon) is expected


def test_summary_table_has_a_row_per_stage():
    row = {
        "tasks": 4,
        "accuracy": 0.5,
        "completion_rate": 1.0,
        "format_validity": 0.25,
        "avg_rounds": 2.0,
        "code_success_rate": None,
        "tokens_per_task": 10.0,
    }
    md = summary_markdown({"stage1": row, "stage3": row})
    lines = md.strip().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| stage1 | 4 | 50.0 % | 100.0 % | 25.0 % | 2.0 | — |")


def test_accuracy_by_source_follows_the_stage_table():
    rows = [
        score(
            TASKS["right"],
            {"text": "<Analyze>x</Analyze><Answer>Italy</Answer>", "turns": 1, "exec_ok": 0, "exec_total": 0},
            1e-3,
            5,
        ),
        score(TASKS["no_answer"], {"text": "<Analyze>x</Analyze>", "turns": 1, "exec_ok": 0, "exec_total": 0}, 1e-3, 3),
    ]
    md = summary_markdown({"stage2": aggregate(rows)})
    assert "| accuracy by source | wikitq | finqa |" in md and "| stage2 | 1/1 | 0/1 |" in md


def test_demo_screen_shows_stage3_steps_and_first_versus_last():
    from darecipe.demo_report import stage3_table

    steps = [
        {
            "step": i,
            "rollouts": 4,
            "reward_mean": r,
            "reward_std": 0.5,
            "code_share": 0.75,
            "code_success_rate": 1.0,
            "gate_share": 0.25,
        }
        for i, r in enumerate([-1.0, 0.0, 0.5, 1.0], start=1)
    ]
    lines = stage3_table(steps)
    assert "| 1 | 4 | -1.00 | 0.50 | 75 % | 100 % | 25 % |" in lines and lines[0] == "Stage 3 (GRPO) per step"
    assert lines[-1] == "mean reward, first 2 step(s): -0.500; last 2 step(s): 0.750"


# --- held-out tasks are disjoint from every training set -------------------------------------------------------


def test_overlap_is_found_by_id_and_by_question_text(tmp_path):
    tasks = [
        {"id": "nu-0", "question": "Which country had the most cyclists finish within the top 10?"},
        {"id": "nu-1", "question": "How many people were murdered in 1940/41?"},
    ]
    clean = tmp_path / "clean.jsonl"
    clean.write_text(
        json.dumps({"id": "nt-0", "messages": [{"role": "user", "content": "what is the capital?"}]}) + "\n"
    )
    same_id = tmp_path / "same_id.jsonl"
    same_id.write_text(json.dumps({"id": "nu-1", "messages": [{"role": "user", "content": "x"}]}) + "\n")
    same_text = tmp_path / "same_text.jsonl"
    prompt = "# Instruction\nwhich country had the MOST cyclists finish within the top 10 ?\n\n# Table\n..."
    same_text.write_text("\n" + json.dumps({"id": "other", "messages": [{"role": "user", "content": prompt}]}) + "\n")
    assert overlaps(tasks, [clean]) == []
    found = overlaps(tasks, [clean, same_id, same_text])
    assert found == [
        f"{same_id}:1: held-out task 'nu-1' is a training record (same id)",
        f"{same_text}:2: the question of held-out task 'nu-0' appears in a training prompt",
    ]


def test_stage1_pool_excludes_heldout_tasks_even_when_the_whole_file_is_used(tmp_path):
    """With no limit (the paper config) the FinQA-family files would include the held-out records."""
    work = copy_repo(tmp_path / "work")
    overlay = tmp_path / "all.yaml"
    overlay.write_text("stage1_data: {finqa: {limit: null}, tatqa: {limit: null}}\n")
    snakemake(
        work,
        "--cores",
        "1",
        "results/data/stage1/tasks/tableqa.jsonl",
        "--configfile",
        "config/config.yaml",
        str(overlay),
    )
    pool = [json.loads(line) for line in (work / "results/data/stage1/tasks/tableqa.jsonl").read_text().splitlines()]
    held = [json.loads(line) for line in (REPO / "resources/eval/heldout.jsonl").read_text().splitlines()]
    held_ids = {h["id"] for h in held if h["source"] in ("finqa", "tatqa")}
    assert len(held_ids) == 20
    pool_ids = {r["id"] for r in pool}
    assert not held_ids & pool_ids
    assert len([r for r in pool if r["source"] in ("finqa", "tatqa")]) == 100 - 20
    assert "excluded 20 held-out evaluation tasks" in (work / "logs/stage1_tasks.log").read_text()


def _user_texts(path: Path):
    """Independent of the pipeline's checker: every id and user-side text of a training file."""
    if path.suffix == ".parquet":
        import polars as pl

        for row in pl.read_parquet(path).iter_rows(named=True):
            yield row.get("workspace_id") or "", " ".join(m["content"] for m in row["prompt"]) + " " + row["input_seq"]
        return
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            users = " ".join(m["content"] for m in rec.get("messages", []) if m["role"] == "user")
            yield rec.get("id", ""), users + " " + rec.get("question", "")


@pytest.mark.pipeline
def test_heldout_tasks_are_disjoint_from_every_training_set(demo_run):
    work = demo_run["dir"]
    check = json.loads((work / "results/eval/disjointness.json").read_text())
    assert check["overlaps"] == []
    tasks = [json.loads(line) for line in (work / "results/eval/tasks.jsonl").read_text().splitlines()]
    assert {t["source"] for t in tasks} == {"wikitq", "finqa", "tatqa", "file"}  # DABStep: no context files here
    files = [work / f for f in check["training_files"]]
    assert any("stage1/train.jsonl" in str(f) for f in files) and any(f.suffix == ".parquet" for f in files)
    norm = lambda s: " ".join("".join(c if c.isalnum() else " " for c in s.lower()).split())  # noqa: E731
    for f in files:
        for rid, text in _user_texts(f):
            text = norm(text)
            for t in tasks:
                assert rid != t["id"], (f, rid)
                assert norm(t["question"]) not in text, (f, t["id"])


# --- the cluster path: an OpenAI-compatible server started by the job and stopped after it ----------------------


@pytest.mark.pipeline
def test_eval_through_a_model_server_started_and_stopped_by_the_job(demo_run, tmp_path):
    import yaml

    work = tmp_path / "work"
    copy_run(demo_run["dir"], work)
    answer = "<Analyze>Read the table.</Analyze><Answer>Italy</Answer>"
    command = [sys.executable, "-m", "darecipe.testserver", "--port", "{port}", "--completion", answer]
    (work / "server.yaml").write_text(
        yaml.safe_dump({"eval": {"backend": "vllm", "server": {"command": command, "startup_timeout_s": 60}}})
    )
    snakemake(
        work, "--cores", "1", "results/eval/stage3/eval.json", "--configfile", "config/config.yaml", "server.yaml"
    )
    m = json.loads((work / "results/eval/stage3/eval.json").read_text())
    assert m["backend"] == "vllm" and m["completion_rate"] == 1.0 and m["format_validity"] == 1.0
    tasks = [json.loads(line) for line in (work / "results/eval/tasks.jsonl").read_text().splitlines()]
    italy = sum(t["source"] == "wikitq" and t["answer"] == "Italy" for t in tasks)
    assert italy >= 1 and m["accuracy"] == round(italy / len(tasks), 6)
    log = (work / "logs/eval_model/stage3.log").read_text()
    assert "model server ready at http://127.0.0.1:" in log
    port = int(log.split("model server ready at http://127.0.0.1:")[1].split("/")[0])
    # stopped after the job: nothing listens on its port any more
    probe = subprocess.run(
        [sys.executable, "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 1)"],
        capture_output=True,
    )
    assert probe.returncode != 0


# --- the demo run: evaluation per stage, the summary table, the report, domain LoRA ------------------------------

STAGES = ("vocab", "stage1", "stage2", "stage3", "domain_lora")
FIGURES = ("stage1_mix", "token_lengths", "rejects", "llm_usage", "training_loss", "stage3_reward", "eval_stages")


@pytest.mark.pipeline
def test_every_stage_is_evaluated_and_tabulated(demo_run):
    work = demo_run["dir"]
    n_tasks = len((work / "results/eval/tasks.jsonl").read_text().splitlines())
    table = (work / "results/eval/summary.md").read_text()
    for stage in STAGES:
        m = json.loads((work / f"results/eval/{stage}/eval.json").read_text())
        lines = (work / f"results/eval/{stage}/trajectories.jsonl").read_text().splitlines()
        assert m["tasks"] == len(lines) == n_tasks > 0
        rows = [json.loads(line) for line in lines]
        assert m == {
            **m,
            **aggregate([{k: r[k] for k in r if k not in ("stop", "prompt", "trajectory")} for r in rows]),
        }
        row = next(line for line in table.splitlines() if line.startswith(f"| {stage} |"))
        assert f"| {100 * m['accuracy']:.1f} % |" in row and f"| {m['tasks']} |" in row
    limit = yaml.safe_load((REPO / "config/config.yaml").read_text())["eval"]["limit_per_source"]
    assert f"dabstep: {limit} held-out tasks skipped" in table  # said, not hidden


@pytest.mark.pipeline
def test_report_builds_offline_with_every_figure(demo_run, tmp_path):
    work = demo_run["dir"]
    out = tmp_path / "report.html"
    snakemake(work, "--report", str(out))
    html = out.read_text(encoding="utf-8")
    for name in FIGURES:
        assert f"{name}.png;base64," in html, name  # embedded, not linked
        caption = (REPO / f"report/{name}.rst").read_text().split()[:4]
        assert " ".join(caption) in html, name
    assert "summary.md" in html
    assert not __import__("re").search(r'<(script|link|img)[^>]+(src|href)="https?://', html)  # opens offline


@pytest.mark.pipeline
def test_domain_lora_is_merged_loads_and_is_evaluated(demo_run):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from darecipe.tags import TAGS

    work = demo_run["dir"]
    adapter = json.loads((work / "results/checkpoints/domain_lora/adapter_config.json").read_text())
    assert adapter["r"] == 64 and set(adapter["modules_to_save"]) == {"embed_tokens", "lm_head"}
    metrics = json.loads((work / "results/checkpoints/domain_lora/metrics.json").read_text())
    assert metrics["epoch"] == 3.0 and metrics["global_step"] == len(metrics["curve"]) > 0
    merged = AutoModelForCausalLM.from_pretrained(work / "results/checkpoints/domain_merged")
    base = AutoModelForCausalLM.from_pretrained(work / "results/checkpoints/stage3")
    tok = AutoTokenizer.from_pretrained(work / "results/checkpoints/domain_merged")
    assert all(len(tok.encode(t, add_special_tokens=False)) == 1 for t in TAGS)
    changed = [n for n, p in merged.state_dict().items() if not torch.equal(p, base.state_dict()[n])]
    assert any("proj" in n for n in changed)  # the LoRA deltas were merged into the linear layers
    assert "lora" not in " ".join(merged.state_dict())
    assert json.loads((work / "results/eval/domain_lora/eval.json").read_text())["model"].endswith("domain_merged")


@pytest.mark.pipeline
def test_demo_ends_with_a_one_screen_summary(demo_run):
    proc = subprocess.run(
        [sys.executable, "-m", "darecipe.demo_report", "--root", str(demo_run["dir"])],
        capture_output=True,
        text=True,
        check=True,
    )
    text = proc.stdout
    assert len(text.splitlines()) < 45
    assert "| stage3 | " in text and "domain_merged" in text and "(not built)" not in text


def test_dabstep_tasks_are_used_when_their_context_files_are_given(tmp_path):
    import yaml

    from darecipe.config import load_schema, validate_config
    from darecipe.evaluation import load_heldout
    from darecipe.io import Rejects

    cfg = validate_config(
        yaml.safe_load((REPO / "config/config.yaml").read_text()), load_schema(REPO / "config/schema.yaml")
    )
    ev = json.loads(json.dumps(cfg["eval"]))
    for key in ("heldout", "file_tasks", "finqa", "tatqa", "data_root"):
        ev[key] = str(REPO / ev[key])
    ev["wikitq"] = {k: str(REPO / v) for k, v in ev["wikitq"].items()}
    ev["dabstep"]["tasks"] = str(REPO / ev["dabstep"]["tasks"])
    ev["limit_per_source"] = 2  # the loader under test, whatever the demo's limit
    tasks, notes = load_heldout(ev, Rejects())
    assert not any(t.source == "dabstep" for t in tasks) and "dabstep: 2 held-out tasks skipped" in notes[0]
    ctx = tmp_path / "context"
    ctx.mkdir()
    (ctx / "payments.csv").write_text("psp_reference,issuing_country\n1,NL\n")
    (ctx / "manual.md").write_text("# manual\n")
    ev["dabstep"]["context_dir"] = str(ctx)
    tasks, notes = load_heldout(ev, Rejects())
    dab = [t for t in tasks if t.source == "dabstep"]
    assert notes == [] and [t.id for t in dab] == ["dabstep-5", "dabstep-49"]
    assert dab[0].files == ["manual.md", "payments.csv"] and dab[0].answer == "NL"
    assert "Answer must be just the country code" in dab[0].question
