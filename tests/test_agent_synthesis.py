"""The agent loop with a scripted policy (code really runs), the synthesis roles' parsing and checks, and
synthesis through Snakemake against the real OpenAI-compatible test server."""

import json
import re
import sqlite3

import pytest
import yaml
from conftest import copy_repo, snakemake

from darecipe.agent import State, chat_messages, run_agents
from darecipe.io import InputError
from darecipe.sandbox import SandboxLimits
from darecipe.synthesis import build_workspace, deterministic_checks, parse_tasks, parse_verdict

CODE = (
    "<Analyze>Count rows.</Analyze><Code>```python\nimport pandas as pd\nprint(len(pd.read_csv('t.csv')))\n```</Code>"
)
ANSWER = "<Analyze>There are 2 rows.</Analyze><Answer>2</Answer>"


def scripted(*turns):
    """A policy that says turns[k] on its k-th turn, whatever it is shown."""
    seen = {}

    def generate(states):
        outs = []
        for s in states:
            k = seen.get(s.id, 0)
            seen[s.id] = k + 1
            outs.append(turns[k] if k < len(turns) else None)
        return outs

    return generate


@pytest.fixture
def ws(tmp_path):
    w = tmp_path / "ws"
    w.mkdir()
    (w / "t.csv").write_text("a\n1\n2\n")
    return w


def test_loop_runs_code_and_stops_at_the_answer(ws):
    (t,) = run_agents(scripted(CODE + "trailing text after the stop", ANSWER), [State("a", "Q")], [ws], SandboxLimits())
    assert t.text == CODE + "<Execute>\n2\n</Execute>" + ANSWER
    assert t.finished and t.stop == "answer" and t.turns == 2 and (t.exec_ok, t.exec_total) == (1, 1)
    assert not deterministic_checks(t)


def test_loop_stops_at_max_turns_and_without_code(ws):
    # turn 2 is the last: it ends the episode and its code does not run (as the release's environment)
    (t,) = run_agents(scripted(CODE, CODE, CODE), [State("a", "Q")], [ws], SandboxLimits(), max_turns=2)
    assert (
        t.stop == "max_turns" and t.exec_total == 1 and "turn limit reached without <Answer>" in deterministic_checks(t)
    )
    # a synthesis solver's attempt ends at a turn without code ...
    (t,) = run_agents(
        scripted("<Analyze>I give up.</Analyze>"), [State("b", "Q")], [ws], SandboxLimits(), on_no_code="stop"
    )
    assert t.stop == "no_code" and not t.finished
    # ... while the environment answers it with the failed observation and goes on
    (t,) = run_agents(scripted("<Analyze>Thinking.</Analyze>", ANSWER), [State("c", "Q")], [ws], SandboxLimits())
    assert (
        t.text
        == "<Analyze>Thinking.</Analyze><Execute>\n[Error]:\nNo code is provided, so nothing was executed.\n</Execute>"
        + ANSWER
    )
    assert t.finished and t.no_code_turns == 1 and t.exec_total == 0


def test_failed_final_code_is_caught_by_the_deterministic_checks(ws):
    bad = CODE.replace("t.csv", "missing.csv")
    (t,) = run_agents(scripted(bad, ANSWER), [State("a", "Q")], [ws], SandboxLimits())
    assert "[Error]:" in t.text and "the final code block failed" in deterministic_checks(t)


def test_chat_view_of_a_trajectory():
    s = State("a", "the task", CODE + "<Execute>\n2\n</Execute>" + "<Analyze>more</Analyze>")
    msgs = chat_messages("sys", s)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[3]["content"] == "<Execute>\n2\n</Execute>"


def test_questioner_and_inspector_replies_are_parsed_robustly():
    reply = (
        'Here you go:\n```json\n{"tasks": [{"purpose": "sft", "task": "Do X", "checklist": {"turn_budget": 3},},\n'
        '{"purpose": "rl", "rl_method": "qa", "task": "How many?", "answer": "3"},\n'
        '{"purpose": "rl", "rl_method": "qa", "task": "No answer given"}, {"task": ""}]}\n```'
    )
    tasks, problems = parse_tasks(reply, "data_analysis", "w")
    assert [(t.purpose, t.rl_method, t.answer) for t in tasks] == [("sft", None, ""), ("rl", "qa", "3")]
    assert len(problems) == 2 and "needs a short gold answer" in problems[0]
    assert parse_tasks("no json here", "data_analysis", "w")[1][0].startswith("questioner reply is not JSON")
    assert parse_verdict('{"accept": false, "reasons": ["wrong total"]}').reasons == ["wrong total"]
    assert not parse_verdict("looks good to me").accept


