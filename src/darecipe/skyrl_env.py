"""The DeepAnalyze environment for skyrl-train (`env_class: deepanalyze`), on skyrl-gym's `BaseTextEnv`.

It runs code and scores episodes with the same modules as the ms-swift scheduler (`rollout.Episode`,
`reward.compute_reward`, `judge`), so both backends see the same observations and rewards for the same actions.
Each episode works in a private copy of its task's workspace.
"""

from __future__ import annotations

from typing import Any

from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput

from .reward import RewardInput, compute_reward
from .rollout import Episode, open_episode
from .sandbox import SandboxLimits


def _get(cfg, key, default=None):
    return cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)


class DeepAnalyzeEnv(BaseTextEnv):
    """One RL task. `extras` is the parquet row (reward_spec, data, workspace_id, input_seq); `env_config` holds
    sandbox limits, max_turns and max_trajectory_length (tokens, counted by the caller via `add_tokens`)."""

    def __init__(self, env_config: Any = None, extras: dict | None = None):
        super().__init__()
        extras = extras or {}
        env_config = env_config or {}
        spec = extras["reward_spec"]
        self.method, self.ground_truth = spec["method"], str(spec.get("ground_truth", ""))
        self.data, self.workspace_id = str(extras["data"]), str(extras["workspace_id"])
        self.task = str(extras.get("input_seq", ""))
        self.max_turns = int(_get(env_config, "max_turns", 30))
        sandbox = _get(env_config, "sandbox", {}) or {}
        self.limits = SandboxLimits(**dict(sandbox))
        self.max_tokens = _get(env_config, "max_trajectory_length", None)
        self.workspace_root = _get(env_config, "workspace_root", None)
        self.judge_fn = _get(env_config, "judge_fn", None)  # callable(method, task, gold, text) -> dict | None
        self.episode: Episode | None = None
        self.text = ""

    def init(self, prompt):
        self.episode = open_episode(self.data, self.workspace_id, self.limits, self.max_tokens, self.workspace_root)
        self.text = ""
        self.turns = 0
        return prompt, {}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        self.turns += 1
        self.text += action
        code = self.episode.wants_execution(self.text)
        if code is not None and self.turns < self.max_turns and not self.episode.over_length:
            closing = "" if self.text.rstrip().endswith("</Code>") else "</Code>"
            obs = closing + self.episode.execute(code)
            self.text += obs
            return BaseTextEnvStepOutput(observations=[{"role": "user", "content": obs}], reward=0.0, done=False,
                                         metadata=self.episode.infos())  # fmt: skip
        judge = self.judge_fn(self.method, self.task, self.ground_truth, self.text) if self.judge_fn else None
        res = compute_reward(RewardInput(
            text=self.text, method=self.method, ground_truth=self.ground_truth, exec_ok=self.episode.exec_ok,
            exec_total=self.episode.exec_total, turns=self.turns, truncated=self.episode.over_length, judge=judge,
        ))  # fmt: skip
        meta = {**self.episode.infos(), "num_turns": self.turns, "gate": res.gate, "terms": res.terms}
        return BaseTextEnvStepOutput(observations=[], reward=res.reward, done=True, metadata=meta)

    def close(self):
        if self.episode:
            self.episode.close()
            self.episode = None


def register() -> None:
    """Make `env_class: deepanalyze` available to skyrl-train."""
    from skyrl_gym.envs.registration import register as gym_register

    gym_register(id="deepanalyze", entry_point="darecipe.skyrl_env:DeepAnalyzeEnv")
