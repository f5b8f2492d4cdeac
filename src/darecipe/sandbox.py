"""Run one `<Code>` block for real: a fresh interpreter, cwd = the rollout's workspace copy.

Every failure, a timeout included, comes back as `[Error]:\\n…` and counts as a failed block.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .tags import strip_fence

ERROR_MARKER = "[Error]:"
# Only these variables reach generated code: no API keys, no tokens, no cluster credentials.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    memory_mb: int = 2048
    max_output_chars: int = 4096


@dataclass
class ExecResult:
    ok: bool
    output: str
    timed_out: bool
    seconds: float

    @property
    def observation(self) -> str:
        return self.output if self.ok else f"{ERROR_MARKER}\n{self.output}"


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    return f"{text[:head]}\n…[{len(text) - limit} characters truncated]…\n{text[-tail:]}"


def scrubbed_env(workdir: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.update(
        HOME=str(workdir),
        MPLBACKEND="Agg",
        MPLCONFIGDIR=str(workdir / ".mplconfig"),
        PYTHONIOENCODING="utf-8",
        PYTHONHASHSEED="0",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


def _limit_child(memory_mb: int):
    def apply() -> None:
        os.setsid()
        mem = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_code(code: str, workdir: Path, limits: SandboxLimits = SandboxLimits()) -> ExecResult:
    """Run `code` (a <Code> body; a ```python fence is stripped) with cwd=`workdir`."""
    source = strip_fence(code)
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-"],
        cwd=workdir,
        env=scrubbed_env(workdir),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_limit_child(limits.memory_mb),
    )
    try:
        out, err = proc.communicate(source.encode("utf-8"), timeout=limits.timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        timed_out = True
    seconds = time.monotonic() - start
    stdout = out.decode("utf-8", "replace")
    stderr = err.decode("utf-8", "replace")
    if timed_out:
        text = (stdout + stderr).rstrip("\n")
        msg = f"TimeoutError: execution exceeded {limits.timeout_s:g} s and was stopped"
        return ExecResult(False, truncate(f"{text}\n{msg}" if text else msg, limits.max_output_chars), True, seconds)
    if proc.returncode != 0:
        text = (stdout + stderr).rstrip("\n")
        if proc.returncode < 0:
            text += f"\nKilled by signal {signal.Signals(-proc.returncode).name}"
        return ExecResult(False, truncate(text, limits.max_output_chars), False, seconds)
    return ExecResult(True, truncate(stdout.rstrip("\n"), limits.max_output_chars), False, seconds)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def execute_block(code: str, workdir: Path, limits: SandboxLimits = SandboxLimits()) -> tuple[str, ExecResult]:
    """Run a block and return the text spliced after it: `<Execute>\\n…\\n</Execute>`."""
    res = run_code(code, workdir, limits)
    return f"<Execute>\n{res.observation}\n</Execute>", res
