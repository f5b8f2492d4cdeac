"""The host side of the jail: bubblewrap's command line, cgroups, the warm template process, and the protocol a
session speaks with it.

One template per pipeline process and setting (`Pool`), started by bubblewrap as pid 1 of a jail that holds only
a read-only Python runtime: no network, no host files, own pid/IPC/UTS namespaces. Blocks are forked from it
(see `jail_server.py`), each into namespaces of its own, so an idle episode costs a mount point, not a process.
"""

from __future__ import annotations

import atexit
import codecs
import json
import os
import queue
import resource
import secrets
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .io import InputError

SERVER_SOURCE = Path(__file__).with_name("jail_server.py")
PYTHON = os.path.abspath(sys.executable)  # without "..": every directory on the way must exist in the jail
READY_TIMEOUT_S = 600.0  # imports of the preloaded modules on a loaded node
BACKSTOP_S = 15.0  # the template enforces each block's timeout; the parent waits this much longer, then gives up
OPEN_TIMEOUT_S = 600.0  # copying a large workspace in
UID_BASE = 200_000  # per-episode uids when the jail runs as root (each pool draws its own range)
ENABLE_HINT = (
    "bubblewrap (`bwrap`: apt-get install bubblewrap / dnf install bubblewrap) and either root or unprivileged "
    "user namespaces (sysctl user.max_user_namespaces > 0, and kernel.unprivileged_userns_clone=1 where that "
    "exists); to run generated code without any isolation on purpose, set sandbox.isolation: none"
)


class SandboxUnavailable(InputError):
    """The jail cannot be built on this machine (the rule stops with this one message)."""


class PoolLost(Exception):
    """The template process died or stopped answering."""


@dataclass
class PoolInfo:
    jailed: bool
    mode: str  # root | user namespaces | none
    memory: str  # cgroup | watchdog | rlimit
    pids: str  # cgroup | rlimit | none
    preloaded: list[str]
    missing: list[str]
    rss_mb: float
    start_s: float
    bwrap: str = ""


# ---------------------------------------------------------------- a thread that outlives every caller

_launcher: queue.Queue | None = None  # the launcher thread's requests
_launcher_lock = threading.Lock()


def _launch_loop(requests: queue.Queue) -> None:
    while True:
        fn, box = requests.get()
        try:
            box.put((True, fn()))
        except BaseException as e:
            box.put((False, e))


def launch(fn):
    """Run `fn` (which starts a process) in one long-lived thread. The kernel sends a child its parent-death
    signal when the *thread* that forked it ends; bubblewrap's --die-with-parent and the template's own
    PR_SET_PDEATHSIG must therefore hang on a thread that lives as long as the process."""
    global _launcher
    with _launcher_lock:
        if _launcher is None:
            _launcher = queue.Queue()
            threading.Thread(target=_launch_loop, args=(_launcher,), name="darecipe-jail-launcher", daemon=True).start()
    box: queue.Queue = queue.Queue(maxsize=1)
    _launcher.put((fn, box))
    ok, value = box.get()
    if not ok:
        raise value
    return value


# ---------------------------------------------------------------- what the jail shows and needs


def runtime_dirs() -> list[str]:
    """The Python runtime generated code needs, bound read-only: the environment (venv or conda) and the base
    installation it points to. Nothing else of the host: not the repository, not results/, not home folders."""
    dirs = []
    for p in (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, os.path.dirname(PYTHON)):
        p = os.path.realpath(p)
        if p.startswith("/usr/") or p == "/usr" or not os.path.isdir(p):
            continue
        dirs.append(p)
    unique = []
    for p in sorted(set(dirs), key=len):
        if not any(p.startswith(u.rstrip("/") + "/") for u in unique):
            unique.append(p)
    prefix = os.path.abspath(sys.prefix)
    if os.path.realpath(prefix) != prefix and prefix not in unique:
        unique.append(prefix)  # the interpreter is run by its own (unresolved) path
    return unique


