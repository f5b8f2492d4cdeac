"""The warm template inside the jail: every code block of one pipeline process is forked from it.

Started by `darecipe.jail` as `python -I -c <this file's text> <config json>`, as pid 1 of the jail that
bubblewrap built (or, with `isolation: none`, as a plain child process). It imports the preloaded modules once
(numpy, pandas, matplotlib…), then serves sessions over SOCK_SEQPACKET sockets:

- `open`: a private, size-limited tmpfs for one episode (workspace + scratch), the workspace copied in through a
  directory descriptor the parent sends;
- `run`: fork a block process from this pristine state (so no Python state carries from block to block, as with a
  fresh interpreter, without paying for start-up and imports), in its own pid, IPC and mount namespaces, with only
  its episode's tmpfs, a memory/pid cgroup or a memory watchdog, rlimits, and no privileges. The block's stdout,
  stderr and code travel through pipes the parent made; this process never sees code or output;
- `close` (or the socket closing): kill what runs, unmount the tmpfs.

Stdlib only: the pipeline's package is not visible inside the jail.
"""

import atexit
import ctypes
import gc
import json
import os
import random
import resource
import selectors
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
import traceback
import types

CFG = json.loads(sys.argv[1])
JAILED = CFG["jailed"]
PRIVILEGED = CFG["privileged"]  # real root: blocks switch to a per-episode uid; else a user namespace per block

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x08000000, 0x10000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_SLAVE, MS_SHARED = (
    1,
    2,
    4,
    8,
    4096,
    16384,
    1 << 19,
    1 << 20,
)
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 36, 38
SYS_CAPSET = {"x86_64": 126, "aarch64": 91, "ppc64le": 184, "s390x": 185}.get(os.uname().machine)
INNER_UID = 1000  # the uid blocks see in their user namespace (non-root, so exec grants no capabilities)
MAX_CODE = 16 << 20
WATCH_PERIOD_S = 0.02
SPARES = 2  # processes forked ahead of need, so a block pays neither the fork nor the cgroup move

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(src, target, fstype, flags, data=None) -> None:
    def enc(s):
        return s.encode() if isinstance(s, str) else s

    check(libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def send(sock: socket.socket, msg: dict, fds=()) -> None:
    try:
        socket.send_fds(sock, [json.dumps(msg).encode()], list(fds)) if fds else sock.send(json.dumps(msg).encode())
    except OSError:
        pass  # the parent went away; its socket's EOF ends the session


def write_file(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# ---------------------------------------------------------------- warm-up


# Run once in the template after the imports: the first call of many library paths imports submodules and
# fills caches; done here, no block pays for it. Nothing of it is user state.
WARM_UP = {
    "numpy": "import numpy as np\na = np.arange(100.0).reshape(10, 10)\nrepr(a @ a.T); np.linalg.inv(a + np.eye(10))",
    "pandas": (
        "import io\nimport pandas as pd\n"
        "df = pd.read_csv(io.StringIO('k,x,t\\na,1,2024-01-01\\nb,2.5,2024-02-01\\na,3,2024-03-01\\n'), parse_dates=['t'])\n"
        "str(df); str(df.describe()); str(df.groupby('k')['x'].agg(['mean', 'sum', 'count']))\n"
        "str(df.merge(df, on='k').sort_values('x_x').head()); df.info(buf=io.StringIO()); str(df['x'].value_counts())\n"
        "str(df.pivot_table(index='k', values='x')); df.to_csv(io.StringIO()); str(df.dtypes)"
    ),
    "matplotlib.pyplot": (
        "import io\nimport matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2], [3, 4], label='a')\n"
        "ax.bar(['x', 'y'], [1, 2]); ax.set_title('t'); ax.legend()\nfig.savefig(io.BytesIO(), format='png')\n"
        "plt.close('all')"
    ),
}


def warm() -> tuple[list[str], list[str]]:
    import contextlib
    import io

    loaded, missing = [], []
    for name in CFG["preload"]:
        try:
            __import__(name)
            if name == "matplotlib.pyplot":
                sys.modules["matplotlib"].use("Agg")
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exec(WARM_UP.get(name, ""), {"__name__": "__warm_up__"})
            loaded.append(name)
        except Exception as e:  # a module this environment lacks: blocks import it themselves (slower)
            missing.append(f"{name} ({type(e).__name__}: {e})")
    gc.collect()
    gc.freeze()  # the collector of a forked block leaves the template's objects alone (and their pages shared)
    return loaded, missing


# ---------------------------------------------------------------- episodes


class Episode:
    def __init__(self, n: int, sock: socket.socket):
        self.n, self.sock = n, sock
        self.root = os.path.join(CFG["episodes"], f"e{n}")
        self.uid = CFG["uid_base"] + n if PRIVILEGED else None
        self.ready = False
        self.block: Proc | None = None  # the fresh block running (or ending)
        self.persistent: Proc | None = None  # the persistent interpreter, if the session uses one
        self.pending: tuple[dict, list[int]] | None = None  # a run that waits for the previous block to end

    @property
    def owner(self) -> tuple[int, int]:
        return (self.uid, self.uid) if self.uid is not None else (os.getuid(), os.getgid())

    def open(self, disk_mb: int, src_fd: int | None) -> None:
        os.mkdir(self.root, 0o700)
        uid, gid = self.owner
        if JAILED:
            inodes = max(4096, disk_mb * 64)
            mount(
                "tmpfs",
                self.root,
                "tmpfs",
                MS_NOSUID | MS_NODEV,
                f"size={disk_mb}m,nr_inodes={inodes},mode=0700,uid={uid},gid={gid}",
            )
        for sub in ("workspace", "tmp"):
            os.mkdir(os.path.join(self.root, sub), 0o700)
            os.chown(os.path.join(self.root, sub), uid, gid)
        if src_fd is not None:
            try:
                copy_tree(src_fd, os.path.join(self.root, "workspace"), uid, gid)
            except OSError as e:
                if e.errno == 28:  # ENOSPC
                    raise OSError(e.errno, f"the workspace does not fit in sandbox.disk_mb ({disk_mb} MB)") from None
                raise
        self.ready = True

    def unmount(self) -> None:
        if not os.path.isdir(self.root):
            return
        if JAILED:
            libc.umount2(self.root.encode(), MNT_DETACH)  # the kernel frees the tmpfs, however deep its tree
            try:
                os.rmdir(self.root)
            except OSError:
                pass
        else:
            import subprocess

            # rm walks without recursion limits; what it cannot remove stays for the pool's cleanup
            subprocess.run(["rm", "-rf", "--one-file-system", self.root], stderr=subprocess.DEVNULL)


def copy_tree(src_fd: int, dest: str, uid: int, gid: int) -> None:
    """Copy the directory behind `src_fd` into `dest` without following symbolic links (they are copied as
    links) and without recursion (an explicit stack, so any depth works)."""
    stack = [(os.dup(src_fd), dest)]
    while stack:
        dfd, target = stack.pop()
        try:
            with os.scandir(dfd) as it:
                entries = list(it)
            for e in entries:
                st = os.stat(e.name, dir_fd=dfd, follow_symlinks=False)
                out = os.path.join(target, e.name)
                if stat.S_ISDIR(st.st_mode):
                    os.mkdir(out, 0o700)
                    os.chown(out, uid, gid)
                    stack.append((os.open(e.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd), out))
                elif stat.S_ISLNK(st.st_mode):
                    os.symlink(os.readlink(e.name, dir_fd=dfd), out)
                    os.lchown(out, uid, gid)
                elif stat.S_ISREG(st.st_mode):
                    copy_file(dfd, e.name, out, st, uid, gid)
        finally:
            os.close(dfd)


def copy_file(dfd: int, name: str, out: str, st: os.stat_result, uid: int, gid: int) -> None:
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd)
    try:
        dst = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, (st.st_mode & 0o777) | 0o600)
        try:
            while os.sendfile(dst, src, None, 1 << 24):
                pass
            os.fchown(dst, uid, gid)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(dst)
    finally:
        os.close(src)


