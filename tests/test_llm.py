"""The LLM layer against the real OpenAI-compatible test server: retries, faults, cache, replay, keys."""

import json

import pytest

from darecipe.llm import LLMError, LLMRequest, LLMSettings, ResponseCache, request_key, run_requests
from darecipe.testserver import FAULTS, FakeOpenAI

KEY_ENV = "DARECIPE_TEST_KEY"


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-not-a-real-key")


def settings(server, **kw):
    base = dict(
        backend="openai",
        model="teacher",
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        max_in_flight=4,
        timeout_s=1.0,
        max_retries=2,
        backoff_s=0.01,
        backoff_max_s=0.05,
        sampling={"temperature": 0.5},
    )
    return LLMSettings(**{**base, **kw})


def requests(n):
    return [LLMRequest(f"r{i}", [{"role": "user", "content": f"question {i}"}]) for i in range(n)]


def test_key_is_model_sampling_and_messages_only():
    msgs = [{"role": "user", "content": "q"}]
    k = request_key("m", {"temperature": 0.5, "max_tokens": 9}, msgs)
    assert k == request_key("m", {"max_tokens": 9, "temperature": 0.5}, msgs)
    assert k != request_key("m", {"temperature": 0.6, "max_tokens": 9}, msgs)
    assert k != request_key("other", {"temperature": 0.5, "max_tokens": 9}, msgs)


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_retried_then_answered(fault):
    def plan(n, body):
        return fault if n == 1 else None

    with FakeOpenAI(fault_plan=plan) as server:
        results, totals = run_requests(
            settings(server, max_in_flight=1), requests(1), ResponseCache(None), progress=False
        )
    assert results[0].text == "reply to: question 0"
    assert results[0].attempts == 2 and totals.retries == 1 and totals.failed == 0
    assert server.requests == 2 and server.faults_sent[fault] == 1


def test_a_request_that_keeps_failing_gets_an_error_not_an_exception():
    with FakeOpenAI(fault_plan=lambda n, body: "500") as server:
        results, totals = run_requests(settings(server), requests(3), ResponseCache(None), progress=False)
    assert all(r.text is None and "HTTP 500" in r.error for r in results)
    assert totals.failed == 3 and server.requests == 9  # 1 try + 2 retries each


def test_results_come_back_in_input_order_with_usage():
    with FakeOpenAI(latency_s=0.01) as server:
        results, totals = run_requests(
            settings(server, max_in_flight=8), requests(20), ResponseCache(None), progress=False
        )
    assert [r.id for r in results] == [f"r{i}" for i in range(20)]
    assert totals.completion_tokens == sum(len(r.text.split()) for r in results) and totals.responses == 20


def test_client_processes_share_the_work_keep_order_cache_and_retries(tmp_path):
    path = tmp_path / "cache.jsonl"
    seen = set()

    def plan(n, body):  # every third question fails once (429, 500 or a malformed body), then succeeds
        i = int(body["messages"][-1]["content"].split()[-1])
        if i % 3 or i in seen:
            return None
        seen.add(i)
        return ("429", "500", "malformed_json")[i // 3 % 3]

    with FakeOpenAI(latency_s=0.01, fault_plan=plan) as server:
        s = settings(server, max_in_flight=8, client_processes=2)
        results, totals = run_requests(s, requests(30), ResponseCache(path), progress=False)
    assert [r.text for r in results] == [f"reply to: question {i}" for i in range(30)]
    assert totals.responses == 30 and totals.failed == 0 and totals.retries == 10 == sum(server.faults_sent.values())
    assert totals.requests_sent == server.requests == 40
    assert totals.completion_tokens == sum(len(r.text.split()) for r in results)
    assert len(ResponseCache(path).entries) == 30  # the parent wrote every answer to the cache


def test_cache_means_no_request_is_sent_twice(tmp_path):
    path = tmp_path / "cache.jsonl"
    with FakeOpenAI() as server:
        run_requests(settings(server), requests(5), ResponseCache(path), progress=False)
        with open(path, "a") as f:
            f.write('{"key": "cut sho')  # a line cut short by a kill
        results, totals = run_requests(settings(server), requests(7), ResponseCache(path), progress=False)
    assert server.requests == 7 and totals.from_cache == 5 and totals.requests_sent == 2
    assert [r.cached for r in results] == [True] * 5 + [False] * 2
    assert len(ResponseCache(path).entries) == 7


def test_missing_key_variable_is_one_clear_line(monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with FakeOpenAI() as server, pytest.raises(LLMError, match=f"environment variable {KEY_ENV} is not set"):
        run_requests(settings(server), requests(1), ResponseCache(None), progress=False)


def test_replay_answers_from_recordings_and_names_a_missing_record(tmp_path):
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    s = LLMSettings(backend="replay", model="recorded-teacher", recordings=str(rec_dir), sampling={"temperature": 0.7})
    reqs = requests(2)
    key0 = request_key(s.model, s.sampling, reqs[0].messages)
    (rec_dir / "set.jsonl").write_text(json.dumps({"id": "r0", "key": key0, "response": "recorded"}) + "\n")
    results, _ = run_requests(s, reqs[:1], ResponseCache(None), progress=False)
    assert results[0].text == "recorded"
    cache = ResponseCache(tmp_path / "c" / "0.jsonl")
    with pytest.raises(LLMError, match="record 'r1'") as err:
        run_requests(s, reqs, cache, progress=False)
    assert "\n" not in str(err.value)
    dumped = [json.loads(line) for line in (tmp_path / "c" / "0.missing.jsonl").read_text().splitlines()]
    assert [d["id"] for d in dumped] == ["r1"]


def test_a_missing_recording_says_which_file_holds_the_record_under_another_prompt(tmp_path):
    """A new set over an existing set's tasks: the replay error names the other set's file and says not to re-key
    it, where a record nobody recorded says so plainly."""
    from darecipe.llm import LLMRequest, Recordings, request_key

    msgs = [{"role": "user", "content": "the old prompt"}]
    (tmp_path / "old_set.jsonl").write_text(
        json.dumps({"id": "task-1", "key": request_key("m", {}, msgs), "response": "r"}) + "\n"
    )
    rec = Recordings(tmp_path)
    other_prompt = LLMRequest("task-1", [{"role": "user", "content": "the new set's prompt"}])
    err = str(rec.missing_error([(other_prompt, request_key("m", {}, other_prompt.messages))], None))
    assert "record 'task-1'" in err
    assert "old_set.jsonl records this record for another prompt or sampling" in err
    assert "a new set over the same tasks needs recordings of its own" in err
    new = LLMRequest("task-2", msgs)
    assert "no recording for this record" in str(rec.missing_error([(new, "k")], None))
