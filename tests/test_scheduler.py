"""The stage-3 environment inside ms-swift's own multi-turn driver (`run_multi_turn`, the colocate path):
code really runs in a private workspace copy, <Execute> tokens get loss mask 0, the reward reads the result.
Only the policy is scripted here (its completions are fixed strings); everything after generation is real."""

import json
from pathlib import Path

import pytest
from swift.infer_engine.protocol import (
    ChatCompletionResponse,
    ChatCompletionResponseChoice,
    ChatMessage,
    RequestConfig,
    RolloutInferRequest,
    RolloutOutput,
    UsageInfo,
)
from swift.rollout.agent_loop import run_multi_turn
from transformers import AutoTokenizer

from darecipe import swift_plugin
from darecipe.rollout import EPISODE_ENV, ROLLOUT_LOG_ENV, SANDBOX_ENV, WORKSPACE_ROOT_ENV

WRITE = "<Analyze>Write a file.</Analyze><Code>```python\nopen('mine.txt', 'w').write('x')\nimport os\nprint(sorted(os.listdir('.')))\n```</Code>"
SUM = "<Analyze>Sum column a.</Analyze><Code>```python\nimport pandas as pd\nprint(pd.read_csv('t.csv')['a'].sum())\n```</Code>"
ANSWER = "<Analyze>The sum is 4.</Analyze><Answer>4</Answer>"


def choice(tok, text, finish="stop"):
    ids = tok.encode(text, add_special_tokens=False)
    return ChatCompletionResponseChoice(0, ChatMessage("assistant", text), finish, token_ids=ids)


def output(tok, text, finish="stop"):
    c = choice(tok, text, finish)
    return RolloutOutput(response=ChatCompletionResponse("policy", [c], UsageInfo(1, len(c.token_ids), 1)))


@pytest.fixture
def env(tmp_path, monkeypatch):
    ws = tmp_path / "workspaces" / "demo" / "task1"
    ws.mkdir(parents=True)
    (ws / "t.csv").write_text("a,b\n1,2\n3,4\n")
    monkeypatch.setenv(WORKSPACE_ROOT_ENV, str(tmp_path / "workspaces"))
    monkeypatch.setenv(ROLLOUT_LOG_ENV, str(tmp_path / "rollouts.jsonl"))
    monkeypatch.setenv(SANDBOX_ENV, json.dumps({"timeout_s": 10}))
    monkeypatch.setenv(EPISODE_ENV, json.dumps({"max_trajectory_length": 4000}))
    return tmp_path


def rollout(tok, scripts: list[list[str]], max_turns=5):
    """Drive ms-swift's multi-turn loop; request i's policy emits scripts[i][turn]."""
    import asyncio

    scheduler = swift_plugin.DeepAnalyzeScheduler(infer_engine=None, max_turns=max_turns, tokenizer=tok)
    requests = [
        RolloutInferRequest(messages=[{"role": "user", "content": "Sum column a of t.csv."}], data_dict={"data": "demo", "workspace_id": "task1"})
        for _ in scripts
    ]
    asyncio.run(scheduler.on_trajectory_start(requests))
    turn = {id(r): 0 for r in requests}
    order = {id(r): i for i, r in enumerate(requests)}

    def rollout_fn(reqs, _config):
        outs = []
        for r in reqs:
            turn[id(r)] += 1
            outs.append(output(tok, scripts[order[id(r)]][turn[id(r)]]))
        return outs

    first = [output(tok, s[0]) for s in scripts]
    return run_multi_turn(requests, first, scheduler, rollout_fn, RequestConfig(), max_turns=max_turns), scheduler


def test_code_runs_and_execute_tokens_are_masked(tiny_vocab, env):
    tok = AutoTokenizer.from_pretrained(tiny_vocab)
    (out,), _ = rollout(tok, [[SUM, ANSWER]])
    text = out.messages[-1]["content"]
    assert text == SUM + "<Execute>\n4\n</Execute>" + ANSWER
    ids = [t for turn in out.response_token_ids for t in turn]
    mask = [m for turn in out.response_loss_mask for m in turn]
    assert tok.decode(ids, skip_special_tokens=False) == text
    env_ids = tok.encode("<Execute>\n4\n</Execute>", add_special_tokens=False)
    masked = [t for t, m in zip(ids, mask) if m == 0]
    assert masked == env_ids
    assert out.rollout_infos["exec_ok"] == 1 and out.rollout_infos["exec_total"] == 1
    assert out.rollout_infos["num_turns"] == 2


