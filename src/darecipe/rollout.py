"""One episode of the DeepAnalyze environment: how a model's turn is cut and run, and when the episode ends; code
runs in the sandbox's private copy of the task's workspace. Shared by the ms-swift scheduler plugin and the
skyrl-gym environment (stage 3) and by the agent loop of evaluation and synthesis (`agent.run_agents`), so every
backend runs code, counts successes and ends episodes the same way. docs/reward.md compares each rule with the
public release's environment.

A turn (what the model generated until `</Code>`, EOS or its length limit):
- is kept up to its first `</Code>` or `</Answer>`, whichever comes first (generation stops at `</Code>`; the
  release likewise keeps a turn only up to its first `</Answer>`);
- ends the episode if it closes an `<Answer>`, or if it is turn `max_turns`;
- otherwise runs its closed `<Code>` block and appends `<Execute>\\n…\\n</Execute>`. A turn without a closed block
  (only reasoning, EOS inside an open block, cut by the length limit) runs nothing: as in the release, it gets the
  failed observation "No code is provided" and counts as a failed block, and the episode goes on.
Before a turn, a trajectory already longer than `max_tokens` (prompt + turns + observations) ends the episode:
over length, reward 0 (skyrl-train's generator checks the same before it generates).
"""

from __future__ import annotations

import json
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .sandbox import ERROR_MARKER, ExecResult, SandboxLimits, Session, execute_block

WORKSPACE_ROOT_ENV = "DARECIPE_WORKSPACE_ROOT"
SANDBOX_ENV = "DARECIPE_SANDBOX"
EPISODE_ENV = "DARECIPE_EPISODE"
JUDGE_ENV = "DARECIPE_JUDGE"
ROLLOUT_LOG_ENV = "DARECIPE_ROLLOUT_LOG"

NO_CODE = "No code is provided, so nothing was executed."
CLOSED_CODE_RE = re.compile(r"<Code>(.*?)</Code>", re.DOTALL)
TURN_END_RE = re.compile(r"</Code>|</Answer>")


def cut_turn(action: str) -> str:
    """A turn as the environment keeps it: up to its first `</Code>` or `</Answer>`."""
    m = TURN_END_RE.search(action)
    return action if m is None else action[: m.end()]


def turn_code(action: str) -> str | None:
    """The body of the turn's closed `<Code>` block; None if the model did not close one."""
    m = CLOSED_CODE_RE.search(action)
    return m.group(1) if m else None


def workspace_source(root: Path, data: str, workspace_id: str) -> Path:
    src = root / data / workspace_id
    if not src.is_dir():
        raise FileNotFoundError(f"workspace {src} does not exist (data={data!r}, workspace_id={workspace_id!r})")
    return src


@dataclass
class Turn:
    action: str  # the turn as kept
    observation: str  # `<Execute>…</Execute>` appended after it ("" when the episode ended)
    done: bool
    stop: str | None = None  # answer | max_turns | no_code | over_length, when done


@dataclass
class Episode:
    workdir: Path  # the task's workspace, read only: the session copies it into the jail (one copy per rollout)
    limits: SandboxLimits
    max_turns: int = 30
    max_tokens: int | None = None
    on_no_code: str = "continue"  # continue (the environment); stop (a synthesis solver's attempt ends there)
    text: str = ""
    turns: int = 0
    tokens: int = 0
    no_code_turns: int = 0
    timeouts: int = 0
    stop: str | None = None
    results: list[ExecResult] = field(default_factory=list)
    session: Session | None = None

    def __post_init__(self) -> None:
        self.session = Session(self.workdir, self.limits)

    def add_tokens(self, n: int) -> None:
        self.tokens += n

    @property
    def over_length(self) -> bool:
        return self.max_tokens is not None and self.tokens > self.max_tokens

    @property
    def exec_ok(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def exec_total(self) -> int:
        """Blocks for the reward's code success rate: every block run, and every turn that ran none."""
        return len(self.results) + self.no_code_turns

    def step(self, action: str) -> Turn:
        if self.over_length:
            self.stop = "over_length"
            return Turn("", "", True, self.stop)
        self.turns += 1
        action = cut_turn(action)
        self.text += action
        if "</Answer>" in action:
            return self._end(action, "answer")
        code = turn_code(action)
        if code is None and self.on_no_code == "stop":
            return self._end(action, "no_code")
        if self.turns >= self.max_turns:
            return self._end(action, "max_turns")
        obs = self.execute(code)
        self.text += obs
        return Turn(action, obs, False)

    def _end(self, action: str, stop: str) -> Turn:
        self.stop = stop
        return Turn(action, "", True, stop)

    def execute(self, code: str | None) -> str:
        if code is None:
            self.no_code_turns += 1
            return f"<Execute>\n{ERROR_MARKER}\n{NO_CODE}\n</Execute>"
        obs, res = execute_block(code, self.workdir, self.limits, self.session)
        self.results.append(res)
        self.timeouts += int(res.timed_out)
        return obs

    def infos(self) -> dict:
        return {
            "exec_ok": self.exec_ok,
            "exec_total": self.exec_total,
            "exec_timeouts": self.timeouts,
            "no_code_turns": self.no_code_turns,
            "trajectory_tokens": self.tokens,
            "over_length": self.stop == "over_length",
            "num_turns": self.turns,
            "stop": self.stop,
        }

    def close(self) -> None:
        if self.session:
            self.session.close()
            self.session = None


def open_episode(
    data: str,
    workspace_id: str,
    limits: SandboxLimits,
    max_tokens: int | None = None,
    root: str | Path | None = None,
    max_turns: int = 30,
) -> Episode:
    """A new episode on the task's workspace (root from the environment the trainer set); its sandbox session
    works in a private copy, so files one rollout writes are never seen by another."""
    root = Path(root or os.environ.get(WORKSPACE_ROOT_ENV, "results/data/rl/workspaces"))
    return Episode(workspace_source(root, data, workspace_id), limits, max_turns=max_turns, max_tokens=max_tokens)


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
    """Per-step reward mean/std, term means, turns, code success rate, the share of rollouts that executed code
    and the share hitting a gate."""
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
        ran = sum(r.get("exec_total", 0) - r.get("no_code_turns", 0) for r in rs)
        per_step.append(
            {
                "step": step,
                "rollouts": len(rs),
                "reward_mean": _mean(rewards),
                "reward_std": round(statistics.pstdev(rewards), 6) if rewards else None,
                "terms": {k: _mean(v) for k, v in sorted(terms.items())},
                "turns_mean": _mean([r.get("num_turns", 1) for r in rs]),
                "code_blocks": ran,
                # the share of rollouts that ran at least one block (a turn without code runs none)
                "code_share": _mean([float(r.get("exec_total", 0) - r.get("no_code_turns", 0) > 0) for r in rs]),
                "code_success_rate": round(sum(r.get("exec_ok", 0) for r in rs) / total, 6) if total else None,
                "gate_share": _mean([float(r.get("gate") is not None) for r in rs]),
                "judge_requests": sum(r.get("judge_requests", 0) for r in rs),
            }
        )
    return {
        "total_rollouts": len(recs),
        "judge_requests": sum(s["judge_requests"] for s in per_step),
        "per_step": per_step,
    }
