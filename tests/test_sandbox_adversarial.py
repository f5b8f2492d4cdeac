"""Acceptance (issue 15): hostile code, run through the entry points the agent loop, stage-3 rollouts and
evaluation use, ends as an [Error] observation within its limits; it sees nothing of the host, of the pipeline or
of other rollouts, and nothing of it outlives its block, its session or the pipeline process.

The jail must be on: where it cannot be built these tests fail and say why (CI installs bubblewrap)."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import BIN, REPO

from darecipe.jail import Pool, SandboxUnavailable, get_pool, runtime_dirs
from darecipe.sandbox import SandboxError, SandboxLimits, Session, describe_isolation, run_code

LIMITS = SandboxLimits(timeout_s=5, memory_mb=512, max_processes=32, disk_mb=256)


@pytest.fixture(scope="module")
def jail():
    try:
        pool = get_pool(True, LIMITS.preload)
    except SandboxUnavailable as e:
        pytest.fail(f"the jail is not available, so hostile code would run unjailed: {e}")
    assert pool.info.jailed and pool.info.mode in ("root", "user namespaces")
    return pool


@pytest.fixture
def ws(tmp_path):
    w = tmp_path / "ws"
    w.mkdir()
    (w / "data.csv").write_text("a,b\n1,2\n3,4\n")
    return w


@contextmanager
def session(workdir, limits=LIMITS, pool=None):
    s = Session(workdir, limits, pool)
    try:
        yield s
    finally:
        s.close()


def check_error(res, within_s=LIMITS.timeout_s + 5):
    assert not res.ok and res.observation.startswith("[Error]:\n"), res
    assert res.seconds < within_s, res


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (walking parent links in /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d.name))
    found, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.add(c)
            todo.append(c)
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for p in pids:
        try:
            if (Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z":
                out.add(p)
        except OSError:
            pass
    return out


def peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


# ---------------------------------------------------------------- the jail is really on


def test_the_jail_is_on_and_the_log_line_says_so(jail, ws):
    assert describe_isolation(LIMITS).startswith(f"sandbox: jail ({jail.info.bwrap or 'bubblewrap'}, ")
    res = run_code("import os\nprint(sorted(os.listdir('/')), os.getcwd(), os.getuid())", ws, LIMITS)
    top, cwd, uid = res.output.rsplit(" ", 2)
    allowed = {
        "bin",
        "sbin",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "usr",
        "etc",
        "proc",
        "dev",
        "tmp",
        "sandbox",
        "episodes",
        "cgroup",
    } | {Path(d).parts[1] for d in runtime_dirs()}
    assert set(eval(top)) <= allowed, top
    assert cwd == "/sandbox/workspace" and int(uid) != 0


def test_isolation_none_is_announced_as_a_warning():
    assert describe_isolation(SandboxLimits(isolation="none")).startswith("sandbox: WARNING: isolation: none")


# ---------------------------------------------------------------- pipeline files, other rollouts


WALK = """
import os
token = {token!r}
found, dirs_seen = [], 0
for root, dirs, files in os.walk('/'):
    if root in ('/proc', '/dev'):
        dirs[:] = []
        continue
    dirs_seen += 1
    found += [os.path.join(root, n) for n in dirs + files if token in n]
read = []
for p in {paths!r}:
    try:
        with open(p) as f:
            f.read(10)
        read.append(p)
    except OSError:
        pass
    try:
        os.listdir(p)
        read.append(p)
    except OSError:
        pass
