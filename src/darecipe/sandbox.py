"""Run generated `<Code>` blocks for real, jailed, each episode in a private copy of its workspace.

Every failure of a block — an exception, a timeout, a kill by a limit, a workspace that cannot be prepared —
comes back as `[Error]:\\n…` and counts as a failed block. Only the machinery raises: `SandboxUnavailable` where the
jail cannot be built (one message saying what is missing), `SandboxError` if its template process dies (which no
block can cause). docs/sandbox.md says what the jail allows and forbids.

- `isolation: auto` (the default): the jail (`darecipe.jail`, built with bubblewrap). Code sees its workspace (a
  copy on a size-limited tmpfs), a private /tmp on the same tmpfs and a read-only Python runtime; nothing else of
  the host. No network, no host sockets, own pid/IPC/mount namespaces, no privileges. Whole-block limits on memory
  and processes, a wall-clock timeout, output streamed and capped. Nothing outlives its block, the session, or the
  pipeline process.
- `isolation: none`: no jail, on purpose; every log that uses it says so on its first line.

Fresh state per block, as in the paper: each block is a process forked from a warm template that has imported
`preload` (numpy, pandas, matplotlib…) but run nothing, so no Python state carries from block to block; files in
the workspace do persist between blocks of one session. `persistent: true` keeps one interpreter per session.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .jail import Pool, PoolLost, SandboxUnavailable, describe, get_pool, open_episode, render, run_block, truncate
from .tags import strip_fence


class SandboxError(RuntimeError):
    """The jail's template died or stopped answering: an infrastructure failure, not a block's result."""


__all__ = [
    "ERROR_MARKER",
    "ExecResult",
    "SandboxError",
    "SandboxLimits",
    "SandboxUnavailable",
    "Session",
    "describe_isolation",
    "execute_block",
    "resolve_isolation",
    "run_code",
    "truncate",
]

ERROR_MARKER = "[Error]:"
DEFAULT_PRELOAD = ("numpy", "pandas", "matplotlib.pyplot")


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    memory_mb: int = 2048
    max_output_chars: int = 4096
    max_processes: int = 64
    max_file_mb: int = 512
    disk_mb: int = 1024
    isolation: str = "auto"  # auto: the jail, or stop | none: no isolation, on purpose
    persistent: bool = False
    preload: tuple[str, ...] = DEFAULT_PRELOAD

    def __post_init__(self) -> None:
        object.__setattr__(self, "preload", tuple(self.preload))
        if self.isolation not in ("auto", "none"):
            raise ValueError(f"sandbox.isolation must be auto or none, not {self.isolation!r}")

    @classmethod
    def from_config(cls, cfg: dict) -> SandboxLimits:
        return cls(**{k: v for k, v in cfg.items() if k in cls.__dataclass_fields__})

    @property
    def jailed(self) -> bool:
        return self.isolation != "none"

    def per_block(self) -> dict:
        return {
            "timeout_s": float(self.timeout_s),
            "memory_mb": int(self.memory_mb),
            "max_processes": int(self.max_processes),
            "max_file_mb": int(self.max_file_mb),
        }


@dataclass
class ExecResult:
    ok: bool
    output: str
    timed_out: bool
    seconds: float

    @property
    def observation(self) -> str:
        return self.output if self.ok else f"{ERROR_MARKER}\n{self.output}"


def _result(outcome, limits: SandboxLimits) -> ExecResult:
    streams, limit = outcome.streams, limits.max_output_chars
    if outcome.status == "exit" and outcome.code == 0:
        return ExecResult(True, render(streams[:1], limit), False, outcome.seconds)
    if outcome.status == "timeout":
        suffix = f"TimeoutError: execution exceeded {limits.timeout_s:g} s and was stopped"
    elif outcome.status == "memory" or outcome.oom:
        suffix = f"MemoryError: the block's processes together used more than {limits.memory_mb} MB and were stopped"
    elif outcome.status == "signal":
        suffix = f"Killed by signal {_signal_name(outcome.signal)}"
    elif outcome.status == "lost":
        sig = f" (signal {_signal_name(outcome.signal)})" if outcome.signal else ""
        suffix = f"the interpreter died{sig}; its state is lost"
    else:
        suffix = ""
    if outcome.persistent_lost or (outcome.status in ("timeout", "memory") and limits.persistent):
        suffix += "\n(the interpreter was restarted: variables from earlier blocks are gone)"
    return ExecResult(False, render(streams, limit, suffix), outcome.status == "timeout", outcome.seconds)


def _signal_name(num: int | None) -> str:
    try:
        return signal.Signals(num).name
    except (ValueError, TypeError):
        return str(num)


class Session:
    """What an episode executes through. The jail's copy of `workdir` is made at the first block; the blocks of
    one session share it (files persist), `workdir` itself is never written to."""

    def __init__(self, workdir: Path, limits: SandboxLimits, pool: Pool | None = None):
        self.workdir, self.limits = Path(workdir), limits
        self._sock = None
        self._given = pool  # default: this process's pool for `limits`
        self._pool: Pool | None = None
        self._broken: str | None = None  # why the workspace could not be prepared

    def _open(self) -> None:
        if self._given is None:
            self._pool = get_pool(self.limits.jailed, self.limits.preload)
        else:
            self._pool = self._given
            if not self._pool.alive:
                self._pool.close()
                self._pool.start()
        sock = self._pool.attach()
        try:
            self._broken = open_episode(sock, self.workdir.resolve(), int(self.limits.disk_mb))
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    def run(self, code: str) -> ExecResult:
        start = time.monotonic()
        try:
            if self._sock is None:
                self._open()
            if self._broken:
                return ExecResult(
                    False, f"the workspace could not be prepared: {self._broken}", False, time.monotonic() - start
                )
            outcome = run_block(
                self._sock,
                strip_fence(code),
                self.limits.per_block(),
                self.limits.max_output_chars,
                self.limits.persistent,
            )
        except PoolLost as e:
            # Not the block's doing (a block cannot reach the template): no observation is made up for a block
            # that may never have run. The next session starts a new template.
            self.close()
            why = self._pool.log_tail() if self._pool is not None and not self._pool.alive else ""
            raise SandboxError(f"sandbox: the jail's template stopped: {e}{'; ' + why if why else ''}") from None
        if outcome.status == "setup":
            raise SandboxUnavailable(f"sandbox: the jail could not start a block: {outcome.detail}")
        if outcome.status == "error":
            return ExecResult(False, f"the sandbox refused this block: {outcome.detail}", False, outcome.seconds)
        return _result(outcome, self.limits)

    def close(self) -> None:
        """End the session: the template kills what still runs and drops the episode's tmpfs. Never raises."""
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.send(b'{"op": "close"}')  # said, not just closed: a forked child may hold a copy of the socket
            except OSError:
                pass
            sock.close()