# ---------------------------------------------------------------- inside a block process


class SetupError(Exception):
    pass


def drop_bounding_set() -> None:
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last + 1):
        check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")


def capset_zero() -> None:
    if SYS_CAPSET is None:
        raise SetupError(f"capset: unknown syscall number on {os.uname().machine}")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()
    check(libc.syscall(SYS_CAPSET, header, data), "capset")


def prepare(cgroups: dict) -> None:
    """What a spare does before it knows its episode (off the blocks' critical path): cgroups, namespaces."""
    for path in cgroups.values():
        write_file(os.path.join(path, "cgroup.procs"), "0")
    if not JAILED:
        os.setsid()
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        return
    check(libc.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare mount/ipc")  # SysV IPC dies with the block
    # Receive the episode tmpfs the template mounts later (a spare is forked before its episode exists),
    # send nothing back.
    mount(None, "/", None, MS_REC | MS_SLAVE)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # this block's pid namespace only


def mount_episode(job: dict) -> None:
    """The episode's tmpfs as /sandbox (and /dev/shm), every other episode and the cgroups hidden."""
    if not JAILED:
        return
    root = job["root"]
    mount(root, "/sandbox", None, MS_BIND | MS_REC)
    mount(os.path.join(root, "tmp"), "/dev/shm", None, MS_BIND)  # POSIX shared memory: in the episode's quota
    hidden = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    mount("tmpfs", CFG["episodes"], "tmpfs", hidden, "size=4k,nr_inodes=1,mode=0")
    if os.path.isdir("/cgroup"):
        mount("tmpfs", "/cgroup", "tmpfs", hidden, "size=4k,nr_inodes=1,mode=0")


def become_block(job: dict) -> None:
    """The runner's last steps before the code: its working directory, no privileges, its limits."""
    write_file("/proc/self/oom_score_adj", "1000")  # under memory pressure, the code goes first (not its init)
    workdir = "/sandbox/workspace" if JAILED else os.path.join(job["root"], "workspace")
    os.chdir(workdir)
    drop_privileges(job.get("uid"))
    set_limits(job["lim"])
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # its own /proc entries stay readable to it
    fresh_env(workdir)


def drop_privileges(uid: int | None) -> None:
    if not JAILED:
        return
    drop_bounding_set()
    if PRIVILEGED:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from root: every capability goes
    else:
        # A user namespace of its own: the process limit counts this block only, and the block holds no
        # capability over the jail's namespaces.
        check(libc.unshare(CLONE_NEWUSER), "unshare user")
        write_file("/proc/self/setgroups", "deny")
        write_file("/proc/self/uid_map", f"{INNER_UID} 0 1")
        write_file("/proc/self/gid_map", f"{INNER_UID} 0 1")
        drop_bounding_set()
        capset_zero()


def set_limits(lim: dict) -> None:
    vsz = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    mem = vsz + (lim["memory_mb"] << 20)  # the template's mappings are shared, not the block's own memory
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    fsize = lim["max_file_mb"] << 20
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    nofile = min(1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))  # the usual, not the template's
    if JAILED:  # after the privilege drop: a new user namespace records its creator's limit as its ceiling
        nproc = lim["max_processes"]
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def read_code(fd: int) -> str:
    chunks, size = [], 0
    while True:
        part = os.read(fd, 1 << 16)
        if not part:
            break
        size += len(part)
        if size > MAX_CODE:
            raise SetupError(f"code block larger than {MAX_CODE >> 20} MB")
        chunks.append(part)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def fresh_env(workdir: str) -> None:
    tmp = os.path.join(os.path.dirname(workdir), "tmp")
    os.environ.update(HOME=tmp, TMPDIR=tmp, MPLCONFIGDIR=os.path.join(tmp, "matplotlib"))
    tempfile.tempdir = None
    random.seed()  # forked children would otherwise all draw the template's random numbers
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()


