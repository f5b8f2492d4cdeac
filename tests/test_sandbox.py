from pathlib import Path

from darecipe.sandbox import SandboxLimits, Session, execute_block, run_code


def test_output_error_and_fence(tmp_path):
    assert run_code("```python\nprint(2+2)\n```", tmp_path).output == "4"
    res = run_code("raise ValueError('boom')", tmp_path)
    assert not res.ok and res.observation.startswith("[Error]:\n") and "ValueError: boom" in res.output


def test_timeout_is_a_failed_block(tmp_path):
    res = run_code("import time\nprint('started', flush=True)\ntime.sleep(30)", tmp_path, SandboxLimits(timeout_s=1))
    assert res.timed_out and not res.ok
    assert res.observation.startswith("[Error]:\nstarted\nTimeoutError")
    assert res.seconds < 10


def test_runs_in_the_workspace_with_no_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    (tmp_path / "data.csv").write_text("a\n1\n")
    res = run_code("import os\nprint(sorted(os.listdir('.')))\nprint(os.environ.get('OPENAI_API_KEY'))", tmp_path)
    assert res.output.splitlines() == ["['data.csv']", "None"]


def test_fresh_interpreter_per_block(tmp_path):
    run_code("x = 1", tmp_path)
    assert "NameError" in run_code("print(x)", tmp_path).output


def test_output_is_truncated(tmp_path):
    res = run_code("print('y' * 10000)", tmp_path, SandboxLimits(max_output_chars=200))
    assert len(res.output) < 300 and "characters truncated" in res.output


def test_matplotlib_is_headless(tmp_path):
    session = Session(tmp_path, SandboxLimits())
    try:
        res = session.run("import matplotlib.pyplot as plt\nplt.plot([1,2])\nplt.savefig('p.png')\nprint('ok')")
        assert res.output == "ok"
        assert session.run("import os\nprint(os.path.getsize('p.png') > 1000)").output == "True"
    finally:
        session.close()


def test_files_persist_between_blocks_of_a_session_but_never_reach_the_source(tmp_path):
    (tmp_path / "data.csv").write_text("a\n1\n")
    session = Session(tmp_path, SandboxLimits())
    try:
        assert session.run("open('out.txt', 'w').write('x')\nopen('data.csv', 'a').write('2\\n')").ok
        assert session.run("import os\nprint(sorted(os.listdir('.')), open('data.csv').read().split())").output == (
            "['data.csv', 'out.txt'] ['a', '1', '2']"
        )
    finally:
        session.close()
    assert (
        sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"] and (tmp_path / "data.csv").read_text() == "a\n1\n"
    )


def test_a_block_sees_stdout_then_stderr_and_exit_codes_like_python(tmp_path):
    res = run_code("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)", tmp_path)
    assert not res.ok and res.output == "out\nerr"
    assert run_code("import sys\nprint('fine', file=sys.stderr)\nprint('shown')", tmp_path).output == "shown"
    assert run_code("import os\nos.kill(os.getpid(), 9)", tmp_path).output == "Killed by signal SIGKILL"


def test_random_state_is_fresh_in_every_block(tmp_path):
    code = "import random, numpy\nprint(random.random(), numpy.random.rand())"
    session = Session(tmp_path, SandboxLimits())
    try:
        assert session.run(code).output != session.run(code).output
    finally:
        session.close()


def test_execute_block_wraps_the_observation(tmp_path):
    text, res = execute_block("print('hi')", tmp_path)
    assert text == "<Execute>\nhi\n</Execute>" and res.ok


def test_isolation_none_runs_the_same_way_unjailed_and_cleans_up(tmp_path):
    from darecipe.jail import Pool

    (tmp_path / "data.csv").write_text("a\n1\n")
    limits = SandboxLimits(isolation="none", timeout_s=2, max_output_chars=200)
    pool = Pool(False, limits.preload)
    pool.start()
    scratch = Path(pool.scratch)
    try:
        assert pool.info.mode == "none"
        session = Session(tmp_path, limits, pool)
        try:
            assert session.run("open('out.txt', 'w').write('x')").ok
            assert session.run("import os\nprint(sorted(os.listdir('.')))").output == "['data.csv', 'out.txt']"
            assert session.run("while True:\n    pass").timed_out
            assert "characters truncated" in session.run("print('z' * 5000)").output
        finally:
            session.close()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]
    finally:
        pool.close()
    assert not scratch.exists()


def test_capped_output_is_what_cutting_the_whole_text_gives():
    """The parent keeps only heads and tails of stdout and stderr; the observation must be the same as if it had
    kept everything and cut the concatenation (trailing newlines stripped, the error line appended)."""
    import random

    from darecipe.jail import Capture, render, truncate

    rng = random.Random(0)
    alphabet = "ab\né€😀"
    for _ in range(300):
        limit = rng.choice([100, 150, 4096])
        texts = ["".join(rng.choice(alphabet) for _ in range(rng.choice([0, 5, 90, 300, 9000]))) for _ in range(2)]
        suffix = rng.choice(["", "TimeoutError: execution exceeded 1 s and was stopped"])
        streams = []
        for text in texts:
            cap, data = Capture(limit), text.encode()
            for i in range(0, len(data), 7):  # chunks that split multi-byte characters
                cap.feed(data[i : i + 7])
            cap.feed(b"", final=True)
            streams.append(cap)
        whole = "".join(texts).rstrip("\n")
        expected = truncate(f"{whole}\n{suffix}" if whole and suffix else whole or suffix, limit)
        assert render(streams, limit, suffix) == expected


def test_a_runtime_under_tmp_is_bound_in_a_read_only_tmp(monkeypatch):
    """A checkout under /tmp with its venv: /tmp cannot be the episode's symlink; it is a read-only tmpfs holding
    only the runtime (checked live on such a checkout: the venv visible, /tmp/x read-only, $TMPDIR writable)."""
    from darecipe import jail

    monkeypatch.setattr(jail, "runtime_dirs", lambda: ["/tmp/ci/main/.venv", "/opt/python"])
    argv = jail.bwrap_argv("bwrap", True, {}, ["python"])
    joined = " ".join(argv)
    assert "--symlink /sandbox/tmp /tmp" not in joined
    assert argv.index("--tmpfs") < argv.index("/tmp/ci/main/.venv")  # the tmpfs first, then the venv inside it
    assert "--tmpfs /tmp" in joined and "--remount-ro /tmp" in joined and "--ro-bind /opt/python /opt/python" in joined
    monkeypatch.setattr(jail, "runtime_dirs", lambda: ["/opt/python"])
    assert "--symlink /sandbox/tmp /tmp" in " ".join(jail.bwrap_argv("bwrap", True, {}, ["python"]))
