"""Run generated `<Code>` blocks for real, isolated, in a rollout's private copy of its workspace.

Every failure — an exception, a timeout, a kill by a limit — comes back as `[Error]:\\n…` and counts as a
failed block. Two modes: a fresh interpreter per block (the paper's behaviour, the default) or one persistent
interpreter per trajectory, so state carries from block to block.

Isolation ("namespaces", used when the process is root and Linux namespaces are available):
- a new network namespace: no interface but a downed loopback, so no connection of any kind;
- a new mount namespace in which every mount is read-only except the workspace and a private /tmp inside it;
  directories on the interpreter's path that others cannot enter (e.g. /root) are replaced by empty ones
  exposing only that path, so the home directory and its secrets are not visible;
- a unique unprivileged user id per run, so the process-count limit (RLIMIT_NPROC) applies and every process
  left behind can be found and killed;
- rlimits on address space (memory), processes, file size and core dumps; an environment with no secrets.
Without root or namespaces ("none"), only the rlimits, the scrubbed environment and process-group killing
apply; the pipeline logs that once, and `sandbox.isolation: namespaces` makes it an error instead.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .tags import strip_fence

ERROR_MARKER = "[Error]:"
# Only these variables reach generated code: no API keys, no tokens, no cluster credentials.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
UID_BASE = 200_000

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18


class SandboxUnavailable(RuntimeError):
    """Isolation was required (`isolation: namespaces`) but this machine cannot provide it."""


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    memory_mb: int = 2048
    max_output_chars: int = 4096
    max_processes: int = 64
    max_file_mb: int = 512
    isolation: str = "auto"  # auto | namespaces | none
    persistent: bool = False

    @classmethod
    def from_config(cls, cfg: dict) -> "SandboxLimits":
        return cls(**{k: v for k, v in cfg.items() if k in cls.__dataclass_fields__})


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


def scratch_dir(workdir: Path) -> Path:
    """The code's temp and cache folder: beside the workspace, so listing the workspace shows only its files."""
    return workdir.parent / f".{workdir.name}.scratch"