def redirect(out_fd: int, err_fd: int, keep: tuple[int, ...]) -> None:
    """stdin from /dev/null, stdout and stderr to the given descriptors, every other descriptor closed."""
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    close_fds(keep)


def close_fds(keep: tuple[int, ...]) -> None:
    """Close every descriptor above 2 but `keep`."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def run_main(code: str, namespace: dict) -> int:
    """Execute `code` as `python -` would, in `namespace`; the traceback of an exception goes to stderr."""
    sys.argv = ["-"]
    try:
        exec(compile(code, "<stdin>", "exec"), namespace)
    except SystemExit as e:
        return exit_code(e)
    except BaseException as e:
        sys.stdout.flush()
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)
        return 1
    return 0


def new_main() -> dict:
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    return main.__dict__


def exit_code(e: SystemExit) -> int:
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code & 0xFF
    print(e.code, file=sys.stderr)
    return 1


def flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def report_setup_error(setup_w: int, e: BaseException) -> None:
    try:
        os.write(setup_w, f"{type(e).__name__}: {e}".encode()[:2000])
    finally:
        os._exit(125)


def receive_job(sock: socket.socket, maxfds: int = 3) -> tuple[dict, list[int]]:
    """The next message and its descriptors; the end of the socket ends this process."""
    try:
        raw, fds, _, _ = socket.recv_fds(sock, 1 << 16, maxfds)
    except OSError:
        raw, fds = b"", []
    if not raw:
        os._exit(0)
    return json.loads(raw), fds


def spare_child(chan: socket.socket, jobs: socket.socket, setup_w: int, cgroups: dict) -> None:
    """A process forked from the template ahead of need. It becomes pid 1 (init) of the block's namespaces and
    forks the runner at once, so that a block pays neither fork nor cgroup move. The runner gets its job from the
    template directly (`jobs`); this init gets the block's nonce and the session's socket (`chan`), and answers
    the parent itself as soon as the runner has said how it ended (code in the runner can only choose its own
    exit code, as any program can; it cannot signal or trace this process, nor reach the session's socket, so it
    speaks for no other block). When this process exits, every process of the block dies with it. A block that
    ends without saying (killed, failed set-up) is answered by the template. Never returns."""
    try:
        close_fds(keep=(chan.fileno(), jobs.fileno(), setup_w))  # other blocks' pipes and sockets stay there
        oom = os.open(os.path.join(cgroups["memory"], "memory.oom_control"), os.O_RDONLY) if "memory" in cgroups else -1
        prepare(cgroups)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
    except BaseException as e:
        report_setup_error(setup_w, e)
    if pid == 0:
        mine.close()
        chan.close()
        runner(jobs, theirs, setup_w)
    theirs.close()
    jobs.close()
    os.close(setup_w)
    task, fds = receive_job(chan, 1)
    if task["persistent"]:
        os.waitpid(pid, 0)  # the interpreter answers the template itself; this process only outlives it
        os._exit(0)
    supervise(pid, mine, chan, task["nonce"], socket.socket(fileno=fds[0]), oom)


def supervise(pid: int, mine: socket.socket, chan: socket.socket, nonce: str, session: socket.socket, oom: int) -> None:
    """Wait for the runner's exit code (sent just before it exits) or its end; answer; end the block."""
    pidfd = os.pidfd_open(pid)
    sel = selectors.DefaultSelector()
    sel.register(mine, selectors.EVENT_READ)
    sel.register(pidfd, selectors.EVENT_READ)
    code, ended = None, False
    while code is None and not ended:
        for key, _ in sel.select():
            if key.fileobj is not mine:
                ended = True  # without saying: the template answers, from its exit status and set-up report
                continue
            try:
                raw = mine.recv(256)
                code = int(json.loads(raw)["code"]) & 0xFF if raw else None
            except (OSError, ValueError, KeyError, TypeError):
                raw = b"?"  # not an exit code: ignored
            if not raw:
                sel.unregister(mine)
    if code is None:
        _, status = os.waitpid(pid, 0)
        ended = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"code": os.WEXITSTATUS(status)}
        try:
            chan.send(json.dumps({"ended": ended}).encode())
        except OSError:
            pass
    else:
        try:
            oom_kills = int(os.pread(oom, 4096, 0).decode().split("oom_kill ")[1].split()[0]) if oom >= 0 else 0
        except (OSError, IndexError, ValueError):
            oom_kills = 0
        answer = {"op": "run", "nonce": nonce, "status": "exit", "code": code, "oom": oom_kills > 0}
        for sock, msg in ((session, answer), (chan, {"answered": True, "code": code})):
            try:
                sock.send(json.dumps(msg).encode())
            except OSError:
                pass
    session.close()
    if JAILED:
        try:
            os.kill(-1, signal.SIGKILL)  # from pid 1: every other process of the namespace
        except ProcessLookupError:
            pass
        os._exit(0)
    os.killpg(0, signal.SIGKILL)  # isolation none: the block's process group, this process included