print(found, read, dirs_seen > 100)
"""


def pipeline_tree(tmp_path: Path, token: str) -> tuple[Path, list[str]]:
    """A results/ and resources/eval/ like the pipeline's, gold answers and held-out tasks in files whose names
    carry `token`; returns the RL workspace root and the paths code must not read."""
    gold = tmp_path / "results/data/rl" / f"qa-{token}.jsonl"
    heldout = tmp_path / "resources/eval" / f"heldout-{token}.jsonl"
    for f in (gold, heldout):
        f.parent.mkdir(parents=True)
        f.write_text('{"answer": "42"}\n')
    task = tmp_path / "results/data/rl/workspaces/demo/task1"
    task.mkdir(parents=True)
    (task / "t.csv").write_text("a\n1\n")
    secrets = [
        str(gold),
        str(heldout),
        str(gold.parent),
        str(tmp_path),
        str(REPO / "README.md"),
        str(REPO / "config"),
        str(REPO / "src/darecipe/sandbox.py"),
        str(REPO / "resources"),
        str(REPO / "results"),
        os.path.expanduser("~/.bashrc"),
        "/etc/shadow",
        "/etc/passwd",
        "/run",
        "/var",
        "/home",
    ]
    return tmp_path / "results/data/rl/workspaces", secrets


def test_a_stage3_rollout_reads_nothing_of_results_eval_or_the_repository(jail, tmp_path):
    from darecipe.rollout import open_episode

    token = f"tok{os.getpid()}x{time.monotonic_ns()}"
    root, secrets = pipeline_tree(tmp_path, token)
    ep = open_episode("demo", "task1", SandboxLimits(timeout_s=60), root=root)
    try:
        obs = ep.execute(WALK.format(token=token, paths=secrets))
    finally:
        ep.close()
    assert obs == "<Execute>\n[] [] True\n</Execute>", obs


def test_an_evaluation_episode_reads_nothing_of_results_eval_or_the_repository(jail, tmp_path):
    from darecipe.agent import State, run_agents

    token = f"tok{os.getpid()}y{time.monotonic_ns()}"
    _, secrets = pipeline_tree(tmp_path, token)
    ws = tmp_path / "eval-ws"
    ws.mkdir()
    code = WALK.format(token=token, paths=secrets)

    def policy(states):
        return [
            f"<Code>```python\n{code}\n```</Code>" if "<Execute>" not in s.text else "<Answer>done</Answer>"
            for s in states
        ]

    (traj,) = run_agents(policy, [State("t1", "task")], [ws], SandboxLimits(timeout_s=60), max_turns=3)
    assert "<Execute>\n[] [] True\n</Execute>" in traj.text, traj.text


def test_concurrent_rollouts_see_nothing_of_each_other(jail, ws):
    with session(ws) as a, session(ws) as b:
        assert a.run("open('a.txt', 'w').write('A')\nopen('/tmp/a-scratch', 'w').write('A')").ok
        a_result = {}
        holder = threading.Thread(
            target=lambda: a_result.update(
                r=a.run(
                    "import os, time\nopen('/dev/shm/a-shm', 'w').write('A')\nos.fork() or time.sleep(3)\ntime.sleep(3)"
                )
            )
        )
        holder.start()
        time.sleep(1.0)  # a's block (and its child) run now
        seen = b.run(
            "import os\nprint(sorted(os.listdir('.')), sorted(os.listdir('/tmp')), sorted(os.listdir('/dev/shm')),"
            " sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"
        )
        holder.join()
    assert seen.output == "['data.csv'] [] [] [1, 2]", seen.output
    assert a_result["r"].ok


# ---------------------------------------------------------------- host memory


def test_a_huge_print_does_not_grow_the_parent(jail, ws):
    peak_rss_reset()
    before = peak_rss_mb()
    res = run_code("import sys\nsys.stdout.write('x' * (300 << 20))", ws, SandboxLimits(memory_mb=1024, timeout_s=30))
    assert res.ok and "characters truncated" in res.output and str((300 << 20) - 4096) in res.output
    assert peak_rss_mb() - before < 48, f"the parent grew by {peak_rss_mb() - before:.0f} MB"


def test_an_endless_print_stops_at_its_timeout_and_stays_small(jail, ws):
    peak_rss_reset()
    before = peak_rss_mb()
    res = run_code("while True:\n    print('y' * 10000)", ws, SandboxLimits(timeout_s=1.5))
    assert res.timed_out and res.seconds < 1.5 + 5 and "TimeoutError" in res.output
    assert len(res.output) < 4096 + 200
    assert peak_rss_mb() - before < 48, f"the parent grew by {peak_rss_mb() - before:.0f} MB"


TOGETHER = """
import os, time
pids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = bytearray(b'x') * (200 << 20)  # each alone is well under the limit
        time.sleep(4)
        os._exit(0)
    pids.append(pid)
