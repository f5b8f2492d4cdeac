"""Batch mode against the test server's Batch API (files, batches, polling, output and error files), kill -9 while
polling, and `vllm run-batch`'s contract through the test server's stand-in for it."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from darecipe.llm import BatchSettings, LLMRequest, LLMSettings, LocalTeacher, ResponseCache, request_key, run_requests
from darecipe.llm_batch import Journal, batch_line, split_lines
from darecipe.testserver import FakeOpenAI

KEY_ENV = "DARECIPE_TEST_KEY"
STANDIN = [sys.executable, "-m", "darecipe.testserver"]

CLIENT = """
import json, sys
from darecipe.llm import BatchSettings, LLMRequest, LLMSettings, ResponseCache, run_requests
base_url, cache, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = LLMSettings(backend="openai", model="teacher", base_url=base_url, api_key_env="DARECIPE_TEST_KEY", mode="batch",
                sampling={"temperature": 0.5}, batch=BatchSettings(max_requests=4000, poll_s=0.05))
reqs = [LLMRequest(f"r{i}", [{"role": "user", "content": f"question {i}"}]) for i in range(n)]
results, totals = run_requests(s, reqs, ResponseCache(cache), progress=False, batch_ok=True)
json.dump([[r.id, r.text, r.prompt_tokens, r.completion_tokens, r.error] for r in results], open(out, "w"))
"""


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-not-a-real-key")


def settings(server, **kw):
    base = dict(
        backend="openai",
        model="teacher",
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        mode="batch",
        max_retries=2,
        backoff_s=0.01,
        backoff_max_s=0.05,
        sampling={"temperature": 0.5},
        batch=BatchSettings(poll_s=0.05),
    )
    return LLMSettings(**{**base, **kw})


def requests(n):
    return [LLMRequest(f"r{i}", [{"role": "user", "content": f"question {i}"}]) for i in range(n)]


def created(journal_path) -> int:
    if not journal_path.is_file():
        return 0
    return sum('"created"' in line for line in journal_path.read_text().splitlines())


def test_ten_thousand_requests_kill_9_while_polling_then_rerun_submits_nothing_twice(tmp_path):
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    cache, journal = tmp_path / "cache" / "0.jsonl", tmp_path / "cache" / "0.batches.jsonl"
    env = {**os.environ, KEY_ENV: "sk-test"}
    with FakeOpenAI() as server:
        server.batch_hold.set()  # batches stay in_progress: the client can only poll
        proc = subprocess.Popen([sys.executable, client, server.base_url, cache, tmp_path / "a.json", "10000"], env=env)
        deadline = time.monotonic() + 120
        while created(journal) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        polls = server.batch_polls
        while server.batch_polls < polls + 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert created(journal) == 3 and len(server.batches) == 3  # 10,000 requests in files of at most 4,000
        assert sum(server.batch_requests.values()) == 10000 and not (tmp_path / "a.json").exists()
        server.batch_hold.clear()
        rerun = subprocess.run(
            [sys.executable, client, server.base_url, cache, tmp_path / "a.json", "10000"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert rerun.returncode == 0, rerun.stderr
        assert len(server.batches) == 3  # the rerun resumed polling the same three batches
        assert len(server.batch_requests) == 10000 and set(server.batch_requests.values()) == {1}
        assert server.requests == 0  # and sent nothing online
    with FakeOpenAI() as server:  # an uninterrupted run, for comparison
        subprocess.run(
            [sys.executable, client, server.base_url, tmp_path / "b" / "0.jsonl", tmp_path / "b.json", "10000"],
            env=env,
            check=True,
            timeout=300,
        )
    interrupted, uninterrupted = (
        json.loads((tmp_path / "a.json").read_text()),
        json.loads((tmp_path / "b.json").read_text()),
    )
    assert interrupted == uninterrupted and all(r[1] == f"reply to: question {i}" for i, r in enumerate(interrupted))
    assert len(ResponseCache(cache).entries) == 10000
    assert not any(p.suffix == ".jsonl" for p in (tmp_path / "cache" / "0.batches").iterdir())  # inputs removed


def test_failed_and_expired_lines_go_into_the_next_batch_refused_lines_are_final(tmp_path):
    seen = set()

    def line_plan(custom_id, body):
        i = int(body["messages"][0]["content"].split()[-1])
        if i % 10 == 7:
            return 400  # the request itself is bad: final
        if i % 10 == 3 and i not in seen:
            seen.add(i)
            return 500  # transient: the next batch answers it
        return None

    with FakeOpenAI(
        batch_line_plan=line_plan, batch_status_plan=lambda n: "expired" if n == 1 else "completed"
    ) as server:
        s = settings(
            server,
            batch=BatchSettings(max_requests=30, poll_s=0.05),
            price_input_per_mtok=2.0,
            price_output_per_mtok=8.0,
        )
        results, totals = run_requests(
            s, requests(60), ResponseCache(tmp_path / "c.jsonl"), progress=False, batch_ok=True
        )
    refused = [r for r in results if r.error]
    assert [r.id for r in refused] == [f"r{i}" for i in range(60) if i % 10 == 7]
    assert all(r.error.startswith("teacher request refused, HTTP 400") and not r.retryable for r in refused)
    assert all(r.text == f"reply to: question {i}" and r.batch for i, r in enumerate(results) if i % 10 != 7)
    # Batch 1 (requests 0-29) expired half-way: 15-29 went into round 2 with the 500s of both batches (3, 13, 33,
    # 43, 53); there 23 met its first 500 and went into round 3. A 400 is never sent again (17 and 27 first
    # expired unanswered).
    sent = {r.id: server.batch_requests[r.key] for r in results}
    assert len(server.batches) == 4 and server.requests == 0
    assert sent["r23"] == 3 and sent["r3"] == sent["r15"] == 2 and sent["r0"] == sent["r30"] == 1
    assert [sent[f"r{i}"] for i in (7, 17, 27, 37, 47, 57)] == [1, 2, 2, 1, 1, 1]
    assert totals.batch_responses == 54 and totals.failed == 6 and totals.missing == 0
    expected = (totals.prompt_tokens * 2.0 + totals.completion_tokens * 8.0) / 1e6 * 0.5  # the batch price
    assert totals.cost_usd == pytest.approx(expected) and totals.cost_usd > 0


def test_requests_no_batch_answers_go_online_or_count_as_unanswered(tmp_path):
    with FakeOpenAI(batch_status_plan=lambda n: "failed") as server:
        s = settings(server, batch=BatchSettings(poll_s=0.05, max_rounds=2, leftovers="online"))
        results, totals = run_requests(
            s, requests(5), ResponseCache(tmp_path / "a.jsonl"), progress=False, batch_ok=True
        )
        assert [r.text for r in results] == [f"reply to: question {i}" for i in range(5)]
        assert len(server.batches) == 2 and server.requests == 5 and not any(r.batch for r in results)
        s = settings(server, batch=BatchSettings(poll_s=0.05, max_rounds=1, leftovers="missing"))
        results, totals = run_requests(
            s, requests(5), ResponseCache(tmp_path / "b.jsonl"), progress=False, batch_ok=True
        )
    assert all(r.retryable and "batch failed: the batch failed" in r.error for r in results) and totals.missing == 5


def test_online_steps_ignore_batch_mode(tmp_path):
    with FakeOpenAI() as server:
        results, _ = run_requests(settings(server), requests(3), ResponseCache(tmp_path / "c.jsonl"), progress=False)
    assert server.requests == 3 and not server.batches and all(r.text for r in results)


def test_a_batch_created_just_before_a_kill_is_found_not_created_again(tmp_path):
    """The create call reached the provider but the kill came before its id was recorded."""
    from openai import OpenAI

    cache_path = tmp_path / "c.jsonl"
    with FakeOpenAI() as server:
        s = settings(server)
        reqs = requests(4)
        journal = Journal(cache_path)
        lines = [batch_line(request_key(s.model, s.sampling, r.messages), s.body(r.messages)) for r in reqs]
        chunk = journal.write_chunk(lines)
        api = OpenAI(api_key="sk-test", base_url=server.base_url)
        f = api.files.create(file=("in.jsonl", chunk.path.read_bytes()), purpose="batch")
        journal.record(event="uploaded", chunk=chunk.name, file_id=f.id, at=time.time())
        api.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
        results, totals = run_requests(s, reqs, ResponseCache(cache_path), progress=False, batch_ok=True)
    assert [r.text for r in results] == [f"reply to: question {i}" for i in range(4)]
    assert len(server.batches) == 1 and set(server.batch_requests.values()) == {1} and totals.batches == 0


def test_input_files_are_split_at_the_provider_limits():
    lines = [b"x" * 10 + b"\n"] * 7  # 11 bytes each
    assert [len(c) for c in split_lines(lines, max_requests=3, max_bytes=1000)] == [3, 3, 1]
    assert [len(c) for c in split_lines(lines, max_requests=100, max_bytes=25)] == [2, 2, 2, 1]


def test_local_run_batch_through_the_rendered_command_keeps_a_killed_runs_output(tmp_path, darecipe_log):
    model_dir = tmp_path / "weights"
    model_dir.mkdir()
    cmd = [
        *STANDIN,
        "run-batch",
        "-i",
        "{input}",
        "-o",
        "{output}",
        "--model",
        "{model}",
        "--served-model-name",
        "{name}",
        "--tensor-parallel-size",
        "{gpus}",
    ]
    s = LLMSettings(
        backend="vllm",
        model="teacher",
        mode="batch",
        sampling={"temperature": 0.5},
        local=LocalTeacher(model=str(model_dir), gpus=2, run_batch_command=tuple(cmd)),
    )
    reqs = requests(6)
    cache_path = tmp_path / "cache" / "0.jsonl"
    # What a run killed midway leaves: the output of its first two requests, the third cut short.
    (tmp_path / "cache" / "0.batches").mkdir(parents=True)
    done = [
        {
            "custom_id": request_key(s.model, s.sampling, r.messages),
            "response": {
                "status_code": 200,
                "body": {
                    "choices": [{"message": {"content": f"earlier answer {i}"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 3},
                },
            },
            "error": None,
        }
        for i, r in enumerate(reqs[:2])
    ]
    (tmp_path / "cache" / "0.batches" / "local-x.out.jsonl").write_text(
        "".join(json.dumps(d) + "\n" for d in done) + '{"custom_id": "cut sh'
    )
    lines = darecipe_log
    results, totals = run_requests(s, reqs, ResponseCache(cache_path), progress=False, batch_ok=True)
    assert [r.text for r in results] == ["earlier answer 0", "earlier answer 1"] + [
        f"reply to: question {i}" for i in range(2, 6)
    ]
    assert totals.batch_requests == 4 and any(
        "4 requests through" in line and "--tensor-parallel-size 2" in line for line in lines
    )
    assert not list((tmp_path / "cache" / "0.batches").glob("*.jsonl"))  # inputs and outputs cleaned up

    # The served name is part of the command: a request for another model is refused by the (stand-in) server.
    other = LLMSettings(**{**s.__dict__, "model": "someone-else"})
    cmd_wrong = [a if a != "{name}" else "teacher" for a in cmd]
    other = LLMSettings(**{**other.__dict__, "local": LocalTeacher(str(model_dir), 2, (), tuple(cmd_wrong))})
    results, totals = run_requests(other, reqs[:2], ResponseCache(tmp_path / "w.jsonl"), progress=False, batch_ok=True)
    assert all(r.retryable and "does not exist" in r.error for r in results)
