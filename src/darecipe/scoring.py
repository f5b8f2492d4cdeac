"""Scoring finished stage-3 episodes, the same way for both backends (ms-swift's reward plugin and the skyrl-gym
environment): the judge's verdicts for the batch, then `reward.compute_reward`, then one line per rollout in the
run's rollout log (with the judge model and prompt versions)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .judge import Judge, JudgeItem
from .reward import RewardInput, RewardResult, compute_reward
from .rollout import log_rollout


@dataclass
class EpisodeOutcome:
    text: str
    method: str
    ground_truth: str
    task: str
    infos: dict = field(default_factory=dict)  # rollout.Episode.infos()


def score_episodes(episodes: list[EpisodeOutcome], judge: Judge | None, step: int) -> list[RewardResult]:
    """Rewards of finished episodes; the judge is asked only about episodes that pass the gates (the others'
    reward does not depend on it)."""
    inputs = [
        RewardInput(
            text=e.text,
            method=e.method,
            ground_truth=e.ground_truth,
            exec_ok=int(e.infos.get("exec_ok", 0)),
            exec_total=int(e.infos.get("exec_total", 0)),
            turns=int(e.infos.get("num_turns", 1)),
            over_length=bool(e.infos.get("over_length")),
        )
        for e in episodes
    ]
    verdicts: list[dict | None] = [None] * len(episodes)
    asked, unreadable, no_reply = [0] * len(episodes), [False] * len(episodes), [False] * len(episodes)
    if judge is not None:
        todo = [i for i, x in enumerate(inputs) if compute_reward(x).gate is None]
        items = [
            JudgeItem(
                f"step{step}-{i}", episodes[i].method, episodes[i].task, episodes[i].ground_truth, episodes[i].text
            )
            for i in todo
        ]
        if items:
            stats = judge.score(items)
            for k, i in enumerate(todo):
                verdicts[i], asked[i], unreadable[i] = stats.per_item[k], stats.asked[k], stats.unreadable[k]
                no_reply[i] = stats.no_reply[k]
    results = []
    for e, x, verdict, n, bad, lost in zip(episodes, inputs, verdicts, asked, unreadable, no_reply):
        x.judge = verdict
        res = compute_reward(x)
        results.append(res)
        infos = {k: v for k, v in e.infos.items() if k != "text"}
        log_rollout(
            {
                "step": step,
                "method": e.method,
                "reward": res.reward,
                "gate": res.gate,
                "terms": res.terms,
                "judge": verdict,
                "judge_requests": n,
                "judge_unreadable": bad,
                "judge_unanswered": lost,
                "judge_identity": judge.identity if judge else None,
                **infos,
            }
        )
    return results