def runner(jobs: socket.socket, sock: socket.socket, setup_w: int) -> None:
    """Pid 2 of the block: gets its job from the template, enters the episode, drops every privilege and runs
    the code (or, persistent, serves the session's blocks on `jobs`)."""
    if not JAILED:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    job, fds = receive_job(jobs)
    try:
        mount_episode(job)
        become_block(job)
        null = os.open("/dev/null", os.O_WRONLY)
        if job["persistent"]:
            os.write(setup_w, b"ok")
            redirect(null, null, keep=(jobs.fileno(),))
            serve_persistent(jobs)
        code = read_code(fds[2])
        os.write(setup_w, b"ok")
        redirect(fds[0], fds[1], keep=(sock.fileno(), null))
    except BaseException as e:
        report_setup_error(setup_w, e)
    rc = run_main(code, new_main())
    # What the interpreter does at exit: wait for non-daemon threads, run atexit hooks, flush.
    try:
        threading._shutdown()
        atexit._run_exitfuncs()
    except BaseException:
        pass
    flush_streams()
    os.dup2(null, 1)  # the output pipes end here, whatever the processes left behind take to die
    os.dup2(null, 2)
    try:
        sock.send(json.dumps({"code": rc}).encode())
        # Wait to be killed by the init once it has answered: unmapping this process's memory takes milliseconds
        # that the answer need not wait for.
        sock.recv(1)
    finally:
        os._exit(rc)


