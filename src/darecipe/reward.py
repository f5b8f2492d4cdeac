"""End-of-episode reward of DeepAnalyze's stage 3 (docs/reward.md: each term beside the public release's).

Terms that need the LLM judge come in as scores (qa: analysis 1–5; datatask: accuracy 0–5; openresearch: five
dimensions 1–5) or `None`; with no judge (`judge.backend: none`) they are dropped and the other terms averaged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .answers import normalise_answer
from .tags import code_blocks, final_answer, is_python_fenced

REQUIRED_MARKERS = ("<Analyze>", "</Analyze>", "<Answer>", "</Answer>")
RESEARCH_DIMENSIONS = ("usefulness", "richness", "soundness", "interpretability", "readability")
TURNS_NORM = 10


@dataclass
class RewardInput:
    text: str  # the episode's assistant message (every kept turn and observation)
    method: str
    ground_truth: str = ""
    exec_ok: int = 0
    exec_total: int = 0  # blocks run plus turns that ran none (rollout.Episode.exec_total)
    turns: int = 0
    over_length: bool = False
    judge: dict[str, float] | None = None


@dataclass
class RewardResult:
    reward: float
    gate: str | None = None
    terms: dict[str, float] = field(default_factory=dict)


def exact_match(pred: str | None, gold: str) -> float:
    if pred is None:
        return 0.0
    return float(normalise_answer(pred) == normalise_answer(gold))


def format_gate(text: str, method: str) -> str | None:
    missing = [m for m in REQUIRED_MARKERS if m not in text]
    if missing:
        return "missing " + " ".join(missing)
    if METHODS[method].fenced_code:
        for block in code_blocks(text):
            if not is_python_fenced(block):
                return "<Code> block not fenced as ```python"
    return None


# Each method's terms, averaged into the reward. `judge` holds the judge's scores (absent when there is no judge);
# `success` is the code success rate. A data task answered without running any code gets 0 for it, where the
# release leaves the term out (a deliberate difference: docs/reward.md).
def _qa_terms(x: RewardInput, judge: dict, success: float) -> dict[str, float]:
    terms = {"accuracy": exact_match(final_answer(x.text), x.ground_truth)}
    if "score" in judge:
        terms["judge_analysis"] = judge["score"] / 5
    return terms


def _datatask_terms(x: RewardInput, judge: dict, success: float) -> dict[str, float]:
    terms = {"judge_accuracy": judge["accuracy"] / 5} if "accuracy" in judge else {}
    return {**terms, "code_success": success}


def _openresearch_terms(x: RewardInput, judge: dict, success: float) -> dict[str, float]:
    terms = {dim: judge[dim] / 5 for dim in RESEARCH_DIMENSIONS if dim in judge}
    return {**terms, "code_success": success, "turns": min(x.turns / TURNS_NORM, 1.0)}


@dataclass(frozen=True)
class RewardMethod:
    """One way of scoring a stage-3 task (its `reward_spec.method`): the one registry from which the reward, the
    judge, the RL sets (rule rl_sets and the released files) and the config's judge prompts are derived."""

    name: str
    terms: Callable[[RewardInput, dict, float], dict[str, float]]
    rl_set: str  # results/data/rl/<rl_set>.parquet holds its tasks
    released_files: tuple[str, ...]  # the release's RL/<file> of those tasks, first the release's own spelling
    judge_keys: tuple[str, ...]  # what the judge's verdict gives
    judge_scale: tuple[int, int]
    judge_prompt: str  # the default judge prompt, config/prompts/<judge_prompt>
    fenced_code: bool  # every <Code> block must be fenced as ```python (else the format gate gives -1)
    needs_gold: bool  # its tasks carry a short gold answer


METHODS = {
    m.name: m
    for m in (
        RewardMethod(
            "qa",
            _qa_terms,
            "qa",
            ("qa.parquet",),
            ("score",),
            (1, 5),
            "judge_qa.v2.txt",
            fenced_code=False,
            needs_gold=True,
        ),
        RewardMethod(
            "datatask",
            _datatask_terms,
            "datatask",
            ("datatask.parquet",),
            ("accuracy",),
            (0, 5),
            "judge_datatask.v2.txt",
            fenced_code=True,
            needs_gold=False,
        ),
        # the release's file is misspelled `reseach.parquet`; a corrected name is accepted too
        RewardMethod(
            "openresearch",
            _openresearch_terms,
            "research",
            ("reseach.parquet", "research.parquet"),
            RESEARCH_DIMENSIONS,
            (1, 5),
            "judge_openresearch.v2.txt",
            fenced_code=True,
            needs_gold=False,
        ),
    )
}


def compute_reward(x: RewardInput) -> RewardResult:
    if x.method not in METHODS:
        raise ValueError(f"unknown reward method {x.method!r}; expected one of {tuple(METHODS)}")
    if x.over_length:
        return RewardResult(0.0, gate="over-length")
    gate = format_gate(x.text, x.method)
    if gate:
        return RewardResult(-1.0, gate=gate)
    success = x.exec_ok / x.exec_total if x.exec_total else 0.0
    terms = METHODS[x.method].terms(x, x.judge or {}, success)
    return RewardResult(sum(terms.values()) / len(terms), terms=terms)
