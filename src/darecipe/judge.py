"""The LLM judge of stage 3's hybrid reward, through the LLM layer (cache, retries, replay).

Each method's prompt asks what the public release's judge asked (docs/reward.md):
- qa: the analysis of the whole trajectory, with the question and the correct answer, 1-5 (release: ANALYZE_PROMPT);
- datatask: the accuracy of the final answer against the reference, with the task, 0-5 (release: ACC_PROMPT);
- openresearch: five dimensions of the whole trajectory, with the instruction and the ground truth as the data
  thumbnail, 1-5 each (release: OPENDOMAIN_PROMPT).
Replies are parsed robustly (a JSON object anywhere, code fences, trailing commas, "SCORE: n"); a reply that
still cannot be read is asked again with a reminder, then scored as `judge.on_unparseable` says (`lowest`: the
bottom of the scale, `drop`: the terms are left out) and counted. The judge model and each prompt's file name and
digest form the judge's identity, logged with every rollout. A call left unanswered after its retries
(transport, limits, server) says nothing about the rollout: its terms are dropped and counted apart
(`unanswered`), never scored lowest.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from .llm import LLMError, LLMRequest, LLMSettings, ResponseCache, run_requests
from .prompts import load_template
from .replies import candidates, loads
from .reward import METHODS
from .tags import final_answer

KEYS = {name: m.judge_keys for name, m in METHODS.items()}
SCALES = {name: m.judge_scale for name, m in METHODS.items()}
REMINDER = "Your reply could not be read. Reply with the JSON object only, scores as integers on the scale asked."


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
    asked: list[int] = field(default_factory=list)  # times each item was asked (a reminder asks again)
    unreadable: list[bool] = field(default_factory=list)  # no readable verdict in the end
    no_reply: list[bool] = field(default_factory=list)  # the call went unanswered (transport, limits, server)


def _scores(data, method: str) -> dict[str, float] | None:
    """Every key `method` needs, each a number on its scale; else None."""
    lo, hi = SCALES[method]
    scores = {}
    for k in KEYS[method]:
        try:
            v = float(data.get(k) if isinstance(data, dict) else None)
        except (TypeError, ValueError):
            return None
        if not lo <= v <= hi:
            return None
        scores[k] = v
    return scores


def parse_scores(reply: str | None, method: str) -> dict[str, float] | None:
    """The scores a reply gives for `method` (on its scale), or None if it cannot be read."""
    if not reply:
        return None
    lo, hi = SCALES[method]
    for c in candidates(reply):
        try:
            data = loads(c)
        except json.JSONDecodeError:
            continue
        scores = _scores(data, method)
        if scores is not None:
            return scores
    if len(KEYS[method]) == 1:  # the release's "SCORE: 4", a bare "4" or "4/5"
        m = re.search(r"(?:score|accuracy)\s*[:=]\s*(\d+(?:\.\d+)?)\s*(?:/\s*5)?\s*\.?\s*$", reply, re.IGNORECASE)
        m = m or re.fullmatch(r"\s*(\d+(?:\.\d+)?)(?:\s*/\s*5)?\s*\.?\s*", reply)
        if m and lo <= float(m.group(1)) <= hi:
            return {KEYS[method][0]: float(m.group(1))}
    return None


def judge_messages(templates: dict[str, Template], item: JudgeItem) -> list[dict]:
    answer = final_answer(item.trajectory) or "(no final answer)"
    body = templates[item.method].safe_substitute(
        task=item.task, gold=item.gold or "(none)", answer=answer, trajectory=item.trajectory
    )
    return [{"role": "user", "content": body}]


def load_templates(paths: dict[str, str]) -> dict[str, Template]:
    return {method: load_template(p) for method, p in paths.items()}


def prompt_versions(paths: dict[str, str]) -> dict[str, str]:
    """method -> "<file name>@<sha256 of its text, 8 hex>": which prompt scored a rollout."""
    return {
        m: f"{Path(p).name}@{hashlib.sha256(Path(p).read_bytes()).hexdigest()[:8]}" for m, p in sorted(paths.items())
    }


def judge(
    settings: LLMSettings,
    templates: dict[str, Template],
    items: list[JudgeItem],
    cache: ResponseCache,
    parse_retries: int = 1,
    on_unparseable: str = "lowest",
) -> JudgeStats:
    """Score every item; `stats.per_item[i]` is the judge dict for the reward (None = judge terms dropped)."""
    stats = JudgeStats(
        per_item=[None] * len(items),
        asked=[0] * len(items),
        unreadable=[False] * len(items),
        no_reply=[False] * len(items),
    )
    pending = list(range(len(items)))
    messages = {i: judge_messages(templates, items[i]) for i in pending}
    for _attempt in range(parse_retries + 1):
        reqs = [LLMRequest(items[i].id, messages[i]) for i in pending]
        results, totals = run_requests(settings, reqs, cache, progress=False)
        stats.requests += totals.requests_sent + totals.from_cache
        for i in pending:
            stats.asked[i] += 1
        still = []
        for i, res in zip(pending, results):
            if res.error and res.retryable:
                stats.unanswered += 1
                stats.no_reply[i] = True
                continue
            scores = parse_scores(res.text, items[i].method)
            if scores is None:
                still.append(i)
                if res.text is not None:
                    messages[i] = messages[i] + [
                        {"role": "assistant", "content": res.text},
                        {"role": "user", "content": REMINDER},
                    ]
            else:
                stats.per_item[i] = scores
        pending = still
        if not pending:
            break
    for i in pending:
        stats.unparseable += 1
        stats.unreadable[i] = True
        if on_unparseable == "lowest":
            stats.per_item[i] = {k: float(SCALES[items[i].method][0]) for k in KEYS[items[i].method]}
            stats.scored_lowest += 1
        else:
            stats.dropped += 1
    return stats


def preflight(settings: LLMSettings) -> None:
    """Stop before training, with one line, if the configured judge cannot answer (no key, no endpoint)."""
    probe = [LLMRequest("judge-preflight", [{"role": "user", "content": 'Reply with the JSON {"score": 5}.'}])]
    quick = LLMSettings(**{**settings.__dict__, "max_retries": 1, "timeout_s": min(settings.timeout_s, 30)})
    results, _ = run_requests(quick, probe, ResponseCache(None), progress=False)
    if results[0].error:
        raise LLMError(
            f"judge: {settings.model} at {settings.base_url or 'the default endpoint'} does not answer "
            f"({results[0].error}); fix judge.* in the config or set judge.backend: none"
        )


class Judge:
    """The configured judge (`judge:` block plus its cache path), scoring episodes for either stage-3 backend."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.settings = LLMSettings.from_config(cfg)
        self.templates = load_templates(cfg["prompts"])
        self.cache = ResponseCache(cfg.get("cache"))
        self.identity = {"model": cfg["model"], "backend": cfg["backend"], "prompts": prompt_versions(cfg["prompts"])}

    @classmethod
    def from_json(cls, blob: str | None) -> Judge | None:
        """From the JSON the training job puts in `DARECIPE_JUDGE`; None when there is no judge."""
        cfg = json.loads(blob or "null")
        return cls(cfg) if cfg and cfg.get("backend") != "none" else None

    def score(self, items: list[JudgeItem]) -> JudgeStats:
        return judge(
            self.settings, self.templates, items, self.cache, self.cfg["parse_retries"], self.cfg["on_unparseable"]
        )
