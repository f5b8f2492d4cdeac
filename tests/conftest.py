import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MODELSCOPE_OFFLINE", "1")


def repo_files() -> list[str]:
    """The files a clean clone has (tracked, plus new files not ignored while developing)."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return [f for f in out.stdout.splitlines() if (REPO / f).is_file()]


def copy_repo(dest: Path) -> Path:
    for rel in repo_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    return dest


def discard(path: Path) -> None:
    """Delete a finished test run (checkpoints: GBs; CI's disk is limited). DARECIPE_KEEP_TEST_RUNS=1 keeps it."""
    if not os.environ.get("DARECIPE_KEEP_TEST_RUNS"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def scratch(tmp_path):
    """tmp_path for a test that trains: deleted when the test ends (see discard)."""
    yield tmp_path
    discard(tmp_path)


def copy_run(src: Path, dest: Path) -> Path:
    """A copy of a finished run to change and rerun: files of 1 MB or more (weights, optimizer states) are hard
    links, which is safe because the pipeline replaces them (atomic exports, new run directories), never rewrites
    them in place; a demo run holds ~10 GB of checkpoints and a full copy per test would fill a CI disk."""

    def link_or_copy(a, b):
        if os.path.getsize(a) >= 1 << 20:
            os.link(a, b)
        else:
            shutil.copy2(a, b)

    shutil.copytree(src, dest, symlinks=True, copy_function=link_or_copy)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.run(
        [str(BIN / "snakemake"), *args], cwd=workdir, capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def job_counts(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table Snakemake prints for a run or a dry run."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Job stats:"))
    except StopIteration:
        return counts
    for line in lines[start + 3 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    from darecipe.tiny_model import TinySpec, build_tiny_qwen3

    out = tmp_path_factory.mktemp("tiny") / "base"
    build_tiny_qwen3(out, TinySpec())
    return out


@pytest.fixture(scope="session")
def tiny_vocab(tiny_base, tmp_path_factory) -> Path:
    from darecipe.vocab import extend_vocab

    out = tmp_path_factory.mktemp("vocab") / "plain"
    extend_vocab(tiny_base, out, special=False, init="mean")
    return out


@pytest.fixture(scope="session")
def tiny_vocab_special(tiny_base, tmp_path_factory) -> Path:
    from darecipe.vocab import extend_vocab

    out = tmp_path_factory.mktemp("vocab") / "special"
    extend_vocab(tiny_base, out, special=True, init="mean")
    return out


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """A clean copy of the repository, dry-run first, then the embedded default run (`all`, what `make demo` runs).

    Developers iterating on a test may set DARECIPE_DEMO_DIR to a finished run of `all` to reuse it (the fresh
    dry-run output is then empty, so the dry-run test fails there: CI never sets it)."""
    reuse = os.environ.get("DARECIPE_DEMO_DIR")
    if reuse:
        return {"dir": Path(reuse), "fresh_dry_run": "", "run": ""}
    work = copy_repo(tmp_path_factory.mktemp("demo"))
    dry = snakemake(work, "-n", "all")
    # the whole embedded default: ~30 minutes on two idle cores (docs/embedded-default.md), more on a shared CI box
    run = snakemake(work, "--cores", "2", "all", timeout=3600)
    return {"dir": work, "fresh_dry_run": dry.stdout, "run": run.stdout + run.stderr}


@pytest.fixture
def darecipe_log():
    """The messages the library logs (its loggers live under `darecipe`; a rule sends them to its log file)."""
    import logging

    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(("WARNING: " if record.levelno >= logging.WARNING else "") + record.getMessage())

    logger = logging.getLogger("darecipe")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield messages
    logger.removeHandler(handler)
    logger.setLevel(level)