def test_rollouts_of_one_prompt_never_share_a_workspace(tiny_vocab, env):
    tok = AutoTokenizer.from_pretrained(tiny_vocab)
    outs, _ = rollout(tok, [[WRITE, ANSWER], [WRITE, ANSWER]])
    for out in outs:
        # Each rollout sees its own mine.txt and the task file, nothing written by the other.
        assert "<Execute>\n['mine.txt', 't.csv']\n</Execute>" in out.messages[-1]["content"]
    assert not (env / "workspaces/demo/task1/mine.txt").exists()  # the task's workspace itself is never written


def test_failed_code_reaches_the_reward_as_a_failed_block(tiny_vocab, env):
    tok = AutoTokenizer.from_pretrained(tiny_vocab)
    bad = "<Analyze>x</Analyze><Code>```python\n1/0\n```</Code>"
    (out,), _ = rollout(tok, [[bad, ANSWER]])
    assert "<Execute>\n[Error]:\n" in out.messages[-1]["content"]
    assert "ZeroDivisionError" in out.messages[-1]["content"]
    reward = swift_plugin.DeepAnalyzeReward()
    r = reward(
        [out.messages[-1]["content"]], method=["datatask"], ground_truth=["4"], rollout_infos=[out.rollout_infos], is_truncated=[False]
    )
    assert r == [0.0]  # judge dropped (no judge); the only block failed: code success rate 0
    logged = [json.loads(line) for line in (env / "rollouts.jsonl").read_text().splitlines()]
    assert logged[-1]["exec_total"] == 1 and logged[-1]["exec_ok"] == 0


def test_episode_stops_at_max_turns(tiny_vocab, env):
    tok = AutoTokenizer.from_pretrained(tiny_vocab)
    (out,), _ = rollout(tok, [[SUM, SUM, SUM, SUM]], max_turns=2)
    assert out.rollout_infos["num_turns"] == 2
    assert out.messages[-1]["content"].count("<Execute>") == 1


def test_over_length_trajectory_gets_reward_zero(tiny_vocab, env, monkeypatch):
    monkeypatch.setenv(EPISODE_ENV, json.dumps({"max_trajectory_length": 30}))
    tok = AutoTokenizer.from_pretrained(tiny_vocab)
    (out,), _ = rollout(tok, [[SUM, ANSWER]])
    assert out.rollout_infos["over_length"] is True
    reward = swift_plugin.DeepAnalyzeReward()
    assert reward([out.messages[-1]["content"]], method=["qa"], ground_truth=["4"], rollout_infos=[out.rollout_infos]) == [0.0]


def test_stop_string_dropped_by_the_engine_is_restored(tiny_vocab, env):
    tok = AutoTokenizer.from_pretrained(tiny_vocab)
    (out,), _ = rollout(tok, [[SUM.removesuffix("</Code>"), ANSWER]])
    assert SUM + "<Execute>\n4\n</Execute>" in out.messages[-1]["content"]


def test_skyrl_environment_matches_the_swift_path(tiny_vocab, env):
    """Same actions, same observations, same reward through both backends' environment code."""
    from darecipe.skyrl_env import DeepAnalyzeEnv

    tok = AutoTokenizer.from_pretrained(tiny_vocab)
    bad = "<Analyze>x</Analyze><Code>```python\n1/0\n```</Code>"
    actions = [SUM, bad, ANSWER]
    (out,), _ = rollout(tok, [actions])
    swift_text = out.messages[-1]["content"]
    swift_reward = swift_plugin.DeepAnalyzeReward()([swift_text], method=["datatask"], ground_truth=["4"],
                                                    rollout_infos=[out.rollout_infos])[0]  # fmt: skip

    sky = DeepAnalyzeEnv({"max_turns": 5, "sandbox": {"timeout_s": 10}},
                         {"reward_spec": {"method": "datatask", "ground_truth": "4"}, "data": "demo",
                          "workspace_id": "task1", "input_seq": "Sum column a of t.csv."})  # fmt: skip
    sky.init([{"role": "user", "content": "Sum column a of t.csv."}])
    observations, step = [], None
    for action in actions:
        step = sky.step(action)
        observations += [o["content"] for o in step["observations"]]
    sky.close()
    assert step["done"]
    assert "".join(a + o for a, o in zip(actions, observations + [""])) == swift_text
    assert observations == ["<Execute>\n4\n</Execute>", swift_text.split("</Code>")[2].split("<Analyze>")[0]]
    assert step["reward"] == pytest.approx(swift_reward) == pytest.approx(0.5)  # one of two blocks ran
