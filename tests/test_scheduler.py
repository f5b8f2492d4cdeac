"""The stage-3 environment inside ms-swift's own multi-turn driver (`run_multi_turn`, the colocate path):
code really runs in a private workspace copy, <Execute> tokens get loss mask 0, the reward reads the result.
Only the policy is scripted here (its completions are fixed strings); everything after generation is real."""

import json

import pytest
from stage3_harness import skyrl_episode, swift_rollouts, task_environment
from transformers import AutoTokenizer

from darecipe import swift_plugin
from darecipe.rollout import EPISODE_ENV

WRITE = "<Analyze>Write a file.</Analyze><Code>```python\nopen('mine.txt', 'w').write('x')\nimport os\nprint(sorted(os.listdir('.')))\n```</Code>"
SUM = "<Analyze>Sum column a.</Analyze><Code>```python\nimport pandas as pd\nprint(pd.read_csv('t.csv')['a'].sum())\n```</Code>"
ANSWER = "<Analyze>The sum is 4.</Analyze><Answer>4</Answer>"


@pytest.fixture
def env(tmp_path, monkeypatch):
    return task_environment(tmp_path, monkeypatch, timeout_s=10, max_trajectory_length=4000)


def rollout(tok, scripts, max_turns=5):
    return swift_rollouts(tok, scripts, max_turns)


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
        [out.messages[-1]["content"]],
        method=["datatask"],
        ground_truth=["4"],
        rollout_infos=[out.rollout_infos],
        is_truncated=[False],
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
    assert reward(
        [out.messages[-1]["content"]], method=["qa"], ground_truth=["4"], rollout_infos=[out.rollout_infos]
    ) == [0.0]


def test_stop_string_dropped_by_the_engine_is_restored(tiny_vocab, env):
    tok = AutoTokenizer.from_pretrained(tiny_vocab)
    (out,), _ = rollout(tok, [[SUM.removesuffix("</Code>"), ANSWER]])
    assert SUM + "<Execute>\n4\n</Execute>" in out.messages[-1]["content"]


def test_skyrl_environment_matches_the_swift_path(tiny_vocab, env):
    """Same actions, same observations, same reward through both backends' environment code."""
    tok = AutoTokenizer.from_pretrained(tiny_vocab)
    bad = "<Analyze>x</Analyze><Code>```python\n1/0\n```</Code>"
    actions = [SUM, bad, ANSWER]
    (out,), _ = rollout(tok, [actions])
    swift_text = out.messages[-1]["content"]
    swift_reward = swift_plugin.DeepAnalyzeReward()(
        [swift_text], method=["datatask"], ground_truth=["4"], rollout_infos=[out.rollout_infos]
    )[0]
    steps = skyrl_episode(actions, "datatask", "4")
    observations = [o["content"] for step in steps for o in step["observations"]]
    assert steps[-1]["done"]
    assert "".join(a + o for a, o in zip(actions, observations + [""])) == swift_text
    assert observations == ["<Execute>\n4\n</Execute>", swift_text.split("</Code>")[2].split("<Analyze>")[0]]
    assert steps[-1]["reward"] == pytest.approx(swift_reward) == pytest.approx(0.5)  # one of two blocks ran


def test_a_policy_that_only_ends_its_turns_keeps_its_last_eos(tiny_vocab, env):
    """Every turn is EOS at once: each gets the failed observation (loss mask 0, the EOS dropped as the message goes
    on); the last turn's EOS stays as the one trained token (ms-swift needs at least one)."""
    from stage3_harness import PolicyTurn

    tok = AutoTokenizer.from_pretrained(tiny_vocab)
    (out,), _ = rollout(tok, [[PolicyTurn("", eos=True)] * 3], max_turns=3)
    ids = [t for turn in out.response_token_ids for t in turn]
    mask = [m for turn in out.response_loss_mask for m in turn]
    assert out.rollout_infos["num_turns"] == 3 and out.rollout_infos["no_code_turns"] == 2
    assert [t for t, m in zip(ids, mask) if m == 1] == [tok.eos_token_id] and ids[-1] == tok.eos_token_id
    obs = tok.encode(
        "<Execute>\n[Error]:\nNo code is provided, so nothing was executed.\n</Execute>", add_special_tokens=False
    )
    assert ids == obs + obs + [tok.eos_token_id]


def test_an_eos_the_engine_left_out_is_the_last_trained_token(tiny_vocab, env):
    """Engines that strip EOS from their output return an empty last turn: its EOS is restored as the rollout's one
    trained token (a rollout of masked tokens only breaks ms-swift's GRPO step)."""
    from stage3_harness import PolicyTurn

    tok = AutoTokenizer.from_pretrained(tiny_vocab)
    (out,), _ = rollout(tok, [[PolicyTurn("")] * 3], max_turns=3)
    ids = [t for turn in out.response_token_ids for t in turn]
    mask = [m for turn in out.response_loss_mask for m in turn]
    assert [t for t, m in zip(ids, mask) if m == 1] == [tok.eos_token_id]
