"""Acceptance: hostile code ends as an [Error] observation within the limits; host, inputs and pipeline unaffected.

These need the isolated sandbox (root + Linux namespaces, as on CI); where it is missing they fail and say so."""

import os
import shutil
import socket
import subprocess

import pytest

from darecipe.sandbox import SandboxLimits, describe_isolation, namespaces_available, run_code

from conftest import REPO

LIMITS = SandboxLimits(timeout_s=3, memory_mb=512, max_processes=32, isolation="namespaces")


@pytest.fixture(autouse=True)
def require_isolation():
    if not namespaces_available():
        pytest.fail("the isolated sandbox needs root and Linux mount/network namespaces; run these tests as root")


@pytest.fixture
def ws(tmp_path):
    w = tmp_path / "ws"
    w.mkdir()
    shutil.copy2(REPO / "resources/data/deepanalyze_examples/simpson/Simpson.csv", w)
    return w


def check_error(res, within_s=LIMITS.timeout_s + 5):
    assert not res.ok and res.observation.startswith("[Error]:\n"), res
    assert res.seconds < within_s


def test_infinite_loop_is_stopped(ws):
    res = run_code("while True:\n    pass", ws, LIMITS)
    check_error(res)
    assert res.timed_out and "TimeoutError" in res.output


def test_memory_bomb_fails(ws):
    check_error(run_code("blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))", ws, LIMITS))


def test_fork_bomb_is_contained_and_cleaned_up(ws):
    res = run_code("import os\nwhile True:\n    os.fork()", ws, LIMITS)
    check_error(res)
    rows = [line.split() for line in subprocess.run(["ps", "-eo", "uid=,stat="], capture_output=True, text=True).stdout.splitlines()]
    # Killed processes may wait a moment as zombies for init to reap them; none may still be running.
    assert not [r for r in rows if int(r[0]) >= 200_000 and not r[1].startswith("Z")], "sandbox processes survived"
    assert subprocess.run(["true"]).returncode == 0  # the host can still start processes


def test_no_network(ws):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    port = server.getsockname()[1]
    res = run_code(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)", ws, LIMITS)
    check_error(res)
    with pytest.raises(socket.timeout):
        server.accept()  # nothing reached the host's listening socket
    server.close()


def test_secrets_are_not_visible(ws, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    res = run_code("import os\nprint(os.environ['OPENAI_API_KEY'])", ws, LIMITS)
    check_error(res)
    assert "sk-very-secret" not in res.output
    listing = run_code("import os\nprint(sorted(os.environ))", ws, LIMITS).output
    assert "OPENAI_API_KEY" not in listing
    check_error(run_code("import os\nprint(os.listdir(os.path.expanduser('~root')))", ws, LIMITS))


def test_nothing_outside_the_workspace_is_writable(ws, tmp_path):
    outside = tmp_path / "outside.txt"
    for target in (outside, "/tmp/darecipe-evil.txt", REPO / "evil.txt"):
        check_error(run_code(f"open({str(target)!r}, 'w').write('x')", ws, LIMITS))
        assert not os.path.exists(target)
    ok = run_code("open('inside.txt', 'w').write('fine')\nprint(open('inside.txt').read())", ws, LIMITS)
    assert ok.ok and ok.output == "fine"


def test_deleting_an_input_file_of_the_pipeline_fails(ws):
    source = REPO / "resources/data/deepanalyze_examples/simpson/Simpson.csv"
    before = source.stat()
    check_error(run_code(f"import os\nos.remove({str(source)!r})", ws, LIMITS))
    assert source.stat().st_mtime_ns == before.st_mtime_ns and source.stat().st_size == before.st_size


def test_the_log_line_says_how_code_is_isolated():
    assert describe_isolation(LIMITS).startswith("sandbox: isolated (no network")
    assert "WARNING" in describe_isolation(SandboxLimits(isolation="none"))
