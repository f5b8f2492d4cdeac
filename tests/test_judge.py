"""The judge through the LLM layer and the ms-swift reward plugin, against the real test server."""

import json

import pytest
from conftest import REPO

from darecipe import swift_plugin
from darecipe.judge import JudgeItem, judge, load_templates, preflight
from darecipe.llm import LLMError, LLMSettings, ResponseCache
from darecipe.rollout import JUDGE_ENV
from darecipe.testserver import FakeOpenAI

PROMPTS = {m: str(REPO / f"config/prompts/judge_{m}.v2.txt") for m in ("qa", "datatask", "openresearch")}
TRAJ = "<Analyze>a</Analyze><Code>```python\nprint(42)\n```</Code><Execute>\n42\n</Execute><Answer>42</Answer>"


def settings(server, **kw):
    return LLMSettings(
        backend="openai",
        model="judge",
        base_url=server.base_url,
        api_key_env="DARECIPE_TEST_KEY",
        max_retries=0,
        timeout_s=2,
        sampling={"temperature": 0.0},
        **kw,
    )


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("DARECIPE_TEST_KEY", "sk-dummy")


def test_unreadable_verdict_is_asked_again_then_scored():
    def reply(messages, body):
        return (
            '{"score": 4}'
            if messages[-1]["content"].startswith("Your reply could not be read")
            else "Looks right to me!"
        )

    with FakeOpenAI(reply=reply) as server:
        stats = judge(
            settings(server),
            load_templates(PROMPTS),
            [JudgeItem("a", "qa", "Q?", "42", TRAJ)],
            ResponseCache(None),
            parse_retries=1,
        )
    assert stats.per_item == [{"score": 4.0}] and stats.unparseable == 0 and server.requests == 2


@pytest.mark.parametrize("policy,expected", [("lowest", {"accuracy": 0.0}), ("drop", None)])
def test_always_unreadable_verdicts_follow_the_policy_and_are_counted(policy, expected):
    with FakeOpenAI(reply=lambda m, b: "no idea") as server:
        stats = judge(
            settings(server),
            load_templates(PROMPTS),
            [JudgeItem("a", "datatask", "T", "", TRAJ)],
            ResponseCache(None),
            parse_retries=2,
            on_unparseable=policy,
        )
    assert stats.per_item == [expected] and stats.unparseable == 1 and server.requests == 3


def test_a_judge_call_left_unanswered_drops_the_terms_instead_of_scoring_lowest():
    with FakeOpenAI(fault_plan=lambda n, body: "500") as server:
        stats = judge(
            settings(server),
            load_templates(PROMPTS),
            [JudgeItem("a", "qa", "Q?", "42", TRAJ)],
            ResponseCache(None),
            parse_retries=1,
            on_unparseable="lowest",
        )
    assert stats.per_item == [None] and stats.unanswered == 1 and stats.unparseable == stats.scored_lowest == 0
    assert server.requests == 1  # no reminder is sent after a transport failure


def test_preflight_stops_with_one_line(monkeypatch):
    with FakeOpenAI() as server:
        s = settings(server)
    with pytest.raises(LLMError, match=r"^judge: judge at http://127\.0\.0\.1:\d+/v1 does not answer") as err:
        preflight(s)  # the server has stopped: nothing listens on that port
    assert "\n" not in str(err.value)
    monkeypatch.delenv("DARECIPE_TEST_KEY")
    with FakeOpenAI() as server, pytest.raises(LLMError, match="environment variable DARECIPE_TEST_KEY is not set"):
        preflight(settings(server))


def test_judge_scores_reach_the_reward_in_the_swift_plugin(monkeypatch):
    def reply(messages, body):
        prompt = messages[-1]["content"]
        return '{"score": 3}' if "correct answer" in prompt else '{"accuracy": 4}'

    with FakeOpenAI(reply=reply) as server:
        cfg = {
            "backend": "openai",
            "model": "judge",
            "base_url": server.base_url,
            "api_key_env": "DARECIPE_TEST_KEY",
            "max_in_flight": 4,
            "timeout_s": 2,
            "max_retries": 0,
            "backoff_s": 0,
            "backoff_max_s": 0,
            "sampling": {"temperature": 0.0},
            "parse_retries": 1,
            "on_unparseable": "lowest",
            "prompts": PROMPTS,
        }
        monkeypatch.setenv(JUDGE_ENV, json.dumps(cfg))
        orm = swift_plugin.DeepAnalyzeReward()
        rewards = orm(
            [TRAJ, TRAJ],
            method=["qa", "datatask"],
            ground_truth=["42", ""],
            task=["Q?", "T"],
            rollout_infos=[{"exec_ok": 1, "exec_total": 1}, {"exec_ok": 1, "exec_total": 2}],
        )
        assert server.requests == 2
    assert rewards == pytest.approx([(1 + 3 / 5) / 2, (4 / 5 + 1 / 2) / 2])