bad = [s for s in (os.waitpid(p, 0)[1] for p in pids) if s != 0]
if bad:
    raise SystemExit(f'{len(bad)} children were killed')
print('all four held 200 MB')
"""


def test_memory_of_all_processes_together_is_bounded(jail, ws):
    res = run_code(TOGETHER, ws, SandboxLimits(memory_mb=512, timeout_s=20))
    check_error(res, 25)
    assert "MemoryError" in res.output or "Killed by signal" in res.output, res.output


def test_memory_watchdog_without_cgroups(ws):
    pool = Pool(True, LIMITS.preload, use_cgroups=False)
    try:
        pool.start()
    except SandboxUnavailable as e:
        pytest.fail(str(e))
    try:
        assert pool.info.memory == "watchdog"
        with session(ws, SandboxLimits(memory_mb=512, timeout_s=20), pool) as s:
            res = s.run(TOGETHER)
            check_error(res, 25)
            assert "MemoryError: the block's processes together used more than 512 MB" in res.output, res.output
            assert s.run("print('still fine')").output == "still fine"
    finally:
        pool.close()


SHM = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
key = 0x5EC2E7
{body}
"""


def test_sysv_shared_memory_dies_with_its_block(jail, ws):
    create = SHM.format(
        body="shm = libc.shmget(key, 1 << 20, 0o1600)\nassert shm >= 0\n"
        "ctypes.memmove(libc.shmat(shm, None, 0), b'secret', 6)\nprint('made')"
    )
    lookup = SHM.format(body="print(libc.shmget(key, 0, 0), ctypes.get_errno())")
    with session(ws) as s:
        assert s.run(create).output == "made"
        assert s.run(lookup).output == "-1 2"  # ENOENT: a later block cannot find it
    assert "5ec2e7" not in Path("/proc/sysvipc/shm").read_text().lower()


# ---------------------------------------------------------------- disk, sockets, crashes


def test_disk_quota_stops_a_block_and_the_session_goes_on(jail, ws):
    limits = SandboxLimits(disk_mb=64, timeout_s=20)
    with session(ws, limits) as s:
        res = s.run(
            "chunk = b'z' * (1 << 20)\nwith open('big', 'wb') as f:\n    for _ in range(3000):\n        f.write(chunk)"
        )
        check_error(res, 25)
        assert "No space left on device" in res.output
        many = s.run("import os\nfor i in range(100000):\n    open(f'f{i}', 'w').close()")
        check_error(many, 25)
        assert "No space left on device" in many.output
        assert s.run("import os\nos.remove('big')\nprint(os.path.exists('data.csv'))").output == "True"


def test_host_unix_sockets_are_unreachable(jail, ws, tmp_path):
    path = tmp_path / "host.sock"
    named, abstract = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
    named.bind(str(path))
    abstract.bind(f"\0darecipe-test-{os.getpid()}")
    for s in (named, abstract):
        s.listen()
        s.settimeout(0.5)
    code = textwrap.dedent(f"""
        import socket
        for addr in ({str(path)!r}, '\\0darecipe-test-{os.getpid()}', '/run/munge/munge.socket.2'):
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(addr)
                print('connected', addr)
            except OSError as e:
                print(type(e).__name__)
    """)
    res = run_code(code, ws, LIMITS)
    assert "connected" not in res.output and res.output.count("Error") == 3, res.output
    for s in (named, abstract):
        with pytest.raises(socket.timeout):
            s.accept()
        s.close()