def serve_persistent(chan: socket.socket) -> None:
    """One interpreter for a whole session: each block's pipes arrive on `chan`, {nonce, code} goes back.
    Code running here can write to `chan` too; the template takes only the first answer carrying the nonce of
    the block it waits for, so a forged answer speaks for its own block only and never shifts later ones."""
    namespace = new_main()
    while True:
        try:
            raw, fds, _, _ = socket.recv_fds(chan, 4096, 3)
            nonce = json.loads(raw)["nonce"]
            out_fd, err_fd, code_fd = fds
        except (OSError, ValueError, KeyError, TypeError):
            os._exit(0)
        code = read_code(code_fd)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        rc = run_main(code, namespace)
        flush_streams()
        null = os.open("/dev/null", os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.close(null)
        chan.send(json.dumps({"nonce": nonce, "code": rc}).encode())


# ---------------------------------------------------------------- the template's side


class Proc:
    """A process forked from the template: a spare, then a fresh block or a persistent interpreter."""

    def __init__(self, server: "Server"):
        self.server = server
        server.count += 1
        self.tag = f"p{server.count}"
        self.cgroups = server.make_cgroups(self.tag)
        self.chan, child_chan = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # with the block's init
        self.jobs, child_jobs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # with its runner
        setup_r, setup_w = os.pipe()
        self.ns = None
        if JAILED:
            check(libc.unshare(CLONE_NEWPID), "unshare pid")  # the next child is pid 1 of a new namespace
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(setup_r)
                    self.chan.close()
                    self.jobs.close()
                    spare_child(child_chan, child_jobs, setup_w, self.cgroups)
                finally:
                    os._exit(126)
            if JAILED:
                self.ns = os.stat("/proc/self/ns/pid_for_children").st_ino
        finally:
            if JAILED:
                check(libc.setns(server.own_pidns, CLONE_NEWPID), "setns pid")
            os.close(setup_w)
            child_chan.close()
            child_jobs.close()
        self.pid, self.setup_r = pid, setup_r
        os.set_blocking(setup_r, False)
        self.setup: str | None = None
        self.pidfd = os.pidfd_open(pid)
        self.chan.setblocking(False)
        self.jobs.setblocking(False)
        server.sel.register(self.pidfd, selectors.EVENT_READ, ("proc", self))
        server.sel.register(self.chan, selectors.EVENT_READ, ("chan", self))
        self.kind = "spare"  # spare | block | persistent
        self.ep: Episode | None = None
        self.lim: dict = {}
        self.nonce: str | None = None  # the block the template waits for
        self.deadline = float("inf")
        self.killed_for: str | None = None  # timeout | memory | closed
        self.answered = False
        self.reaped = False

    def assign(self, ep: Episode, lim: dict, persistent: bool, fds: list[int], nonce: str | None = None) -> None:
        """The runner gets the job (and a fresh block's pipes); the init gets the nonce and the session's
        socket, to answer the parent itself."""
        self.server.limit_cgroups(self.cgroups, lim)
        job = {"root": ep.root, "uid": ep.uid, "lim": lim, "persistent": persistent}
        socket.send_fds(self.jobs, [json.dumps(job).encode()], [] if persistent else fds)
        task = {"persistent": persistent, "nonce": nonce}
        socket.send_fds(self.chan, [json.dumps(task).encode()], [] if persistent else [ep.sock.fileno()])
        self.kind, self.ep, self.lim = ("persistent" if persistent else "block"), ep, lim
        if persistent:  # the interpreter answers on its job socket
            self.server.sel.register(self.jobs, selectors.EVENT_READ, ("jobs", self))

    def submit(self, nonce: str, fds: list[int], timeout_s: float) -> None:
        self.nonce, self.deadline, self.answered = nonce, time.monotonic() + timeout_s, False
        if self.kind == "persistent":
            try:
                socket.send_fds(self.jobs, [json.dumps({"nonce": nonce}).encode()], fds)
            except OSError:
                self.kill("lost")

    def kill(self, reason: str) -> None:
        if self.killed_for is None and not self.answered:
            self.killed_for = reason
        if not JAILED:
            try:
                os.killpg(self.pid, signal.SIGKILL)  # its process group (it called setsid)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.kill(self.pid, signal.SIGKILL)  # pid 1 of its namespace: everything in it goes too
        except ProcessLookupError:
            pass

    def reply(self, **fields) -> None:
        if self.answered or self.nonce is None or self.ep is None:
            return
        self.answered = True
        nonce, self.nonce, self.deadline = self.nonce, None, float("inf")
        send(self.ep.sock, {"op": "run", "nonce": nonce, **fields})

    def message(self, sock: socket.socket) -> None:
        """What the block's init said (it answered the parent itself, or the runner ended without saying how),
        or a persistent interpreter's answer — only the first carrying the nonce of the awaited block counts."""
        while sock.fileno() >= 0:
            try:
                raw = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                raw = b""
            if not raw:
                try:
                    self.server.sel.unregister(sock)
                except (KeyError, ValueError):
                    pass
                return
            try:
                msg = json.loads(raw)
                assert isinstance(msg, dict)
            except (ValueError, AssertionError):
                continue
            if self.kind == "block" and self.killed_for is None and not self.answered:
                if msg.get("answered"):
                    self.answered, self.nonce, self.deadline = True, None, float("inf")
                elif isinstance(msg.get("ended"), dict):
                    self.answer_end(msg["ended"])
            elif self.kind == "persistent" and self.killed_for is None and msg.get("nonce") == self.nonce is not None:
                try:
                    code = int(msg["code"]) & 0xFF
                except (KeyError, TypeError, ValueError):
                    continue
                self.reply(status="exit", code=code, oom=self.oom_killed())

    def answer_end(self, ended: dict) -> None:
        err = self.setup_error()
        if err is not None:
            self.reply(status="setup", detail=err)
        elif "signal" in ended:
            self.reply(status="signal", signal=int(ended["signal"]), oom=self.oom_killed())
        else:
            self.reply(status="exit", code=int(ended.get("code", 1)), oom=self.oom_killed())

    def setup_error(self) -> str | None:
        """What the block's processes said about their set-up (read once, when they are past it or gone)."""
        if self.setup is None:
            try:
                self.setup = os.read(self.setup_r, 4096).decode("utf-8", "replace")
            except BlockingIOError:
                return None
            except OSError as e:
                self.setup = str(e)
        if self.setup == "ok":
            return None
        return self.setup or "the process ended before it was set up"

    def done(self, status: int) -> None:
        """Reaped: answer if not answered yet, release everything."""
        self.reaped = True
        for sock in (self.chan, self.jobs):
            self.message(sock)  # what was said just before the exit may not have been read yet
        err = self.setup_error()
        oom = self.oom_killed()
        if self.killed_for in ("timeout", "memory"):
            self.reply(status=self.killed_for, persistent_lost=self.kind == "persistent")
        elif err is not None:
            self.reply(status="setup", detail=err)
            if self.kind == "spare":
                sys.stderr.write(f"jail: a spare process failed: {err}\n")
        elif self.kind == "persistent":
            self.reply(status="lost", signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None, oom=oom)
        elif os.WIFSIGNALED(status):
            self.reply(status="signal", signal=os.WTERMSIG(status), oom=oom)
        else:
            self.reply(status="exit", code=os.WEXITSTATUS(status), oom=oom)
        for key in (self.pidfd, self.chan, self.jobs):
            try:
                self.server.sel.unregister(key)
            except (KeyError, ValueError):
                pass
        os.close(self.pidfd)
        os.close(self.setup_r)
        self.chan.close()
        self.jobs.close()
        self.server.remove_cgroups(self.cgroups)

    def oom_killed(self) -> bool:
        path = self.cgroups.get("memory")
        if not path:
            return False
        try:
            with open(os.path.join(path, "memory.oom_control")) as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1]) > 0
        except OSError:
            pass
        return False