def scrubbed_env(workdir: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    tmp = scratch_dir(workdir)
    env.update(
        HOME=str(workdir), TMPDIR=str(tmp), MPLBACKEND="Agg", MPLCONFIGDIR=str(tmp / "matplotlib"),
        PYTHONIOENCODING="utf-8", PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1",
        OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
    )  # fmt: skip
    return env


# ---------------------------------------------------------------- isolation (runs in the child, before exec)

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src, target, fstype, flags, data=None) -> None:
    enc = (lambda s: str(s).encode() if isinstance(s, (str, Path)) else s)
    _check(_libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _mountpoints() -> list[str]:
    points = []
    with open("/proc/self/mounts") as f:
        for line in f:
            p = line.split()[1].encode().decode("unicode_escape")
            points.append(p)
    return points


def _needed_paths() -> list[Path]:
    """Directories generated code must reach: the interpreter, its standard library and packages."""
    paths = {Path(sys.executable).resolve().parent, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    return sorted(paths)


def _mask_private_dirs(keep: list[Path]) -> None:
    """Replace each directory on the way to a `keep` path that others cannot enter by an empty 0711 tmpfs that
    holds only the next steps of those ways (bind-mounted back from the real directories). Anything else in it,
    such as the rest of a home directory, stays out of sight."""
    expose: dict[Path, set[str]] = {}
    for target in keep:
        parts = target.parts
        for i in range(1, len(parts) - 1):
            d = Path(*parts[: i + 1])
            if not os.stat(d).st_mode & 0o001:
                expose.setdefault(d, set()).add(parts[i + 1])
    for d in sorted(expose, key=lambda p: len(p.parts)):
        fds = {child: os.open(d / child, os.O_RDONLY | os.O_DIRECTORY) for child in sorted(expose[d])}
        _mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0711,size=1m")
        for child, fd in fds.items():
            os.mkdir(d / child)
            _mount(f"/proc/self/fd/{fd}", d / child, None, MS_BIND | MS_REC)
            os.close(fd)


def _isolate(workdir: str) -> None:
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    scratch = str(scratch_dir(Path(workdir)))
    _mask_private_dirs(_needed_paths() + [Path(workdir), Path(scratch)])
    for writable in (workdir, scratch):
        _mount(writable, writable, None, MS_BIND | MS_REC)
    for point in reversed(_mountpoints()):
        if point in (workdir, scratch) or point.startswith(workdir + "/") or point.startswith("/proc"):
            continue
        try:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
        except OSError:
            pass  # pseudo file systems that refuse a read-only remount (nothing writable through them)


def _child_setup(workdir: str, limits: SandboxLimits, uid: int | None):
    def setup() -> None:
        os.setsid()
        if uid is not None:
            _isolate(workdir)
            os.chdir(workdir)  # the cwd set before this still points into the read-only mount below the bind
        mem = limits.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        fsize = limits.max_file_mb << 20
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        if uid is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return setup


@lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """Root, and a child can enter new mount and network namespaces."""
    if os.geteuid() != 0:
        return False
    pid = os.fork()
    if pid == 0:
        try:
            _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare")
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def resolve_isolation(limits: SandboxLimits) -> str:
    if limits.isolation == "none":
        return "none"
    if namespaces_available():
        return "namespaces"
    if limits.isolation == "namespaces":
        raise SandboxUnavailable(
            "sandbox.isolation: namespaces needs root and Linux mount/network namespaces, which this machine does not "
            "allow; set sandbox.isolation: auto to run with resource limits only"
        )
    return "none"


def _prepare(workdir: Path, uid: int | None) -> None:
    (scratch_dir(workdir) / "matplotlib").mkdir(parents=True, exist_ok=True)
    if uid is not None:
        for top in (workdir, scratch_dir(workdir)):
            for root, dirs, files in os.walk(top):
                for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                    os.lchown(name, uid, uid)


def _new_uid() -> int:
    return UID_BASE + (os.getpid() * 1000 + time.monotonic_ns() // 1000) % 1_000_000


def _kill_all(proc: subprocess.Popen, uid: int | None) -> None:
    """Kill the block's process group and, when it ran as its own user, every process of that user."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if uid is None:
        return
    if not _live_processes(uid):
        return
    # kill(-1) sent *as that user* reaches every process the user owns, including ones that left the group.
    pid = os.fork()
    if pid == 0:
        try:
            os.setuid(uid)
            for _ in range(200):
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    break
                if not _live_processes(uid):
                    break
                time.sleep(0.002)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _live_processes(uid: int) -> bool:
    """Whether a process of `uid` is still running (zombies waiting to be reaped do not count)."""
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/status") as f:
                fields = dict(line.split(":", 1) for line in f if line.startswith(("State:", "Uid:")))
        except OSError:
            continue
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            return True
    return False


def _launch(argv: list[str], workdir: Path, limits: SandboxLimits, result_fd: int | None = None,
            **kw) -> tuple[subprocess.Popen, int | None]:  # fmt: skip
    """Start `argv` in the sandbox; `result_fd` (if given) becomes the child's fd 3."""
    mode = resolve_isolation(limits)
    uid = _new_uid() if mode == "namespaces" else None
    workdir = workdir.resolve()
    _prepare(workdir, uid)
    setup = _child_setup(str(workdir), limits, uid)
    if result_fd is not None:
        inner = setup

        def setup() -> None:
            os.dup2(result_fd, 3)
            inner()

        # Popen closes unlisted descriptors after preexec_fn has run: keep 3 open as well as the pipe end.
        kw["pass_fds"] = tuple({result_fd, 3})
    proc = subprocess.Popen(argv, cwd=workdir, env=scrubbed_env(workdir), preexec_fn=setup, **kw)
    return proc, uid


# ---------------------------------------------------------------- fresh interpreter per block


def run_code(code: str, workdir: Path, limits: SandboxLimits = SandboxLimits()) -> ExecResult:
    """Run `code` (a <Code> body; a ```python fence is stripped) in a fresh interpreter with cwd=`workdir`."""
    source = strip_fence(code)
    start = time.monotonic()
    proc, uid = _launch([sys.executable, "-I", "-"], workdir, limits,
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        out, err = proc.communicate(source.encode("utf-8"), timeout=limits.timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_all(proc, uid)
        out, err = proc.communicate()
        timed_out = True
    finally:
        _kill_all(proc, uid)
    return _result(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), timed_out,
                   time.monotonic() - start, limits)  # fmt: skip


def _result(rc, stdout, stderr, timed_out, seconds, limits) -> ExecResult:
    if timed_out:
        text = (stdout + stderr).rstrip("\n")
        msg = f"TimeoutError: execution exceeded {limits.timeout_s:g} s and was stopped"
        return ExecResult(False, truncate(f"{text}\n{msg}" if text else msg, limits.max_output_chars), True, seconds)
    if rc != 0:
        text = (stdout + stderr).rstrip("\n")
        if rc is not None and rc < 0:
            text += f"\nKilled by signal {signal.Signals(-rc).name}"
        return ExecResult(False, truncate(text, limits.max_output_chars), False, seconds)
    return ExecResult(True, truncate(stdout.rstrip("\n"), limits.max_output_chars), False, seconds)


# ---------------------------------------------------------------- one persistent interpreter per trajectory

# Runs inside the sandbox: reads length-prefixed code blocks on fd 0, executes each in one namespace, sends a
# length-prefixed JSON result on fd 3. The block's own prints go to a buffer, not to the protocol channel.
_SERVER = r"""
import io, json, os, struct, sys, traceback, contextlib
chan_in, chan_out = os.fdopen(0, "rb", buffering=0), os.fdopen(3, "wb", buffering=0)
ns = {"__name__": "__main__"}
def read_exact(n):
    buf = b""
    while len(buf) < n:
        part = chan_in.read(n - len(buf))
        if not part:
            sys.exit(0)
        buf += part
    return buf
while True:
    size = struct.unpack("!I", read_exact(4))[0]
    code = read_exact(size).decode("utf-8")
    out = io.StringIO()
    ok = True
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            exec(compile(code, "<code>", "exec"), ns)
        except SystemExit:
            pass
        except BaseException as e:
            ok = False
            traceback.print_exception(type(e), e, e.__traceback__.tb_next)
    sys.stdout.flush()
    data = json.dumps({"ok": ok, "output": out.getvalue()}).encode()
    chan_out.write(struct.pack("!I", len(data)) + data)
"""


class PersistentInterpreter:
    """One sandboxed interpreter whose globals carry from block to block. A timeout or a crash restarts it
    (the state is lost, which the observation says)."""

    def __init__(self, workdir: Path, limits: SandboxLimits):
        self.workdir, self.limits = workdir, limits
        self.proc: subprocess.Popen | None = None
        self.uid: int | None = None

    def _start(self) -> None:
        r, w = os.pipe()
        self.proc, self.uid = _launch([sys.executable, "-I", "-c", _SERVER], self.workdir, self.limits, result_fd=w,
                                      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        os.close(w)
        self.result_fd = r

    def run(self, code: str) -> ExecResult:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        source = strip_fence(code).encode("utf-8")
        start = time.monotonic()
        try:
            self.proc.stdin.write(struct.pack("!I", len(source)) + source)
            self.proc.stdin.flush()
            header = self._read(4, start)
            payload = json.loads(self._read(struct.unpack("!I", header)[0], start))
        except TimeoutError:
            self.close()
            res = _result(None, "", "", True, time.monotonic() - start, self.limits)
            res.output += "\n(the interpreter was restarted: variables from earlier blocks are gone)"
            return res
        except (OSError, ValueError, struct.error):
            rc = self.proc.wait(5) if self.proc else None
            self.close()
            msg = "the interpreter died" + (f" (signal {signal.Signals(-rc).name})" if rc and rc < 0 else "")
            return ExecResult(False, f"{msg}; its state is lost", False, time.monotonic() - start)
        rc = 0 if payload["ok"] else 1
        return _result(rc, payload["output"], "", False, time.monotonic() - start, self.limits)

    def _read(self, n: int, start: float) -> bytes:
        buf = b""
        while len(buf) < n:
            left = self.limits.timeout_s - (time.monotonic() - start)
            if left <= 0 or not select.select([self.result_fd], [], [], left)[0]:
                raise TimeoutError
            part = os.read(self.result_fd, n - len(buf))
            if not part:
                raise OSError("interpreter closed its result channel")
            buf += part
        return buf

    def close(self) -> None:
        if self.proc is not None:
            _kill_all(self.proc, self.uid)
            self.proc.wait()
            for f in (self.proc.stdin,):
                try:
                    f.close()
                except OSError:
                    pass
            os.close(self.result_fd)
            self.proc = None


class Session:
    """What an episode executes through: a fresh interpreter per block, or one persistent interpreter."""

    def __init__(self, workdir: Path, limits: SandboxLimits):
        self.workdir, self.limits = workdir, limits
        self.persistent = PersistentInterpreter(workdir, limits) if limits.persistent else None

    def run(self, code: str) -> ExecResult:
        if self.persistent:
            return self.persistent.run(code)
        return run_code(code, self.workdir, self.limits)

    def close(self) -> None:
        if self.persistent:
            self.persistent.close()
        shutil.rmtree(scratch_dir(self.workdir), ignore_errors=True)


def execute_block(code: str, workdir: Path, limits: SandboxLimits = SandboxLimits(), session: Session | None = None):
    """Run a block and return (`<Execute>\\n…\\n</Execute>`, result)."""
    res = session.run(code) if session else run_code(code, workdir, limits)
    return f"<Execute>\n{res.observation}\n</Execute>", res



def describe_isolation(limits: SandboxLimits) -> str:
    """One line for a rule's log: how generated code is isolated on this machine."""
    mode = resolve_isolation(limits)
    if mode == "namespaces":
        return (f"sandbox: isolated (no network, read-only file system outside the workspace, own user id, "
                f"<= {limits.max_processes} processes, {limits.memory_mb} MB, {limits.timeout_s:g} s per block, "
                f"{'persistent interpreter' if limits.persistent else 'fresh interpreter per block'})")  # fmt: skip
    return (f"sandbox: WARNING: no namespace isolation on this machine (needs root and Linux namespaces): code runs "
            f"with resource limits ({limits.memory_mb} MB, {limits.timeout_s:g} s) and a scrubbed environment only, "
            f"and can reach the network and write outside its workspace")  # fmt: skip
