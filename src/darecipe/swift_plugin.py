"""ms-swift plugin (`--external_plugins <this file>`): everything DeepAnalyze adds to ms-swift, no fork.

- loss scale `deepanalyze`: `<Execute>…</Execute>` spans (tags included) get weight 0, i.e. label -100.
- multi-turn scheduler `deepanalyze`: each turn through the stage-3 environment (`darecipe.rollout.Episode`) in the
  rollout's own workspace copy; `<Execute>\\n…\\n</Execute>` gets loss mask 0.
- reward `deepanalyze_reward`: the end-of-episode reward with the judge (`darecipe.scoring`).
"""

import json
import os

from swift.loss_scale.base import ConfigLossScale
from swift.loss_scale.mapping import loss_scale_map
from swift.rewards.orm import ORM, orms
from swift.rollout.multi_turn import MultiTurnScheduler, multi_turns

from darecipe.judge import Judge
from darecipe.rollout import EPISODE_ENV, JUDGE_ENV, SANDBOX_ENV, Episode, open_episode
from darecipe.sandbox import SandboxLimits
from darecipe.scoring import EpisodeOutcome, score_episodes

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
    """Each turn goes through the stage-3 environment (`rollout.Episode`): generate until </Code> or EOS; the
    environment keeps the turn up to its first </Code> or </Answer>, runs a closed block (or answers a turn
    without one with the failed "No code is provided" observation) and appends <Execute> (loss mask 0); the
    episode ends at </Answer>, at `max_turns`, or before a turn once the trajectory exceeds
    `max_trajectory_length` (reward 0). Token ids are exact: a turn's trailing EOS is dropped when the message
    goes on (as skyrl-train does), tokens after the turn's end are cut."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits, self.max_trajectory_length = _episode_settings()
        self.episodes: dict[int, Episode] = {}
        self.pending: dict[int, tuple[list[int], list[int], str]] = {}

    async def on_trajectory_start(self, requests) -> None:
        for req in requests:
            d = req.data_dict
            ep = open_episode(
                str(d["data"]),
                str(d["workspace_id"]),
                self.limits,
                self.max_trajectory_length,
                max_turns=self.max_turns or 30,
            )
            ep.add_tokens(sum(len(self.tokenizer.encode(m["content"], add_special_tokens=False)) for m in req.messages))
            self.episodes[id(req)] = ep

    def _special_ids(self) -> tuple[set[int], int, int]:
        tok = self.tokenizer
        eos = {i for i in (tok.eos_token_id, tok.pad_token_id) if i is not None}
        return eos, tok.convert_tokens_to_ids("</Code>"), tok.convert_tokens_to_ids("</Answer>")

    def _turn_ids(self, response_choice) -> tuple[list[int], list[int], list[int]]:
        """(the turn's kept ids, ids the environment restores, the EOS id the model wrote right after the turn)."""
        eos, code_end, answer_end = self._special_ids()
        ids = list(response_choice.token_ids or [])
        for k, t in enumerate(ids):
            if t in (code_end, answer_end):
                return ids[: k + 1], [], ids[k + 1 : k + 2] if ids[k + 1 : k + 2] and ids[k + 1] in eos else []
        if ids and ids[-1] in eos:
            return ids[:-1], [], ids[-1:]
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        if response_choice.finish_reason == "stop" and "<Code>" in text and "</Code>" not in text:
            # The engine stopped at </Code> and dropped it from its output (vLLM does by default): restore it.
            return ids, [code_end], []
        return ids, [], []

    async def on_turn_end(self, infer_request, response_choice, current_turn) -> dict:
        ep = self.episodes[id(infer_request)]
        ids, restored, eos_id = self._turn_ids(response_choice)
        over = ep.over_length  # the trajectory exceeded its budget before this turn: the turn does not count
        action = "" if over else self.tokenizer.decode(ids + restored, skip_special_tokens=False)
        turn = ep.step(action)
        if turn.action != action:  # a tag spelled out in pieces ended the turn early: keep what the text keeps
            ids, restored = self.tokenizer.encode(turn.action, add_special_tokens=False), []
        if turn.done:
            # ms-swift keeps this turn's token ids as the final segment: the turn up to its end and the EOS the model
            # wrote after it (the episode's last sampled decision); a turn past the budget stays as it was sampled
            # (reward 0)
            if not over:
                # a turn with no tokens at all was an EOS the engine left out of its output: it is the model's
                # last decision, and ms-swift needs one trained token in a rollout
                response_choice.token_ids = ids + restored + eos_id or [self.tokenizer.eos_token_id]
            ep.add_tokens(len(ids) + len(restored))
            infos = {**ep.infos(), "text": ep.text}
            ep.close()
            self.episodes.pop(id(infer_request), None)
            return {"done": True, "rollout_infos": infos}
        self.pending[id(infer_request)] = (ids, restored, turn.observation)
        return {"done": False, "rollout_infos": ep.infos()}

    def step(self, infer_request, response_choice, current_turn) -> dict:
        ep = self.episodes[id(infer_request)]
        ids, restored, observation = self.pending.pop(id(infer_request))
        env_ids = restored + self.tokenizer.encode(observation, add_special_tokens=False)
        ep.add_tokens(len(ids) + len(env_ids))
        infer_request.messages[-1]["content"] = ep.text
        return {
            "infer_request": infer_request,
            "response_token_ids": ids + env_ids,
            "response_loss_mask": [1] * len(ids) + [0] * len(env_ids),
            "rollout_infos": ep.infos(),
        }


class DeepAnalyzeReward(ORM):
    """The end-of-episode reward (`darecipe.reward`), given once per episode: the rule-based terms plus, when a
    judge is configured (`DARECIPE_JUDGE`), the LLM judge's terms for every episode of the batch at once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.judge = Judge.from_json(os.environ.get(JUDGE_ENV))

    def __call__(self, completions, **kwargs):
        n = len(completions)
        infos = [i or {} for i in (kwargs.get("rollout_infos") or [{}] * n)]
        episodes = [
            EpisodeOutcome(
                text=info.get("text") or text, method=method, ground_truth=str(gold), task=str(task), infos=info
            )
            for text, method, gold, task, info in zip(
                completions,
                kwargs.get("method") or ["qa"] * n,
                kwargs.get("ground_truth") or [""] * n,
                kwargs.get("task") or [""] * n,
                infos,
            )
        ]
        state = kwargs.get("trainer_state")
        step = int(getattr(state, "global_step", 0)) + 1
        return [r.reward for r in score_episodes(episodes, self.judge, step)]


loss_scale_map["deepanalyze"] = DeepAnalyzeLossScale
multi_turns["deepanalyze"] = DeepAnalyzeScheduler
orms["deepanalyze_reward"] = DeepAnalyzeReward
