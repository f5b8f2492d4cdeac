"""Stage-1 synthesis through Snakemake against the real OpenAI-compatible test server (a dummy API key)."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import yaml
from conftest import BIN, copy_repo, snakemake

KEY_ENV = "DARECIPE_TEST_KEY"
KEY_VALUE = "sk-dummy-5f3c9a17e2b84d06"
TARGET = "results/data/stage1/sets/TableQA_distillation.arrow"
SHARD_CACHE = "results/cache/llm/TableQA_distillation/0.jsonl"


def teacher(messages, body):
    """A correct teacher: reasoning that ends in the answer the prompt says is right."""
    prompt = messages[-1]["content"]
    answer = re.search(r"The final answer must be: (.*)", prompt).group(1).strip()
    question = prompt.split("# Question\n", 1)[1].split("\n", 1)[0]
    return f"<Analyze>The question is: {question} Reading the table gives the value.</Analyze><Answer>{answer}</Answer>"


def workdir(tmp_path_factory, server, n_wikitq, **llm):
    work = copy_repo(tmp_path_factory.mktemp("s1"))
    overlay = {
        "llm": {
            "backend": "openai",
            "model": "teacher",
            "base_url": server.base_url,
            "api_key_env": KEY_ENV,
            "max_in_flight": 1,
            "timeout_s": 2,
            "max_retries": 1,
            "backoff_s": 0.01,
            "backoff_max_s": 0.02,
            **llm,
        },
        "stage1_data": {"shards": 1, "wikitq": {"limit": n_wikitq}, "finqa": {"limit": 0}, "tatqa": {"limit": 0}},
    }
    (work / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    return work


def run(work, *extra, check=True):
    env_key = {KEY_ENV: KEY_VALUE}
    os.environ.update(env_key)
    return snakemake(
        work, TARGET, "--cores", "1", "--configfile", "config/config.yaml", "overlay.yaml", *extra, check=check
    )


def lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.endswith("}")) if path.exists() else 0


def test_a_killed_distillation_resends_only_the_missing_requests(tmp_path_factory):
    from darecipe.testserver import FakeOpenAI

    n, k = 10, 4
    with FakeOpenAI(reply=teacher) as reference:
        ref = workdir(tmp_path_factory, reference, n)
        run(ref)
        assert reference.requests == n

    answered = []

    def reply(messages, body):
        answered.append(1)
        if len(answered) == k:
            server.hold.set()  # every later request waits: the job is killed with them in flight
        return teacher(messages, body)

    with FakeOpenAI(reply=reply) as server:
        work = workdir(tmp_path_factory, server, n)
        os.environ[KEY_ENV] = KEY_VALUE
        proc = subprocess.Popen(
            [str(BIN / "snakemake"), TARGET, "--cores", "1", "--configfile", "config/config.yaml", "overlay.yaml"],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.time() + 120
        while lines(work / SHARD_CACHE) < k and time.time() < deadline:
            time.sleep(0.05)
        cached = lines(work / SHARD_CACHE)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert cached == k
        assert not (work / TARGET).exists()

        sent_before = server.requests
        server.hold.clear()
        snakemake(work, "--unlock")
        run(work, "--rerun-incomplete")
        assert server.requests - sent_before == n - k
    assert (work / TARGET).read_bytes() == (ref / TARGET).read_bytes()
    shard = "results/data/stage1/shards/TableQA_distillation/0.jsonl"
    assert (work / shard).read_bytes() == (ref / shard).read_bytes()

    # The API key's value is in no file the run wrote.
    for top in ("results", "logs", ".snakemake"):
        for path in (work / top).rglob("*"):
            if path.is_file():
                assert KEY_VALUE.encode() not in path.read_bytes(), path


def test_with_faulty_replies_unanswered_requests_fail_the_rule_and_a_rerun_sends_exactly_them(tmp_path_factory):
    """A request that failed only on transport or server errors is no reject (issue #17): the rule fails with the
    count, and a plain rerun asks those requests and nothing else."""
    from darecipe.testserver import FakeOpenAI

    n = 20
    with FakeOpenAI(reply=teacher, fault_rate=0.3, seed=7) as server:
        work = workdir(tmp_path_factory, server, n, max_in_flight=4, max_retries=1)
        first = run(work, check=False)
        assert sum(server.faults_sent.values()) > 0
        m = re.search(
            r"stage1_synth: (\d+) teacher request\(s\) unanswered \(teacher \1; first: \S+: no answer after "
            r"2 attempt\(s\): ",
            first.stderr,
        )
        assert first.returncode != 0 and m, "with 30 % faults and one retry some requests should fail twice"
        missing = int(m.group(1))
        assert lines(work / SHARD_CACHE) == n - missing and not (work / TARGET).exists()
        server.fault_rate = 0.0
        sent_before = server.requests
        run(work)
        assert server.requests - sent_before == missing
    tasks = [
        json.loads(line)["id"] for line in (work / "results/data/stage1/tasks/tableqa.jsonl").read_text().splitlines()
    ]
    shard = work / "results/data/stage1/shards/TableQA_distillation/0.jsonl"
    kept = [json.loads(line)["id"] for line in shard.read_text().splitlines()]
    rejected = (work / "results/data/stage1/sets/TableQA_distillation.rejects.jsonl").read_text().splitlines()
    assert len(tasks) == n and sorted(kept) == sorted(tasks) and rejected == []  # the teacher is always right
    metrics = json.loads((work / "results/data/stage1/sets/TableQA_distillation.metrics.json").read_text())
    assert metrics["rejected"] == 0 and metrics["records"] == n
    assert f"{n} records, 0 rejected" in (work / "logs/stage1_synth/TableQA_distillation/0.log").read_text()


def test_a_broken_raw_file_stops_the_rule_with_one_line(tmp_path_factory):
    from darecipe.testserver import FakeOpenAI

    with FakeOpenAI(reply=teacher) as server:
        work = workdir(tmp_path_factory, server, 3)
    tsv = work / "resources/data/wikitablequestions/data/training-first50.tsv"
    text = tsv.read_text().splitlines()
    text[3] = text[3] + "\tan extra field"
    tsv.write_text("\n".join(text) + "\n")
    proc = run(work, check=False)
    assert proc.returncode != 0
    assert f"stage1_tasks: {tsv.relative_to(work)}:4: 5 tab-separated fields, the header has 4" in proc.stderr
    assert "Traceback" not in proc.stderr
