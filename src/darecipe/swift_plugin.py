"""ms-swift plugin (`--external_plugins <this file>`): everything DeepAnalyze adds to ms-swift, no fork.

- loss scale `deepanalyze`: `<Execute>…</Execute>` spans (tags included) get weight 0, i.e. label -100.
- multi-turn scheduler `deepanalyze`: runs each generated `<Code>` block in the rollout's own workspace
  copy and appends `<Execute>\\n…\\n</Execute>` with loss mask 0 (see `darecipe.rollout`).
- reward `deepanalyze_reward`: the end-of-episode reward of `darecipe.reward`.
"""

import json
import os

from swift.loss_scale.base import ConfigLossScale
from swift.loss_scale.mapping import loss_scale_map
from swift.rewards.orm import ORM, orms
from swift.rollout.multi_turn import MultiTurnScheduler, multi_turns

from darecipe.judge import JudgeItem, judge, load_templates
from darecipe.llm import LLMSettings, ResponseCache
from darecipe.reward import RewardInput, compute_reward
from darecipe.rollout import EPISODE_ENV, JUDGE_ENV, SANDBOX_ENV, Episode, log_rollout, open_episode
from darecipe.sandbox import SandboxLimits

EXECUTE_SPAN = r"<Execute>.*?</Execute>"


class DeepAnalyzeLossScale(ConfigLossScale):
    is_binary = True

    def __init__(self, base_strategy="default"):
        super().__init__(base_strategy)
        # A map entry with one weight is applied by ms-swift as a DOTALL regex over each response.
        self.loss_scale_map = {EXECUTE_SPAN: [0.0]}


def _episode_settings() -> tuple[SandboxLimits, int | None]:
    limits = SandboxLimits(**json.loads(os.environ.get(SANDBOX_ENV, "{}")))
    return limits, json.loads(os.environ.get(EPISODE_ENV, "{}")).get("max_trajectory_length")


class DeepAnalyzeScheduler(MultiTurnScheduler):
    """Generate until </Code> or EOS; run the code; append <Execute> (loss mask 0); repeat.

    An episode ends at </Answer>, at EOS without an open <Code>, at the length limit of a turn, at
    `max_turns`, or when prompt + trajectory exceed `max_trajectory_length` (then its reward is 0).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits, self.max_trajectory_length = _episode_settings()
        self.episodes: dict[int, Episode] = {}

    async def on_trajectory_start(self, requests) -> None:
        for req in requests:
            d = req.data_dict
            ep = open_episode(str(d["data"]), str(d["workspace_id"]), self.limits, self.max_trajectory_length)
            ep.add_tokens(sum(len(self.tokenizer.encode(m["content"], add_special_tokens=False)) for m in req.messages))
            self.episodes[id(req)] = ep

    @staticmethod
    def _text(req) -> str:
        return req.messages[-1]["content"] if req.messages[-1]["role"] == "assistant" else ""

    async def on_turn_end(self, infer_request, response_choice, current_turn) -> dict:
        ep = self.episodes[id(infer_request)]
        ep.add_tokens(len(response_choice.token_ids or []))
        done = (
            response_choice.finish_reason == "length"
            or ep.over_length
            or (self.max_turns is not None and current_turn >= self.max_turns)
            or ep.wants_execution(self._text(infer_request)) is None
        )
        infos = ep.infos()
        if done:
            ep.close()
            self.episodes.pop(id(infer_request), None)
        return {"done": done, "rollout_infos": infos}

    def step(self, infer_request, response_choice, current_turn) -> dict:
        ep = self.episodes[id(infer_request)]
        ids = list(response_choice.token_ids or [])
        text = self._text(infer_request)
        env_text = ""
        if not text.rstrip().endswith("</Code>"):
            # The engine dropped the stop string (vLLM does by default): close the block ourselves.
            env_text += "</Code>"
        env_text += ep.execute(ep.wants_execution(text) or "")
        env_ids = self.tokenizer.encode(env_text, add_special_tokens=False)
        ep.add_tokens(len(env_ids))
        infer_request.messages[-1]["content"] = text + env_text
        return {
            "infer_request": infer_request,
            "response_token_ids": ids + env_ids,
            "response_loss_mask": [1] * len(ids) + [0] * len(env_ids),
            "rollout_infos": ep.infos(),
        }


class DeepAnalyzeReward(ORM):
    """RECIPE §6, given once at the end of each episode: the rule-based terms plus, when a judge is configured,
    the LLM judge's terms (`DARECIPE_JUDGE` holds the judge settings; without it the judge terms are dropped)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = json.loads(os.environ.get(JUDGE_ENV, "null") or "null")
        self.judge_cfg = cfg if cfg and cfg.get("backend") != "none" else None
        if self.judge_cfg:
            self.judge_settings = LLMSettings.from_config(self.judge_cfg)
            self.templates = load_templates(self.judge_cfg["prompts"])
            self.judge_cache = ResponseCache(self.judge_cfg.get("cache"))

    def _judge(self, completions, methods, golds, tasks, step):
        if not self.judge_cfg:
            return [None] * len(completions), {}
        items = [JudgeItem(f"step{step}-{i}", m, t, str(g), c)
                 for i, (c, m, g, t) in enumerate(zip(completions, methods, golds, tasks))]  # fmt: skip
        stats = judge(self.judge_settings, self.templates, items, self.judge_cache,
                      self.judge_cfg["parse_retries"], self.judge_cfg["on_unparseable"])  # fmt: skip
        return stats.per_item, {"judge_unparseable": stats.unparseable, "judge_unanswered": stats.unanswered}

    def __call__(self, completions, **kwargs):
        n = len(completions)
        methods = kwargs.get("method") or ["qa"] * n
        golds = kwargs.get("ground_truth") or [""] * n
        tasks = kwargs.get("task") or [""] * n
        infos = kwargs.get("rollout_infos") or [{}] * n
        truncated = kwargs.get("is_truncated") or [False] * n
        state = kwargs.get("trainer_state")
        step = int(getattr(state, "global_step", 0)) + 1
        verdicts, counts = self._judge(completions, methods, golds, tasks, step)
        out = []
        for text, method, gold, info, trunc, verdict in zip(completions, methods, golds, infos, truncated, verdicts):
            info = info or {}
            res = compute_reward(
                RewardInput(
                    text=text,
                    method=method,
                    ground_truth=str(gold),
                    exec_ok=int(info.get("exec_ok", 0)),
                    exec_total=int(info.get("exec_total", 0)),
                    turns=int(info.get("num_turns", 1)),
                    truncated=bool(trunc) or bool(info.get("over_length")),
                    judge=verdict,
                )
            )
            out.append(res.reward)
            log_rollout({"step": step, "method": method, "reward": res.reward, "gate": res.gate, "terms": res.terms,
                         "judge": verdict, **counts, **info})  # fmt: skip
        return out


loss_scale_map["deepanalyze"] = DeepAnalyzeLossScale
multi_turns["deepanalyze"] = DeepAnalyzeScheduler
orms["deepanalyze_reward"] = DeepAnalyzeReward
