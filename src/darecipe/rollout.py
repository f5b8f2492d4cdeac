"""One rollout's environment: code execution in a private copy of its workspace, and bookkeeping.

Shared by the ms-swift scheduler plugin (stage 3), and meant to be shared by the skyrl-gym
environment and evaluation, so every backend runs code and counts successes the same way.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from .sandbox import SandboxLimits, Session, execute_block
from .tags import last_open_code

WORKSPACE_ROOT_ENV = "DARECIPE_WORKSPACE_ROOT"
SANDBOX_ENV = "DARECIPE_SANDBOX"
EPISODE_ENV = "DARECIPE_EPISODE"
JUDGE_ENV = "DARECIPE_JUDGE"
ROLLOUT_LOG_ENV = "DARECIPE_ROLLOUT_LOG"


def workspace_source(root: Path, data: str, workspace_id: str) -> Path:
    src = root / data / workspace_id
    if not src.is_dir():
        raise FileNotFoundError(f"workspace {src} does not exist (data={data!r}, workspace_id={workspace_id!r})")
    return src


@dataclass
class Episode:
    workdir: Path  # the task's workspace, read only: the session copies it into the jail (one copy per rollout)
    limits: SandboxLimits
    exec_ok: int = 0
    exec_total: int = 0
    timeouts: int = 0
    max_tokens: int | None = None
    tokens: int = 0
    session: Session | None = None

    def __post_init__(self) -> None:
        self.session = Session(self.workdir, self.limits)

    def add_tokens(self, n: int) -> None:
        self.tokens += n

    @property
    def over_length(self) -> bool:
        return self.max_tokens is not None and self.tokens > self.max_tokens

    def wants_execution(self, text: str) -> str | None:
        """The code to run if `text` (the assistant message so far) ends in a <Code> block."""
        if "</Answer>" in text:
            return None
        return last_open_code(text)

    def execute(self, code: str) -> str:
        obs, res = execute_block(code, self.workdir, self.limits, self.session)
        self.exec_total += 1
        self.exec_ok += int(res.ok)
        self.timeouts += int(res.timed_out)
        return obs

    def infos(self) -> dict:
        return {
            "exec_ok": self.exec_ok,
            "exec_total": self.exec_total,
            "exec_timeouts": self.timeouts,
            "trajectory_tokens": self.tokens,
            "over_length": self.over_length,
        }

    def close(self) -> None:
        if self.session:
            self.session.close()


def open_episode(data: str, workspace_id: str, limits: SandboxLimits, max_tokens: int | None = None,
                 root: str | Path | None = None) -> Episode:  # fmt: skip
    """A new episode on the task's workspace (root from the environment the trainer set); its sandbox session
    works in a private copy, so files one rollout writes are never seen by another."""
    root = Path(root or os.environ.get(WORKSPACE_ROOT_ENV, "results/data/rl/workspaces"))
    return Episode(workspace_source(root, data, workspace_id), limits, max_tokens=max_tokens)


def log_rollout(record: dict) -> None:
    """Append one scored rollout to the run's rollout log (for metrics.json and the report)."""
    path = os.environ.get(ROLLOUT_LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def read_rollouts(path: Path) -> list[dict]:
    """Rollout records; a step logged again after a resume replaces the killed attempt's records."""
    if not path.is_file():
        return []
    segments: list[tuple[int, list[dict]]] = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        step = rec.get("step", 0)
        if segments and segments[-1][0] == step:
            segments[-1][1].append(rec)
        else:
            segments.append((step, [rec]))
    latest = {step: recs for step, recs in segments}
    return [r for step in sorted(latest) for r in latest[step]]


def _mean(xs: list[float]) -> float | None:
    return round(statistics.fmean(xs), 6) if xs else None


def summarise_rollouts(path: Path) -> dict:
    """Per-step reward mean/std, term means, turns, code success rate and the share hitting a gate."""
    recs = read_rollouts(path)
    per_step = []
    for step in sorted({r.get("step", 0) for r in recs}):
        rs = [r for r in recs if r.get("step", 0) == step]
        rewards = [r["reward"] for r in rs]
        terms: dict[str, list[float]] = {}
        for r in rs:
            for k, v in (r.get("terms") or {}).items():
                terms.setdefault(k, []).append(v)
        total = sum(r.get("exec_total", 0) for r in rs)
        per_step.append(
            {
                "step": step,
                "rollouts": len(rs),
                "reward_mean": _mean(rewards),
                "reward_std": round(statistics.pstdev(rewards), 6) if rewards else None,
                "terms": {k: _mean(v) for k, v in sorted(terms.items())},
                "turns_mean": _mean([r.get("num_turns", 1) for r in rs]),
                "code_blocks": total,
                "code_success_rate": round(sum(r.get("exec_ok", 0) for r in rs) / total, 6) if total else None,
                "gate_share": _mean([float(r.get("gate") is not None) for r in rs]),
            }
        )
    return {"total_rollouts": len(recs), "per_step": per_step}
