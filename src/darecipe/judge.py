"""The LLM judge of stage 3's hybrid reward (RECIPE §6), through the LLM layer (cache, retries, replay).

qa -> {"score": 1-5}; datatask -> {"accuracy": 1-5}; openresearch -> five dimensions, 1-5 each. Replies are
parsed robustly (code fences, trailing commas, prose around the JSON); a reply that still cannot be parsed is
asked again with a reminder, then scored as `judge.on_unparseable` says (`lowest`: 1, `drop`: the term is left
out) and counted. A call left unanswered after its retries (transport, limits, server) says nothing about the
rollout: its judge terms are dropped and counted apart, never scored lowest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from .llm import LLMError, LLMRequest, LLMSettings, ResponseCache, run_requests
from .reward import RESEARCH_DIMENSIONS
from .tags import final_answer

KEYS = {"qa": ("score",), "datatask": ("accuracy",), "openresearch": RESEARCH_DIMENSIONS}
REMINDER = "Your reply could not be read. Reply with the JSON object only, scores as integers from 1 to 5."


@dataclass
class JudgeItem:
    id: str
    method: str
    task: str
    gold: str
    trajectory: str


@dataclass
class JudgeStats:
    requests: int = 0
    unparseable: int = 0
    scored_lowest: int = 0
    dropped: int = 0
    unanswered: int = 0  # calls that got no reply (their terms dropped)
    per_item: list[dict | None] = field(default_factory=list)


def parse_scores(reply: str | None, method: str) -> dict[str, float] | None:
    """The 1-5 scores a reply gives for `method`, or None if it cannot be read."""
    if not reply:
        return None
    candidates = re.findall(r"```(?:json)?\s*(\{.*?\})\s*```", reply, re.DOTALL)
    start, end = reply.find("{"), reply.rfind("}")
    if start >= 0 and end > start:
        candidates.append(reply[start : end + 1])
    for c in candidates:
        for text in (c, re.sub(r",\s*([}\]])", r"\1", c)):
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                continue
            scores = {}
            for k in KEYS[method]:
                v = data.get(k) if isinstance(data, dict) else None
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    break
                if not 1 <= v <= 5:
                    break
                scores[k] = v
            else:
                return scores
    if method == "qa":  # a bare "4" or "Score: 4/5"
        m = re.fullmatch(r"\s*(?:score\s*[:=]?\s*)?([1-5])(?:\s*/\s*5)?\s*\.?\s*", reply, re.IGNORECASE)
        if m:
            return {"score": float(m.group(1))}
    return None


def judge_messages(templates: dict[str, Template], item: JudgeItem) -> list[dict]:
    answer = final_answer(item.trajectory) or "(no final answer)"
    body = templates[item.method].safe_substitute(task=item.task, gold=item.gold or "(none)", answer=answer,
                                                  trajectory=item.trajectory)  # fmt: skip
    return [{"role": "user", "content": body}]


def load_templates(paths: dict[str, str]) -> dict[str, Template]:
    return {method: Template(Path(p).read_text(encoding="utf-8")) for method, p in paths.items()}


def judge(settings: LLMSettings, templates: dict[str, Template], items: list[JudgeItem], cache: ResponseCache,
          parse_retries: int = 1, on_unparseable: str = "lowest", log=None) -> JudgeStats:  # fmt: skip
    """Score every item; `stats.per_item[i]` is the judge dict for the reward (None = judge terms dropped)."""
    stats = JudgeStats(per_item=[None] * len(items))
    pending = list(range(len(items)))
    messages = {i: judge_messages(templates, items[i]) for i in pending}
    for attempt in range(parse_retries + 1):
        reqs = [LLMRequest(items[i].id, messages[i]) for i in pending]
        results, totals = run_requests(settings, reqs, cache, log=log, progress=False)
        stats.requests += totals.requests_sent + totals.from_cache
        still = []
        for i, res in zip(pending, results):
            if res.error and res.retryable:
                stats.unanswered += 1
                continue
            scores = parse_scores(res.text, items[i].method)
            if scores is None:
                still.append(i)
                if res.text is not None:
                    messages[i] = messages[i] + [{"role": "assistant", "content": res.text},
                                                 {"role": "user", "content": REMINDER}]  # fmt: skip
            else:
                stats.per_item[i] = scores
        pending = still
        if not pending:
            break
    for i in pending:
        stats.unparseable += 1
        if on_unparseable == "lowest":
            stats.per_item[i] = {k: 1.0 for k in KEYS[items[i].method]}
            stats.scored_lowest += 1
        else:
            stats.dropped += 1
    return stats


def preflight(settings: LLMSettings) -> None:
    """Stop before training, with one line, if the configured judge cannot answer (no key, no endpoint)."""
    probe = [LLMRequest("judge-preflight", [{"role": "user", "content": "Reply with the JSON {\"score\": 5}."}])]
    quick = LLMSettings(**{**settings.__dict__, "max_retries": 1, "timeout_s": min(settings.timeout_s, 30)})
    results, _ = run_requests(quick, probe, ResponseCache(None), progress=False)
    if results[0].error:
        raise LLMError(f"judge: {settings.model} at {settings.base_url or 'the default endpoint'} does not answer "
                       f"({results[0].error}); fix judge.* in the config or set judge.backend: none")  # fmt: skip