def jail_env(tmp: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("LANG", "LC_ALL", "TZ") if k in os.environ}
    env.update(
        PATH=f"{os.path.dirname(PYTHON)}:/usr/local/bin:/usr/bin:/bin",
        HOME=tmp,
        TMPDIR=tmp,
        MPLBACKEND="Agg",
        MPLCONFIGDIR=f"{tmp}/matplotlib",
        PYTHONIOENCODING="utf-8",
        PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


def bwrap_argv(bwrap: str, root: bool, cgroups: dict[str, Path], tail: list[str]) -> list[str]:
    a = [
        bwrap,
        "--die-with-parent",
        "--new-session",
        "--as-pid-1",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
    ]
    if not root:
        # The template holds every capability of its own user namespace (to mount episode tmpfs and create
        # each block's namespaces); blocks drop them all.
        a += ["--unshare-user", "--uid", "0", "--gid", "0", "--cap-add", "ALL"]
    a += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        p = f"/{name}"
        if os.path.islink(p):
            a += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            a += ["--ro-bind", p, p]
    for f in ("/etc/ld.so.cache", "/etc/localtime", "/etc/fonts"):
        a += ["--ro-bind-try", f, f]
    runtime = runtime_dirs()
    # A runtime under /tmp (a venv in a checkout there) is bound inside a read-only empty /tmp; blocks then write
    # their temporary files under $TMPDIR (the episode's private /sandbox/tmp), not by the literal path /tmp.
    tmp_holds_runtime = any(d == "/tmp" or d.startswith("/tmp/") for d in runtime)
    if tmp_holds_runtime:
        a += ["--tmpfs", "/tmp"]
    made = set()
    for d in runtime:
        for parent in list(Path(d).parents)[-2::-1]:  # made explicitly: 0755 (implicit ones are 0700, e.g. /root)
            if parent not in made:
                made.add(parent)
                a += ["--dir", str(parent)]
        a += ["--ro-bind", d, d]
    a += ["--proc", "/proc", "--dev", "/dev"]
    # Written by the template only (its warm-up; episode mount points); blocks see their episode's tmpfs there.
    a += ["--tmpfs", "/sandbox", "--dir", "/sandbox/workspace", "--dir", "/sandbox/tmp", "--tmpfs", "/episodes"]
    for ctrl, path in cgroups.items():
        a += ["--bind", str(path), f"/cgroup/{ctrl}"]
    a += ["--remount-ro", "/tmp"] if tmp_holds_runtime else ["--symlink", "/sandbox/tmp", "/tmp"]
    a += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/"]
    return a + ["--"] + tail


# ---------------------------------------------------------------- cgroups (v1 hierarchies this process may write)


def _own_cgroups() -> dict[str, Path]:
    own, mounts = {}, {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(","):
                own[c] = path
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fstype, _, opts = right.split()[:3]
            if fstype != "cgroup":
                continue
            mroot, mpoint = left.split()[3:5]
            for c in opts.split(","):
                if c in ("memory", "pids"):
                    mounts[c] = (mpoint, mroot)
    dirs = {}
    for c, (mpoint, mroot) in mounts.items():
        if c in own and own[c].startswith(mroot):
            dirs[c] = Path(mpoint) / own[c][len(mroot) :].lstrip("/")
    return dirs


def _remove_cgroup_tree(base: Path) -> None:
    for sub in sorted(base.glob("*/"), reverse=True):
        try:
            sub.rmdir()
        except OSError:
            pass
    try:
        base.rmdir()
    except OSError:
        pass


def make_cgroups() -> dict[str, Path]:
    """A fresh `darecipe-<pid>-<hex>` directory under this process's memory and pids cgroups (v1), where it may
    create them; blocks get one child each. Directories of pools whose process is gone are removed."""
    made = {}
    for ctrl, own in _own_cgroups().items():
        probe = "memory.limit_in_bytes" if ctrl == "memory" else "pids.max"
        for stale in own.glob("darecipe-*-*"):
            pid = stale.name.split("-")[1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                _remove_cgroup_tree(stale)
        base = own / f"darecipe-{os.getpid()}-{secrets.token_hex(3)}"
        try:
            base.mkdir()
        except OSError:
            continue
        if os.access(base / probe, os.W_OK):
            made[ctrl] = base
        else:
            _remove_cgroup_tree(base)
    return made


# ---------------------------------------------------------------- the pool (one warm template)


def bwrap_version(bwrap: str) -> str:
    try:
        return subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


class Pool:
    """One warm template and the sessions attached to it."""

    def __init__(self, jailed: bool, preload: tuple[str, ...], use_cgroups: bool = True):
        self.jailed, self.preload, self.use_cgroups = jailed, preload, use_cgroups
        self.proc: subprocess.Popen | None = None
        self.ctl: socket.socket | None = None
        self.cgroups: dict[str, Path] = {}
        self.scratch: str | None = None
        self.log_fd = -1
        self.lock = threading.Lock()
        self.info: PoolInfo | None = None
        self.owner = os.getpid()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.owner == os.getpid()

    def start(self) -> PoolInfo:
        t0 = time.monotonic()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < min(hard, 65536):  # a socket per open session: an evaluation holds hundreds
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
        root = os.geteuid() == 0
        bwrap = ""
        if self.jailed:
            bwrap = shutil.which("bwrap") or ""
            if not bwrap:
                raise SandboxUnavailable(f"sandbox: no jail: `bwrap` is not installed; needs {ENABLE_HINT}")
        self.cgroups = make_cgroups() if self.use_cgroups else {}
        if self.jailed:
            episodes = "/episodes"
            cg_inside = {c: f"/cgroup/{c}" for c in self.cgroups}
        else:
            _remove_stale_scratch()
            self.scratch = tempfile.mkdtemp(prefix=f"darecipe-sandbox-{os.getpid()}-")
            episodes = os.path.join(self.scratch, "episodes")
            os.mkdir(episodes)
            os.makedirs(os.path.join(self.scratch, "warm", "tmp"))
            cg_inside = {c: str(p) for c, p in self.cgroups.items()}
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cfg = {
            "control_fd": theirs.fileno(),
            "jailed": self.jailed,
            "privileged": self.jailed and root,
            "preload": list(self.preload),
            "cgroups": cg_inside,
            "episodes": episodes,
            "parent_pid": os.getpid(),
            "uid_base": UID_BASE + secrets.randbelow(1_000_000),
        }
        tail = [PYTHON, "-I", "-c", SERVER_SOURCE.read_text(), json.dumps(cfg)]
        if self.jailed:  # bubblewrap passes its environment on: exactly the jail's, no secrets
            argv, env = bwrap_argv(bwrap, root, self.cgroups, tail), jail_env("/sandbox/tmp")
        else:
            argv, env = tail, jail_env(os.path.join(self.scratch, "warm", "tmp"))
        self.log_fd = os.memfd_create("darecipe-jail-log")

        def popen() -> subprocess.Popen:
            return subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self.log_fd,
                pass_fds=(theirs.fileno(),),
            )

        try:
            self.proc = launch(popen)
        except OSError as e:
            self._cleanup()
            raise SandboxUnavailable(f"sandbox: no jail: cannot start {argv[0]}: {e}; needs {ENABLE_HINT}") from None
        finally:
            theirs.close()
        self.ctl = ours
        ours.settimeout(READY_TIMEOUT_S)
        try:
            raw = ours.recv(1 << 16)
        except OSError:
            raw = b""
        if not raw:
            log = self.log_tail()
            self.close()
            what = "bubblewrap could not build the jail" if self.jailed else "the sandbox process did not start"
            raise SandboxUnavailable(f"sandbox: no jail: {what}: {log or 'no message'}; needs {ENABLE_HINT}")
        ours.settimeout(None)
        ready = json.loads(raw)
        mode = "none" if not self.jailed else ("root" if root else "user namespaces")
        memory = "cgroup" if "memory" in self.cgroups else ("watchdog" if self.jailed else "rlimit")
        pids = "cgroup" if "pids" in self.cgroups else ("rlimit" if self.jailed else "none")
        self.info = PoolInfo(
            self.jailed,
            mode,
            memory,
            pids,
            ready["preloaded"],
            ready["missing"],
            round(ready["rss_kb"] / 1024, 1),
            round(time.monotonic() - t0, 3),
            bwrap_version(bwrap) if bwrap else "",
        )
        return self.info

    def log_tail(self) -> str:
        try:
            size = os.fstat(self.log_fd).st_size
            text = os.pread(self.log_fd, 4000, max(0, size - 4000)).decode("utf-8", "replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.strip().splitlines()[-12:])

    def attach(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with self.lock:
                socket.send_fds(self.ctl, [b'{"op": "attach"}'], [theirs.fileno()])
        except OSError as e:
            ours.close()
            raise PoolLost(f"the sandbox process is gone ({e})") from None
        finally:
            theirs.close()
        return ours

    def close(self) -> None:
        if self.owner != os.getpid():
            return
        if self.ctl is not None:
            self.ctl.close()
            self.ctl = None
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        self._cleanup()

    def _cleanup(self) -> None:
        for base in self.cgroups.values():
            _remove_cgroup_tree(base)
        self.cgroups = {}
        if self.scratch:
            subprocess.run(["rm", "-rf", "--one-file-system", self.scratch], stderr=subprocess.DEVNULL)
            self.scratch = None
        if self.log_fd >= 0:
            os.close(self.log_fd)
            self.log_fd = -1


def _remove_stale_scratch() -> None:
    """Episode folders of `isolation: none` pools whose process was killed."""
    for p in Path(tempfile.gettempdir()).glob("darecipe-sandbox-*-*"):
        pid = p.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["rm", "-rf", "--one-file-system", str(p)], stderr=subprocess.DEVNULL)


_pools: dict[tuple, Pool] = {}
_pools_lock = threading.Lock()


def get_pool(jailed: bool, preload: tuple[str, ...]) -> Pool:
    """This process's pool for a setting, started (or restarted) on demand."""
    key = (os.getpid(), jailed, preload)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None or not pool.alive:
            if pool is not None:
                pool.close()
            pool = Pool(jailed, preload)
            _pools[key] = pool
            try:
                pool.start()
            except BaseException:
                _pools.pop(key, None)
                raise
        return pool


def _after_fork_in_child() -> None:
    """A forked child (e.g. an LLM client process) starts afresh: no launcher thread, its own pools, locks that no
    other thread of the parent may hold. The parent's pools stay the parent's."""
    global _launcher, _launcher_lock, _pools, _pools_lock
    _launcher, _launcher_lock = None, threading.Lock()
    _pools, _pools_lock = {}, threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def close_pools() -> None:
    with _pools_lock:
        for key, pool in list(_pools.items()):
            if key[0] == os.getpid():
                pool.close()
                _pools.pop(key, None)


# ---------------------------------------------------------------- one session's protocol


def _request(sock: socket.socket, msg: dict, fds=(), timeout: float = OPEN_TIMEOUT_S) -> dict:
    try:
        socket.send_fds(sock, [json.dumps(msg).encode()], list(fds)) if fds else sock.send(json.dumps(msg).encode())
        sock.settimeout(timeout)
        raw = sock.recv(1 << 16)
    except (TimeoutError, OSError) as e:
        raise PoolLost(f"the sandbox process did not answer ({e})") from None
    finally:
        sock.settimeout(None)
    if not raw:
        raise PoolLost("the sandbox process is gone")
    return json.loads(raw)


def open_episode(sock: socket.socket, workdir: Path, disk_mb: int) -> str | None:
    """Give the session its private tmpfs with a copy of `workdir`; the reason if that failed."""
    try:
        fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        return f"{workdir}: {e.strerror}"
    try:
        reply = _request(sock, {"op": "open", "disk_mb": disk_mb}, [fd])
    finally:
        os.close(fd)
    return None if reply.get("ok") else str(reply.get("error") or reply.get("detail"))


TAIL_SLACK = 4096  # characters kept beyond the tail an observation shows, for trailing newlines it strips


class Capture:
    """One output stream, decoded as it arrives; keeps the first characters an observation can show, the last
    ones, and the count. However much a block prints, the parent holds about `limit` characters per stream."""

    def __init__(self, limit: int):
        self.head_keep = limit * 2 // 3
        self.tail_keep = limit - self.head_keep + TAIL_SLACK
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.head = ""
        self.tail = ""
        self.total = 0

    def feed(self, data: bytes, final: bool = False) -> None:
        text = self.decoder.decode(data, final)
        self.total += len(text)
        if len(self.head) < self.head_keep:
            self.head += text[: self.head_keep - len(self.head)]
        self.tail = (self.tail + text[-self.tail_keep :])[-self.tail_keep :]

    @property
    def complete(self) -> bool:
        """Whether head + tail still hold every character."""
        return self.total <= self.tail_keep

    def text(self) -> str:
        return self.tail


@dataclass
class Outcome:
    status: str  # exit | signal | timeout | memory | lost | setup | error
    code: int | None = None
    signal: int | None = None
    oom: bool = False
    detail: str = ""
    persistent_lost: bool = False
    streams: list[Capture] = field(default_factory=list)
    seconds: float = 0.0


def run_block(sock: socket.socket, code: str, lim: dict, limit: int, persistent: bool) -> Outcome:
    """Send one block and collect its output (streamed, capped) and its end, as the template reports it."""
    start = time.monotonic()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    code_r, code_w = os.pipe()
    nonce = secrets.token_hex(8)
    try:
        socket.send_fds(
            sock,
            [json.dumps({"op": "run", "nonce": nonce, "persistent": persistent, **lim}).encode()],
            [out_w, err_w, code_r],
        )
    except OSError as e:
        for fd in (out_r, out_w, err_r, err_w, code_r, code_w):
            os.close(fd)
        raise PoolLost(f"the sandbox process is gone ({e})") from None
    for fd in (out_w, err_w, code_r):
        os.close(fd)
    data, pos = code.encode("utf-8"), 0
    streams = {out_r: Capture(limit), err_r: Capture(limit)}
    sel = selectors.DefaultSelector()
    for fd in (out_r, err_r):
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ, "out")
    os.set_blocking(code_w, False)
    sel.register(code_w, selectors.EVENT_WRITE, "code")
    sel.register(sock, selectors.EVENT_READ, "sock")
    deadline = start + lim["timeout_s"] + BACKSTOP_S
    reply: dict | None = None
    drain_until = None
    try:
        while True:
            readers = [k for k in sel.get_map().values() if k.data == "out"]
            if reply is not None and (not readers or time.monotonic() >= drain_until):
                break
            now = time.monotonic()
            wait = (drain_until if reply is not None else deadline) - now
            if reply is None and wait <= 0:
                raise PoolLost(f"no answer {lim['timeout_s'] + BACKSTOP_S:g} s after the block started")
            for key, _ in sel.select(max(0.0, wait)):
                if key.data == "code":
                    try:
                        pos += os.write(code_w, data[pos : pos + (1 << 16)])
                    except (BrokenPipeError, BlockingIOError) as e:
                        pos = len(data) if isinstance(e, BrokenPipeError) else pos
                    if pos >= len(data):
                        sel.unregister(code_w)
                        os.close(code_w)
                        code_w = -1
                elif key.data == "out":
                    try:
                        chunk = os.read(key.fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    if chunk:
                        streams[key.fd].feed(chunk)
                    else:
                        sel.unregister(key.fd)
                else:
                    try:
                        raw = sock.recv(1 << 16)
                    except BlockingIOError:
                        continue
                    except OSError:
                        raw = b""
                    if not raw:
                        raise PoolLost("the sandbox process is gone")
                    try:
                        msg = json.loads(raw)
                    except ValueError:
                        continue
                    if msg.get("nonce") != nonce:
                        continue  # an answer to an earlier block this session gave up on
                    reply = msg
                    sel.unregister(sock)
                    # A fresh block's processes are all gone now, so its pipes end at once; a persistent
                    # interpreter may hold copies of them, so take what is there and stop.
                    drain_until = time.monotonic() + (0.05 if persistent else 2.0)
    finally:
        sel.close()
        for fd in (out_r, err_r, code_w):
            if fd >= 0:
                os.close(fd)
    for s in streams.values():
        s.feed(b"", final=True)
    return Outcome(
        reply.get("status", "error"),
        reply.get("code"),
        reply.get("signal"),
        bool(reply.get("oom")),
        str(reply.get("detail") or ""),
        bool(reply.get("persistent_lost")),
        [streams[out_r], streams[err_r]],
        time.monotonic() - start,
    )


def render(streams: list[Capture], limit: int, suffix: str = "") -> str:
    """The streams concatenated, trailing newlines stripped, `suffix` on a line of its own, cut in the middle to
    `limit` characters (see `truncate`) — built from the kept heads and tails as if the whole text had been kept."""
    if all(s.complete for s in streams):
        text = "".join(s.text() for s in streams).rstrip("\n")
        return truncate(f"{text}\n{suffix}" if text and suffix else text or suffix, limit)
    head = ""
    for s in streams:
        head += s.text() if s.complete else s.head
        if not s.complete:
            break
    tail = ""
    for s in reversed(streams):
        tail = (s.text() if s.complete else s.tail) + tail
        if not s.complete:
            break
    stripped = tail.rstrip("\n")
    if suffix:
        stripped += "\n" + suffix
    total = sum(s.total for s in streams) - len(tail) + len(stripped)
    h = limit * 2 // 3
    return f"{head[:h]}\n…[{total - limit} characters truncated]…\n{stripped[-(limit - h) :]}"


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    return f"{text[:head]}\n…[{len(text) - limit} characters truncated]…\n{text[-tail:]}"


def describe(info: PoolInfo, limits) -> str:
    what = (
        f"{limits.timeout_s:g} s, {limits.memory_mb} MB for all its processes ({info.memory}), "
        f"<= {limits.max_processes} processes ({info.pids}), {limits.disk_mb} MB disk"
    )
    state = "one persistent interpreter per trajectory" if limits.persistent else "fresh state per block"
    preload = (", ".join(info.preloaded) or "nothing") + " imported"
    if info.missing:
        preload += f" (could not import {', '.join(info.missing)})"
    if not info.jailed:
        return (
            f"sandbox: WARNING: isolation: none — generated code runs unjailed as this user: it can read and "
            f"write every file this user can, reach the network, and see other processes; limits per block: "
            f"{what}; {state} (forked from a template with {preload})"
        )
    return (
        f"sandbox: jail ({info.bwrap or 'bubblewrap'}, {info.mode}): code sees its workspace copy, a private "
        f"/tmp and a read-only Python runtime, nothing else of the host; no network; own pid/IPC/mount "
        f"namespaces; per block: {what}; {state} (forked from a template with {preload}, "
        f"{info.rss_mb:g} MB, started in {info.start_s:.2f} s)"
    )