def run_code(code: str, workdir: Path, limits: SandboxLimits = SandboxLimits()) -> ExecResult:
    """Run one block (a ```python fence is stripped) in a session of its own on a copy of `workdir`."""
    session = Session(workdir, limits)
    try:
        return session.run(code)
    finally:
        session.close()


def execute_block(code: str, workdir: Path, limits: SandboxLimits = SandboxLimits(), session: Session | None = None):
    """Run a block and return (`<Execute>\\n…\\n</Execute>`, result)."""
    res = session.run(code) if session else run_code(code, workdir, limits)
    return f"<Execute>\n{res.observation}\n</Execute>", res


def resolve_isolation(limits: SandboxLimits) -> str:
    """ "jail" or "none"; raises SandboxUnavailable when `auto` cannot build the jail."""
    if not limits.jailed:
        return "none"
    get_pool(True, limits.preload)
    return "jail"


def describe_isolation(limits: SandboxLimits) -> str:
    """The first line of every log that runs generated code: how it is isolated on this machine (starting the
    jail's template, so a machine that cannot build the jail stops the rule here, with one message)."""
    return describe(get_pool(limits.jailed, limits.preload).info, limits)


# ---------------------------------------------------------------- `python -m darecipe.sandbox check`

_TOGETHER = (
    "import os, time\npids = []\nfor _ in range(3):\n    pid = os.fork()\n    if pid == 0:\n"
    "        b = bytearray(b'x') * (200 << 20)\n        time.sleep(3)\n        os._exit(0)\n    pids.append(pid)\n"
    "bad = [s for s in (os.waitpid(p, 0)[1] for p in pids) if s]\nraise SystemExit(len(bad))"
)


def check(limits: SandboxLimits) -> bool:
    """Build the jail on this machine and try it as the pipeline will: one line per probe."""
    import tempfile

    print(describe_isolation(limits))
    host = [
        p
        for p in (
            os.path.abspath("Snakefile"),
            os.path.abspath("config"),
            os.path.expanduser("~/.bashrc"),
            "/etc/passwd",
        )
        if os.path.exists(p)
    ]
    small = dataclasses.replace(limits, timeout_s=10, memory_mb=256, max_processes=16, disk_mb=32)
    probes = [
        ("runs code", "print(6 * 7)", limits, lambda r: r.ok and r.output == "42"),
        (
            "sees none of the host's files",
            f"import os\nprint([p for p in {host!r} if os.path.exists(p)])",
            limits,
            lambda r: r.ok and r.output == "[]",
        ),
        (
            "no network",
            "import socket\nprint([n for _, n in socket.if_nameindex()])\n"
            "socket.create_connection(('1.1.1.1', 53), timeout=2)",
            limits,
            lambda r: not r.ok and r.output.startswith("['lo']"),
        ),
        (
            "no privileges",
            "import os\nst = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
            "print(os.getuid() != 0, st['CapEff'].strip(), st['NoNewPrivs'].strip())",
            limits,
            lambda r: r.ok and r.output == "True 0000000000000000 1",
        ),
        ("memory of all processes together (3 x 200 MB against 256 MB)", _TOGETHER, small, lambda r: not r.ok),
        (
            "process limit (fork bomb against 16)",
            "import os\nwhile True:\n    os.fork()",
            small,
            lambda r: not r.ok and r.seconds < 15,
        ),
        (
            "disk quota (64 MB against 32 MB)",
            "open('big', 'wb').write(b'z' * (64 << 20))",
            small,
            lambda r: "No space left" in r.output,
        ),
    ]
    ok = True
    with tempfile.TemporaryDirectory(prefix="sandbox-check-") as ws:
        for name, code, lim, good in probes:
            res = run_code(code, Path(ws), lim)
            passed = good(res)
            ok &= passed
            detail = "" if passed else f": {res.observation[-300:]!r}"
            print(f"  {'ok' if passed else 'FAILED'}  {name} ({res.seconds * 1000:.0f} ms){detail}")
    print("sandbox check: " + ("every probe passed" if ok else "FAILED"))
    return ok


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m darecipe.sandbox", description="Try the jail on this machine.")
    ap.add_argument("command", choices=["check"])
    ap.add_argument("--isolation", default="auto", choices=["auto", "none"])
    args = ap.parse_args(argv)
    try:
        return 0 if check(SandboxLimits(isolation=args.isolation)) else 1
    except SandboxUnavailable as e:
        print(e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
