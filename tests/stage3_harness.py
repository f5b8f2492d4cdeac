"""Drive a stage-3 episode through each backend's real entry point with a scripted policy: ms-swift's multi-turn
loop (`run_multi_turn`, the colocate path) with the DeepAnalyze scheduler and reward plugin, and the skyrl-gym
environment. Only the policy's turns are scripted; code runs for real in private workspace copies."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass

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

from darecipe import swift_plugin
from darecipe.rollout import EPISODE_ENV, ROLLOUT_LOG_ENV, SANDBOX_ENV, WORKSPACE_ROOT_ENV

TASK = "Sum column a of t.csv."


def task_environment(tmp_path, monkeypatch, timeout_s: float, max_trajectory_length: int):
    """One RL task's workspace (t.csv) and the environment variables the training job sets for the plugins."""
    ws = tmp_path / "workspaces" / "demo" / "task1"
    ws.mkdir(parents=True)
    (ws / "t.csv").write_text("a,b\n1,2\n3,4\n")
    monkeypatch.setenv(WORKSPACE_ROOT_ENV, str(tmp_path / "workspaces"))
    monkeypatch.setenv(ROLLOUT_LOG_ENV, str(tmp_path / "rollouts.jsonl"))
    monkeypatch.setenv(SANDBOX_ENV, json.dumps({"timeout_s": timeout_s}))
    monkeypatch.setenv(EPISODE_ENV, json.dumps({"max_trajectory_length": max_trajectory_length}))
    return tmp_path


@dataclass
class PolicyTurn:
    """What the policy generates in one turn: its text, whether it then wrote EOS, and the finish reason."""

    text: str
    eos: bool = False
    finish: str = "stop"


def as_turn(t) -> PolicyTurn:
    return t if isinstance(t, PolicyTurn) else PolicyTurn(t)


def choice(tok, turn: PolicyTurn):
    ids = tok.encode(turn.text, add_special_tokens=False) + ([tok.eos_token_id] if turn.eos else [])
    return ChatCompletionResponseChoice(0, ChatMessage("assistant", turn.text), turn.finish, token_ids=ids)


def output(tok, turn: PolicyTurn):
    c = choice(tok, turn)
    return RolloutOutput(response=ChatCompletionResponse("policy", [c], UsageInfo(1, len(c.token_ids), 1)))


def swift_rollouts(tok, scripts: list[list], max_turns=5, task=TASK):
    """ms-swift's multi-turn loop; request i's policy emits scripts[i][turn]."""
    scheduler = swift_plugin.DeepAnalyzeScheduler(infer_engine=None, max_turns=max_turns, tokenizer=tok)
    requests = [
        RolloutInferRequest(
            messages=[{"role": "user", "content": task}], data_dict={"data": "demo", "workspace_id": "task1"}
        )
        for _ in scripts
    ]
    asyncio.run(scheduler.on_trajectory_start(requests))
    turn = {id(r): 0 for r in requests}
    order = {id(r): i for i, r in enumerate(requests)}

    def rollout_fn(reqs, _config):
        outs = []
        for r in reqs:
            turn[id(r)] += 1
            outs.append(output(tok, as_turn(scripts[order[id(r)]][turn[id(r)]])))
        return outs

    first = [output(tok, as_turn(s[0])) for s in scripts]
    return run_multi_turn(requests, first, scheduler, rollout_fn, RequestConfig(), max_turns=max_turns), scheduler


def swift_reward(out, method, gold, task=TASK) -> float:
    return swift_plugin.DeepAnalyzeReward()(
        [out.messages[-1]["content"]],
        method=[method],
        ground_truth=[gold],
        task=[task],
        rollout_infos=[out.rollout_infos],
    )[0]


def skyrl_episode(turns: list, method, gold, max_turns=5, task=TASK):
    """The skyrl-gym environment; the policy's text reaches it as vLLM returns it (EOS not in the text)."""
    from darecipe.skyrl_env import DeepAnalyzeEnv

    sandbox = json.loads(os.environ.get(SANDBOX_ENV) or '{"timeout_s": 10}')
    env = DeepAnalyzeEnv(
        {"max_turns": max_turns, "sandbox": sandbox},
        {
            "reward_spec": {"method": method, "ground_truth": gold},
            "data": "demo",
            "workspace_id": "task1",
            "input_seq": task,
        },
    )
    env.init([{"role": "user", "content": task}])
    steps = []
    try:
        for t in turns:
            steps.append(env.step(as_turn(t).text))
            if steps[-1]["done"]:
                break
    finally:
        env.close()
    return steps