def test_no_network(jail, ws):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    port = server.getsockname()[1]
    check_error(run_code(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)", ws, LIMITS))
    with pytest.raises(socket.timeout):
        server.accept()
    server.close()
    res = run_code("import socket\nprint(sorted(n for _, n in socket.if_nameindex()))", ws, LIMITS)
    assert res.output == "['lo']"


def test_a_very_deep_tree_is_just_files(jail, ws):
    deep = "import os\nfor _ in range(20000):\n    os.mkdir('d')\n    os.chdir('d')\nprint('deep')"
    with session(ws, SandboxLimits(timeout_s=60)) as s:
        assert s.run(deep).output == "deep"
        assert s.run("import os\nprint(sorted(os.listdir('.')))").output == "['d', 'data.csv']"
    with session(ws, SandboxLimits(timeout_s=60)) as s:  # and in /tmp, left to the end of the session
        assert s.run(deep.replace("import os\n", "import os\nos.chdir('/tmp')\n")).output == "deep"


def test_symlinks_lead_nowhere_on_the_host(jail, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "host-secret.txt").write_text("secret")
    (ws / "link").symlink_to(tmp_path / "host-secret.txt")
    with session(ws) as s:
        res = s.run("import os\nprint(os.path.islink('link'), os.path.exists('link'))\nos.symlink('/etc', 'etc')")
        assert res.output == "True False"
    assert sorted(p.name for p in ws.iterdir()) == ["link"]


# ---------------------------------------------------------------- privileges, signals, escape attempts


def test_no_privileges_and_no_way_back(jail, ws):
    code = textwrap.dedent("""
        import ctypes, os
        status = dict(l.split(':', 1) for l in open('/proc/self/status'))
        print(status['CapEff'].strip(), status['NoNewPrivs'].strip())
        try:
            os.setuid(0)
            print('became root')
        except PermissionError:
            print('no root')
        libc = ctypes.CDLL(None, use_errno=True)
        # A user namespace of its own gives capabilities there, over nothing that hides the jail:
        print(libc.unshare(0x10000000 | 0x00020000))                     # CLONE_NEWUSER | CLONE_NEWNS
        print(libc.umount2(b'/episodes', 2), libc.umount2(b'/proc', 2))  # MNT_DETACH: locked mounts
        try:
            print(os.listdir('/episodes'))
        except PermissionError:
            print('hidden')
    """)
    res = run_code(code, ws, LIMITS)
    assert res.output.splitlines() == ["0000000000000000 1", "no root", "0", "-1 -1", "hidden"], res.output


def test_signals_reach_only_the_block(jail, ws):
    with session(ws) as s:
        res = s.run("import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('survived')")  # its own processes only
        init = s.run(
            "import os\ntry:\n    os.kill(1, 9)\nexcept PermissionError:\n    print('refused')\nprint('alive')"
        )
        assert init.output in ("refused\nalive", "alive")  # the block's init is out of its reach either way
        assert s.run("print('next block')").output == "next block"
    assert "ProcessLookupError" in res.output  # nothing else it may signal: no other process in sight


def test_infinite_loop_is_stopped(jail, ws):
    res = run_code("while True:\n    pass", ws, LIMITS)
    check_error(res)
    assert res.timed_out and "TimeoutError" in res.output


def test_memory_bomb_fails(jail, ws):
    check_error(run_code("blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))", ws, LIMITS))


def test_fork_bomb_is_contained_and_cleaned_up(jail, ws):
    res = run_code("import os\nwhile True:\n    os.fork()", ws, LIMITS)
    check_error(res)
    if jail.info.mode == "root":  # blocks run as uids from 200000 up; killed, they must be gone within seconds
        deadline = time.monotonic() + 5
        while True:
            rows = [
                ln.split()
                for ln in subprocess.run(
                    ["ps", "-eo", "uid=,stat="], capture_output=True, text=True
                ).stdout.splitlines()
            ]
            left = [r for r in rows if int(r[0]) >= 200_000 and not r[1].startswith("Z")]
            if not left:
                break
            assert time.monotonic() < deadline, f"sandbox processes survived: {left}"
            time.sleep(0.1)
    assert subprocess.run(["true"]).returncode == 0  # the host can still start processes


def test_secrets_are_not_visible(jail, ws, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    res = run_code("import os\nprint(os.environ['OPENAI_API_KEY'])", ws, LIMITS)
    check_error(res)
    assert "sk-very-secret" not in res.output
    listing = run_code("import os\nprint(sorted(os.environ))", ws, LIMITS).output
    assert "OPENAI_API_KEY" not in listing
    check_error(run_code("import os\nprint(os.listdir(os.path.expanduser('~root')))", ws, LIMITS))


def test_nothing_outside_the_workspace_is_writable(jail, ws, tmp_path):
    outside = tmp_path / "outside.txt"
    for target in (outside, "/tmp/../usr/evil.txt", "/evil.txt", REPO / "evil.txt", "/dev/evil.txt"):
        res = run_code(f"open({str(target)!r}, 'w').write('x')", ws, LIMITS)
        assert not res.ok, target
        assert not os.path.exists(target)
    ok = run_code("open('inside.txt', 'w').write('fine')\nprint(open('inside.txt').read())", ws, LIMITS)
    assert ok.ok and ok.output == "fine"


def test_deleting_an_input_file_of_the_pipeline_fails(jail, ws):
    source = REPO / "resources/data/deepanalyze_examples/simpson/Simpson.csv"
    before = source.stat()
    check_error(run_code(f"import os\nos.remove({str(source)!r})", ws, LIMITS))
    assert source.stat().st_mtime_ns == before.st_mtime_ns and source.stat().st_size == before.st_size


# ---------------------------------------------------------------- persistent mode


def test_persistent_mode_answers_cannot_be_forged_or_shifted(jail, ws):
    forge = textwrap.dedent("""
        import json, sys
        frame = sys._getframe(1)
        while 'chan' not in frame.f_locals:
            frame = frame.f_back
        chan, nonce = frame.f_locals['chan'], frame.f_locals['nonce']
        chan.send(json.dumps({'nonce': nonce, 'code': 0}).encode())        # "this block succeeded"
        chan.send(json.dumps({'nonce': 'next-block', 'code': 0}).encode())  # a guess at a later block
        chan.send(b'not json')
        raise ValueError('the real outcome')
    """)
    with session(ws, SandboxLimits(timeout_s=5, persistent=True)) as s:
        assert s.run("x = 41").ok
        s.run(forge)  # it may speak for itself, and for nothing else
        after = s.run("x += 1\nprint(x)")
        assert after.ok and after.output == "42"
        failing = s.run("raise KeyError('mine')")
        assert not failing.ok and "KeyError: 'mine'" in failing.output
        assert s.run("print(x)").output == "42"


# ---------------------------------------------------------------- nothing outlives the pipeline


def test_kill_9_of_the_process_running_a_block_ends_everything(jail, ws):
    script = textwrap.dedent(f"""
        from darecipe.sandbox import SandboxLimits, Session
        s = Session({str(ws)!r}, SandboxLimits(timeout_s=300))
        print('running', flush=True)
        s.run('import os\\nfor _ in range(3):\\n    os.fork()\\nwhile True:\\n    pass')
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "running"
    below = wait_for_descendants(proc.pid, 8)
    proc.kill()
    proc.wait()
    assert_all_gone(below)
    # What the killed process could not clean up (its cgroup directories) goes with the next start.
    from darecipe.jail import _own_cgroups, _remove_cgroup_tree, make_cgroups

    made = make_cgroups()
    try:
        assert not [d for own in _own_cgroups().values() for d in own.glob(f"darecipe-{proc.pid}-*")]
    finally:
        for d in made.values():
            _remove_cgroup_tree(d)


def test_kill_9_of_snakemake_ends_the_job_and_its_sandbox(jail, ws, tmp_path):
    work = tmp_path / "wf"
    work.mkdir()
    (work / "Snakefile").write_text(
        textwrap.dedent("""
        rule spin:
            output: "done.txt"
            log: "spin.log"
            script: "spin.py"
    """)
    )
    (work / "spin.py").write_text(
        textwrap.dedent(f"""
        from darecipe.runlog import run_script
        from darecipe.sandbox import SandboxLimits, Session

        def main(smk, log):
            s = Session({str(ws)!r}, SandboxLimits(timeout_s=300))
            log('running')
            s.run('while True:\\n    pass')

        run_script(main, snakemake)
    """)
    )
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    smk = subprocess.Popen(
        [str(BIN / "snakemake"), "--cores", "1", "-q"],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not ((work / "spin.log").exists() and "running" in (work / "spin.log").read_text()):
        assert time.monotonic() < deadline and smk.poll() is None, "the rule did not start"
        time.sleep(0.2)
    below = wait_for_descendants(smk.pid, 5)
    smk.kill()
    smk.wait()
    assert_all_gone(below)


def wait_for_descendants(pid: int, n: int) -> set[int]:
    deadline = time.monotonic() + 60
    while len(found := alive(descendants(pid))) < n:
        assert time.monotonic() < deadline, f"only {len(found)} processes below {pid}"
        time.sleep(0.1)
    time.sleep(0.5)  # the block is running now
    return alive(descendants(pid))


def assert_all_gone(pids: set[int], within_s: float = 2.0) -> None:
    deadline = time.monotonic() + within_s
    while alive(pids):
        assert time.monotonic() < deadline, f"still running {within_s:g} s after the kill: {sorted(alive(pids))}"
        time.sleep(0.05)


# ---------------------------------------------------------------- failures of the machinery, not of a block


def test_a_workspace_that_cannot_be_prepared_is_the_blocks_error(jail, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    (big / "data.bin").write_bytes(b"0" * (20 << 20))
    res = run_code("print('never')", big, SandboxLimits(disk_mb=16))
    assert (
        res.observation == "[Error]:\nthe workspace could not be prepared: the workspace does not fit in "
        "sandbox.disk_mb (16 MB)"
    ), res.observation
    missing = run_code("print('never')", tmp_path / "missing", LIMITS)
    assert (
        missing.observation.startswith("[Error]:\nthe workspace could not be prepared: ")
        and "No such file or directory" in missing.observation
    )


def test_a_dead_template_is_an_error_of_the_machinery_and_the_next_session_restarts_it(ws):
    pool = Pool(True, LIMITS.preload)
    pool.start()
    try:
        with session(ws, LIMITS, pool) as s:
            assert s.run("print(1)").output == "1"
            os.kill(pool.proc.pid, signal.SIGKILL)  # bubblewrap; its jail dies with it
            pool.proc.wait()
            with pytest.raises(SandboxError):
                s.run("print(2)")
        with session(ws, LIMITS, pool) as s:
            assert s.run("print(3)").output == "3"
    finally:
        pool.close()


# ---------------------------------------------------------------- auto never degrades silently


def test_auto_stops_with_one_message_when_bwrap_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailable) as e:
        Pool(True, LIMITS.preload).start()
    msg = str(e.value)
    assert "\n" not in msg and "bwrap" in msg and "isolation: none" in msg


def test_auto_stops_with_bwraps_own_reason(tmp_path, monkeypatch):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(SandboxUnavailable) as e:
        Pool(True, LIMITS.preload).start()
    assert "No permissions to create new namespace" in str(e.value) and "user namespaces" in str(e.value)


def test_a_rule_stops_with_one_line_when_the_jail_cannot_be_built(tmp_path):
    script = textwrap.dedent("""
        from types import SimpleNamespace
        from darecipe.runlog import run_script
        from darecipe.sandbox import SandboxLimits, describe_isolation

        def main(smk, log):
            log(describe_isolation(SandboxLimits()))
            raise AssertionError('generated code would have run unjailed')

        run_script(main, SimpleNamespace(rule='eval_model', log=[]))
    """)
    env = {**os.environ, "PATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 2 and lines[-1].startswith("eval_model: sandbox: no jail: `bwrap` is not installed"), lines


# ---------------------------------------------------------------- as an unprivileged user (a SLURM node)

USER_MODE = r"""
import sys, textwrap
from darecipe.jail import get_pool
from darecipe.sandbox import SandboxLimits, Session, run_code

ws, repo = sys.argv[1], sys.argv[2]
info = get_pool(True, SandboxLimits().preload).info
assert (info.mode, info.memory, info.pids) == ("user namespaces", "watchdog", "rlimit"), info
lim = SandboxLimits(timeout_s=5, memory_mb=512, max_processes=32, disk_mb=64)


def out(code, limits=lim):
    return run_code(code, ws, limits)


r = out("import os\nst = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
        "print(os.getuid(), st['CapEff'].strip(), st['NoNewPrivs'].strip(), os.getcwd(), sorted(os.listdir('.')))")
assert r.output == "1000 0000000000000000 1 /sandbox/workspace ['data.csv']", r
r = out(f"print(open({repo + '/README.md'!r}).read(10))")
assert not r.ok and "FileNotFoundError" in r.output, r
r = out("import os\nwhile True:\n    os.fork()")
assert not r.ok and r.seconds < 10, r
r = out("import os, time\npids = []\nfor _ in range(4):\n    pid = os.fork()\n    if pid == 0:\n"
        "        b = bytearray(b'x') * (200 << 20)\n        time.sleep(4)\n        os._exit(0)\n    pids.append(pid)\n"
        "bad = [s for s in (os.waitpid(p, 0)[1] for p in pids) if s]\nprint(bad)", SandboxLimits(memory_mb=512, timeout_s=20))
assert not r.ok and "MemoryError" in r.output, r
r = out("while True:\n    pass")
assert r.timed_out, r
r = out("import ctypes\nlibc = ctypes.CDLL(None)\nprint(libc.unshare(0x10000000 | 0x20000), libc.umount2(b'/episodes', 2))")
assert r.output == "0 -1", r
r = out("open('big', 'wb').write(b'z' * (100 << 20))", SandboxLimits(disk_mb=64, memory_mb=1024))
assert not r.ok and "No space left" in r.output, r
s = Session(ws, SandboxLimits(persistent=True))
try:
    assert s.run("x = 41").ok and s.run("x += 1\nprint(x)").output == "42"
finally:
    s.close()
print("USER-MODE-OK")
"""

DROP = r"""
import os, subprocess, sys
# Make the runtime's and the repository's folders reachable for an unprivileged user in this private mount
# namespace only (e.g. a Python under /root), the way they are on a cluster node; then become that user.
for n, (parent, child) in enumerate(line.split("\t") for line in sys.argv[1].splitlines() if line):
    keep = os.path.join(sys.argv[2], str(n))
    os.mkdir(keep)
    subprocess.run(["mount", "--bind", os.path.join(parent, child), keep], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", parent], check=True)
    os.makedirs(os.path.join(parent, child))
    subprocess.run(["mount", "--bind", keep, os.path.join(parent, child)], check=True)
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
os.execv(sys.argv[3], sys.argv[3:])
"""


def test_user_namespace_mode_as_on_a_slurm_node(tmp_path):
    """The jail as an unprivileged user (bubblewrap in user namespaces, no writable cgroups: the memory
    watchdog and the per-block process limit), as on a SLURM node."""
    if os.geteuid() != 0:
        pytest.fail("this test switches to an unprivileged user and needs root to do so")
    from darecipe.jail import PYTHON

    ws = Path(tempfile.mkdtemp(prefix="darecipe-usermode-"))
    keep = tempfile.mkdtemp(prefix="darecipe-usermode-keep-")
    try:
        ws.chmod(0o755)
        (ws / "data.csv").write_text("a\n1\n")
        (ws / "data.csv").chmod(0o644)
        hidden = set()
        for d in [*runtime_dirs(), str(REPO), str(ws)]:
            parts = Path(d).parts
            for i in range(1, len(parts) - 1):
                parent = Path(*parts[: i + 1])
                if not os.stat(parent).st_mode & 0o001:
                    hidden.add((str(parent), parts[i + 1]))
        pairs = "\n".join(f"{p}\t{c}" for p, c in sorted(hidden))
        env = {"PATH": os.environ["PATH"], "HOME": "/tmp", "PYTHONPATH": str(REPO / "src")}
        proc = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                sys.executable,
                "-c",
                DROP,
                pairs,
                keep,
                PYTHON,
                "-c",
                USER_MODE,
                str(ws),
                str(REPO),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        subprocess.run(["rm", "-rf", str(ws), keep])
    assert proc.stdout.strip().endswith("USER-MODE-OK"), proc.stdout[-3000:] + proc.stderr[-3000:]
