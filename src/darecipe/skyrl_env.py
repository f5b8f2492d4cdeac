"""The DeepAnalyze environment for skyrl-train (`env_class: deepanalyze`), on skyrl-gym's `BaseTextEnv`.

Each turn goes through the same stage-3 environment as the ms-swift scheduler (`rollout.Episode`), and a finished
episode is scored by the same code (`scoring.score_episodes`: judge, reward, rollout log), so both backends see the
same observations and rewards for the same actions. Each episode works in a private copy of its task's workspace.
skyrl-train runs with `generator.use_conversation_multi_turn=false` (as the release did): every turn and
observation stays in one assistant message. It checks the trajectory budget itself
(`generator.max_input_length` = `max_trajectory_length`) before each turn and ends an episode over it with reward 0.
"""

from __future__ import annotations

import os
from typing import Any

from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput

from .judge import Judge
from .rollout import JUDGE_ENV, Episode, open_episode
from .sandbox import SandboxLimits
from .scoring import EpisodeOutcome, score_episodes


def _get(cfg, key, default=None):
    return cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)


class DeepAnalyzeEnv(BaseTextEnv):
    """One RL task. `extras` is the parquet row (reward_spec, data, workspace_id, input_seq); `env_config` holds
    sandbox limits, max_turns and the workspace root. The judge comes from `DARECIPE_JUDGE`, which the training
    job sets for every process it starts (Ray workers included)."""

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
        self.workspace_root = _get(env_config, "workspace_root", None)
        self.judge = Judge.from_json(os.environ.get(JUDGE_ENV))
        self.step_counter = int(_get(env_config, "step", 0))
        self.episode: Episode | None = None

    def init(self, prompt):
        self.episode = open_episode(
            self.data, self.workspace_id, self.limits, None, self.workspace_root, max_turns=self.max_turns
        )
        return prompt, {}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        turn = self.episode.step(action)
        # only a turn the environment cut is handed back (skyrl-train then re-tokenises it); otherwise the sampled
        # token ids stay as they are
        cut = turn.action if turn.action != action else None
        if not turn.done:
            return BaseTextEnvStepOutput(
                observations=[{"role": "user", "content": turn.observation}],
                reward=0.0,
                done=False,
                metadata=self.episode.infos(),
                postprocessed_action=cut,
            )
        outcome = EpisodeOutcome(self.episode.text, self.method, self.ground_truth, self.task, self.episode.infos())
        res = score_episodes([outcome], self.judge, self.step_counter)[0]
        meta = {**self.episode.infos(), "gate": res.gate, "terms": res.terms}
        return BaseTextEnvStepOutput(
            observations=[], reward=res.reward, done=True, metadata=meta, postprocessed_action=cut
        )

    def close(self):
        if self.episode:
            self.episode.close()
            self.episode = None


def register() -> None:
    """Make `env_class: deepanalyze` available to skyrl-train."""
    from skyrl_gym.envs.registration import register as gym_register

    gym_register(id="deepanalyze", entry_point="darecipe.skyrl_env:DeepAnalyzeEnv")
