"""End-of-episode reward of DeepAnalyze's stage 3 (docs/reward.md: each term beside the public release's).

Terms that need the LLM judge come in as scores (qa: analysis 1–5; datatask: accuracy 0–5; openresearch: five
dimensions 1–5) or `None`; with no judge (`judge.backend: none`) they are dropped and the other terms averaged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .answers import normalise_answer
from .tags import code_blocks, final_answer, is_python_fenced

METHODS = ("qa", "datatask", "openresearch")
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
    if method in ("datatask", "openresearch"):
        for block in code_blocks(text):
            if not is_python_fenced(block):
                return "<Code> block not fenced as ```python"
    return None


def compute_reward(x: RewardInput) -> RewardResult:
    if x.method not in METHODS:
        raise ValueError(f"unknown reward method {x.method!r}; expected one of {METHODS}")
    if x.over_length:
        return RewardResult(0.0, gate="over-length")
    gate = format_gate(x.text, x.method)
    if gate:
        return RewardResult(-1.0, gate=gate)
    terms: dict[str, float] = {}
    judge = x.judge or {}
    # A data task answered without running any code gets 0 here, where the release leaves the term out (a
    # deliberate difference: docs/reward.md).
    success = x.exec_ok / x.exec_total if x.exec_total else 0.0
    if x.method == "qa":
        terms["accuracy"] = exact_match(final_answer(x.text), x.ground_truth)
        if "score" in judge:
            terms["judge_analysis"] = judge["score"] / 5
    elif x.method == "datatask":
        if "accuracy" in judge:
            terms["judge_accuracy"] = judge["accuracy"] / 5
        terms["code_success"] = success
    else:
        for dim in RESEARCH_DIMENSIONS:
            if dim in judge:
                terms[dim] = judge[dim] / 5
        terms["code_success"] = success
        terms["turns"] = min(x.turns / TURNS_NORM, 1.0)
    return RewardResult(sum(terms.values()) / len(terms), terms=terms)