class Server:
    def __init__(self, ctl: socket.socket):
        self.ctl = ctl
        self.sel = selectors.DefaultSelector()
        self.sel.register(ctl, selectors.EVENT_READ, ("control", None))
        self.episodes: dict[int, Episode] = {}  # by socket fd
        self.count = 0
        self.own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY) if JAILED else -1
        if JAILED:
            mount(None, CFG["episodes"], None, MS_SHARED)  # episode tmpfs propagate to spares forked earlier
        self.cgroup_roots = {k: v for k, v in (CFG.get("cgroups") or {}).items() if v}
        self.spares: list[Proc] = []
        self.procs: dict[int, Proc] = {}  # by pid, until reaped

    # cgroups: one per process forked from the template, removed when it is reaped
    def make_cgroups(self, tag: str) -> dict:
        made = {}
        for ctrl, root in self.cgroup_roots.items():
            path = os.path.join(root, tag)
            os.mkdir(path)
            made[ctrl] = path
        return made

    def limit_cgroups(self, made: dict, lim: dict) -> None:
        for ctrl, path in made.items():
            if ctrl == "memory":
                limit = str(lim["memory_mb"] << 20)
                write_file(os.path.join(path, "memory.limit_in_bytes"), limit)
                if os.path.exists(os.path.join(path, "memory.memsw.limit_in_bytes")):
                    write_file(os.path.join(path, "memory.memsw.limit_in_bytes"), limit)
            elif ctrl == "pids":
                write_file(os.path.join(path, "pids.max"), str(lim["max_processes"] + 1))  # + the block's init

    def remove_cgroups(self, made: dict) -> None:
        for path in made.values():
            for _ in range(50):
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.002)  # the last task is still being released

    def spawn(self) -> Proc:
        p = Proc(self)
        self.procs[p.pid] = p
        return p

    def take_spare(self) -> Proc:
        while self.spares:
            p = self.spares.pop(0)
            if not p.reaped:
                return p
        return self.spawn()

    def running(self) -> list[Proc]:
        return [p for p in self.procs.values() if p.kind != "spare" and not p.reaped]

    def loop(self) -> None:
        next_watch = 0.0
        while True:
            now = time.monotonic()
            running = self.running()
            watch = JAILED and not self.cgroup_roots.get("memory") and any(p.nonce for p in running)
            wait = min([p.deadline for p in running] + [now + 1.0]) - now
            if watch:
                wait = min(wait, next_watch - now)
            for key, _ in self.sel.select(max(0.0, wait)):
                kind, obj = key.data
                if kind == "control":
                    if not self.attach():
                        return
                    continue
                try:
                    if kind == "session" and obj.sock.fileno() >= 0:  # not ended earlier in this batch
                        self.session_message(obj)
                    elif kind == "chan" and not obj.reaped:
                        obj.message(obj.chan)
                    elif kind == "jobs" and not obj.reaped:
                        obj.message(obj.jobs)
                except Exception:  # one session's trouble must not end the others: log it, carry on
                    traceback.print_exc()
            now = time.monotonic()
            for p in self.running():
                if now >= p.deadline:
                    p.deadline = float("inf")
                    p.kill("timeout")
            if watch and now >= next_watch:
                self.watch_memory()
                next_watch = now + WATCH_PERIOD_S
            self.reap()
            # Fork spares while no block runs (a fork of the template takes milliseconds of CPU a running block
            # would otherwise share), or at once when none is left.
            while len(self.spares) < SPARES and (not self.spares or not any(p.nonce for p in self.running())):
                self.spares.append(self.spawn())

    def attach(self) -> bool:
        try:
            raw, fds, _, _ = socket.recv_fds(self.ctl, 4096, 1)
        except OSError:
            raw, fds = b"", []
        if not raw:
            for ep in list(self.episodes.values()):
                self.end_session(ep)
            for p in list(self.procs.values()):
                p.kill("closed")
            return False
        for fd in fds:
            sock = socket.socket(fileno=fd)
            sock.setblocking(False)
            self.count += 1
            ep = Episode(self.count, sock)
            self.episodes[sock.fileno()] = ep
            self.sel.register(sock, selectors.EVENT_READ, ("session", ep))
        return True

    def session_message(self, ep: Episode) -> None:
        msg: dict = {}
        try:
            raw, fds, _, _ = socket.recv_fds(ep.sock, 1 << 16, 3)
        except BlockingIOError:
            return
        except OSError:
            raw, fds = b"", []
        if not raw:
            self.end_session(ep)
            return
        try:
            msg = json.loads(raw)
            if msg["op"] == "open":
                self.open_episode(ep, msg, fds)
            elif msg["op"] == "run":
                self.run_block(ep, msg, fds)
            elif msg["op"] == "close":
                self.end_session(ep)
        except Exception as e:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            nonce = msg.get("nonce") if isinstance(msg, dict) else None
            send(ep.sock, {"op": "error", "nonce": nonce, "status": "error", "detail": f"{type(e).__name__}: {e}"})

    def open_episode(self, ep: Episode, msg: dict, fds: list[int]) -> None:
        try:
            ep.open(int(msg["disk_mb"]), fds[0] if fds else None)
            send(ep.sock, {"op": "open", "ok": True})
        except OSError as e:
            where = f": {e.filename}" if e.filename else ""
            send(ep.sock, {"op": "open", "ok": False, "error": f"{e.strerror or e}{where}"})
        except Exception as e:
            send(ep.sock, {"op": "open", "ok": False, "error": f"{type(e).__name__}: {e}"})
        finally:
            for fd in fds:
                os.close(fd)

    def run_block(self, ep: Episode, msg: dict, fds: list[int]) -> None:
        if len(fds) != 3 or not ep.ready:
            raise RuntimeError("run needs an open episode and three pipes")
        if ep.block is not None and ep.pending is None:
            # The parent sends a block only once the previous one answered: that one's processes are being
            # torn down (and its init's word to the template may still be on its way). Start when it is gone.
            ep.pending = (msg, fds)
            return
        if ep.block is not None or (ep.persistent is not None and ep.persistent.nonce is not None):
            raise RuntimeError("a block of this session is still running")
        lim = {k: msg[k] for k in ("timeout_s", "memory_mb", "max_processes", "max_file_mb")}
        try:
            if msg.get("persistent"):
                if ep.persistent is None:
                    p = self.take_spare()
                    p.assign(ep, lim, True, [])
                    ep.persistent = p
                ep.persistent.submit(str(msg["nonce"]), fds, lim["timeout_s"])
            else:
                p = self.take_spare()
                p.assign(ep, lim, False, fds, str(msg["nonce"]))
                ep.block = p
                p.submit(str(msg["nonce"]), [], lim["timeout_s"])
        finally:
            for fd in fds:
                os.close(fd)

    def end_session(self, ep: Episode) -> None:
        if ep.pending is not None:
            for fd in ep.pending[1]:
                os.close(fd)
            ep.pending = None
        for p in (ep.block, ep.persistent):
            if p is not None and not p.reaped:
                p.kill("closed")
                _, status = os.waitpid(p.pid, 0)
                self.procs.pop(p.pid, None)
                p.done(status)
        ep.block = ep.persistent = None
        ep.unmount()
        self.sel.unregister(ep.sock)
        self.episodes.pop(ep.sock.fileno(), None)
        ep.sock.close()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            p = self.procs.pop(pid, None)
            if p is None:
                continue
            p.done(status)
            ep = p.ep
            if ep is not None and ep.block is p:
                ep.block = None
                if ep.pending is not None and ep.sock.fileno() in self.episodes:
                    msg, fds = ep.pending
                    ep.pending = None
                    try:
                        self.run_block(ep, msg, fds)
                    except Exception as e:
                        send(
                            ep.sock,
                            {
                                "op": "error",
                                "nonce": msg.get("nonce"),
                                "status": "error",
                                "detail": f"{type(e).__name__}: {e}",
                            },
                        )
            if ep is not None and ep.persistent is p:
                ep.persistent = None

    def watch_memory(self) -> None:
        """Without a memory cgroup: the private memory of every process of each block's pid namespace, summed;
        over the limit, the block is killed. Checked every WATCH_PERIOD_S."""
        watched = {p.ns: p for p in self.running() if p.ns is not None and p.nonce is not None}
        used = dict.fromkeys(watched, 0)
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                ns = os.stat(f"/proc/{name}/ns/pid").st_ino
                if ns not in used:
                    continue
                with open(f"/proc/{name}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith(("Private_Clean:", "Private_Dirty:", "Swap:")):
                            used[ns] += int(line.split()[1]) << 10
            except (OSError, ValueError, IndexError):
                continue
        for ns, p in watched.items():
            if used[ns] > p.lim["memory_mb"] << 20:
                p.kill("memory")


def main() -> None:
    if not JAILED:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != CFG["parent_pid"]:
            os._exit(1)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # blocks of the same uid can neither trace it nor read its memory
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 1 << 20)), hard))  # a socket per session
    ctl = socket.socket(fileno=CFG["control_fd"])
    loaded, missing = warm()
    vm = {k: v for k, v in (line.split(":", 1) for line in open("/proc/self/status")) if k in ("VmRSS", "VmSize")}
    server = Server(ctl)
    while len(server.spares) < SPARES:
        server.spares.append(server.spawn())
    send(
        ctl,
        {
            "op": "ready",
            "pid": os.getpid(),
            "preloaded": loaded,
            "missing": missing,
            "rss_kb": int(vm["VmRSS"].split()[0]),
            "python": sys.version.split()[0],
        },
    )
    server.loop()


if __name__ == "__main__":
    main()