def test_bad_workspaces_give_one_clear_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "empty.csv").write_text("a,b\n")
    (data / "broken.sqlite").write_bytes(b"this is not a database")
    sqlite3.connect(data / "notables.sqlite").close()
    for name, files, message in [
        ("m", ["missing.csv"], "missing.csv does not exist"),
        ("e", ["empty.csv"], "empty.csv: empty CSV (a header and no rows)"),
        ("b", ["broken.sqlite"], "broken.sqlite: reading its schema: corrupt SQLite database (file is not a database)"),
        ("n", ["notables.sqlite"], "a SQLite database with no tables"),
    ]:
        with pytest.raises(InputError, match=re.escape(message)):
            build_workspace(name, files, data, tmp_path / name)


def teacher(messages, body):
    """Questioner, solver and inspector for the rule test; the inspector rejects one trajectory."""
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    prompt = messages[-1]["content"]
    if prompt.startswith("You are the questioner"):
        return json.dumps(
            {
                "tasks": [
                    {"purpose": "sft", "task": "How many rows does Simpson.csv have?", "checklist": {"turn_budget": 2}},
                    {"purpose": "sft", "task": "How many departments are there?", "checklist": {"turn_budget": 2}},
                    {"purpose": "rl", "rl_method": "qa", "task": "How many rows?", "answer": "2000"},
                ]
            }
        )
    if prompt.startswith("You are the inspector"):
        ok = "How many rows" in prompt
        return json.dumps({"accept": ok, "reasons": ["fine"] if ok else ["the answer lacks the department names"]})
    assert system.startswith("You are a data-science agent")
    if messages[-1]["role"] == "user" and messages[-1]["content"].startswith("<Execute>"):
        return "<Analyze>Read the output.</Analyze><Answer>done</Answer>"
    return "<Analyze>Load it.</Analyze><Code>```python\nimport pandas as pd\nprint(pd.read_csv('Simpson.csv').shape)\n```</Code>"


def test_synthesis_rule_against_the_test_server(tmp_path_factory, monkeypatch):
    from darecipe.testserver import FakeOpenAI

    monkeypatch.setenv("DARECIPE_TEST_KEY", "sk-dummy")
    with FakeOpenAI(reply=teacher) as server:
        work = copy_repo(tmp_path_factory.mktemp("synth"))
        overlay = {
            "llm": {
                "backend": "openai",
                "model": "teacher",
                "base_url": server.base_url,
                "api_key_env": "DARECIPE_TEST_KEY",
                "max_retries": 0,
            }
        }
        (work / "overlay.yaml").write_text(yaml.safe_dump(overlay))
        snakemake(
            work,
            "results/data/synthesis/data_analysis.jsonl",
            "--cores",
            "1",
            "--configfile",
            "config/config.yaml",
            "overlay.yaml",
        )
        assert server.requests == 1 + 2 * 2 + 2  # questioner, 2 trajectories x 2 turns, 2 inspections
    out = work / "results/data/synthesis"
    accepted = [json.loads(line) for line in (out / "data_analysis.jsonl").read_text().splitlines()]
    rejects = [json.loads(line) for line in (out / "data_analysis.rejects.jsonl").read_text().splitlines()]
    rl = [json.loads(line) for line in (out / "data_analysis.rl.jsonl").read_text().splitlines()]
    assert len(accepted) == 1 and "<Execute>\n(2000, 5)\n</Execute>" in accepted[0]["messages"][1]["content"]
    assert len(rejects) == 1 and "the answer lacks the department names" in rejects[0]["reason"]
    assert rl[0]["row"]["reward_spec"] == {"method": "qa", "ground_truth": "2000", "function": ""}
    metrics = json.loads((out / "data_analysis.metrics.json").read_text())
    assert metrics["accepted"] == 1 and metrics["rejected"] == 1


def test_a_local_hf_model_drives_the_same_loop(tiny_vocab, ws):
    from darecipe.agent import HFGenerator

    gen = HFGenerator(tiny_vocab, max_new_tokens=8)
    (t,) = run_agents(gen, [State("a", "How many rows does t.csv have?")], [ws], SandboxLimits(), max_turns=2)
    # A random tiny model writes no tags: each turn runs no code, the episode goes on to the turn limit.
    assert t.turns == 2 and t.stop == "max_turns" and t.no_code_turns == 1 and not t.finished
