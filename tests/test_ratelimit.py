"""Provider rate limits: the bookkeeping with a fake clock, then the client against the test server enforcing them
(429 with Retry-After when over budget). Throughput figures are the bench's (bench/llm_ratelimit.py), not these."""

import time

import pytest

from darecipe.llm import LLMRequest, LLMSettings, ResponseCache, run_requests
from darecipe.ratelimit import Bucket, Limits, RateState, parse_duration, retry_after_s
from darecipe.testserver import FakeOpenAI, ServerLimits

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
        max_in_flight=16,
        timeout_s=10.0,
        max_retries=8,
        backoff_s=0.05,
        backoff_max_s=0.5,
        sampling={"max_tokens": 20},
    )
    return LLMSettings(**{**base, **kw})


def requests(n, words=5):
    return [LLMRequest(f"r{i}", [{"role": "user", "content": f"question {i} " + "word " * words}]) for i in range(n)]


def test_durations_and_retry_after_headers():
    assert parse_duration("6m0s") == 360 and parse_duration("1s") == 1 and parse_duration("20ms") == 0.02
    assert parse_duration("1h2m3.5s") == 3723.5 and parse_duration("0.5") == 0.5 and parse_duration("soon") is None
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25  # milliseconds win
    assert retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now_epoch=1445412480) == 10
    assert retry_after_s({}) is None and retry_after_s({"retry-after": "later"}) is None


def test_bucket_paces_at_the_refill_rate_and_lets_a_large_request_into_debt():
    b = Bucket.new(per_min=600, burst_s=1.0, now=0.0)  # 10 per second, holds 10
    assert b.wait(10, 0.0) == 0
    b.take(10)
    assert b.wait(1, 0.0) == pytest.approx(0.1)  # one unit comes back every 0.1 s
    assert b.wait(5, 0.2) == pytest.approx(0.3)
    # A request larger than the bucket waits for a full bucket, then leaves it in debt: still paced.
    assert b.wait(25, 1.0) == 0
    b.take(25)
    assert b.level == pytest.approx(-15) and b.wait(1, 1.0) == pytest.approx(1.6)
    b.give(100)
    assert b.level == b.capacity == 10  # refunds never overfill it


def test_usage_corrects_the_reservation_and_teaches_the_token_ratio():
    st = RateState(Limits(tokens_per_min=60_000, headroom=1.0, burst_s=1.0), max_in_flight=8)  # 1,000 tokens/s
    msgs = [{"role": "user", "content": "x" * 1000}]
    cost = st.estimate(msgs, max_tokens=200)
    assert cost == 300 + 4 + 200  # 0.3 tokens per character before any reply
    st.take(cost)
    st.settle(cost, actual=250)  # the reply used 250: the rest comes back
    assert st.tokens.level == pytest.approx(1000 - 250, abs=1)
    st.learn_usage(msgs, prompt_tokens=100, completion_tokens=150)
    assert st.estimate(msgs, max_tokens=200) < cost  # learned: 1,000 characters were 100 tokens, not 300


def test_headers_set_unknown_limits_and_lower_the_budget_left():
    st = RateState(Limits(), max_in_flight=8)
    assert st.wait(100, 0.0) == 0 and st.tokens is None
    st.observe(
        {
            "x-ratelimit-limit-tokens": "6000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "5",
        },
        now=0.0,
    )
    assert st.tokens.per_min == pytest.approx(6000 * 0.98) and st.requests.per_min == pytest.approx(60 * 0.98)
    assert st.wait(98, 0.0) == pytest.approx(1.0)  # nothing left: 98 tokens/s of refill


def test_429_pauses_everyone_and_halves_the_window_which_grows_back():
    st = RateState(Limits(), max_in_flight=16)
    wait = st.rate_limited_reply({"retry-after-ms": "1500"}, now=10.0, fallback_s=0.1)
    assert wait == 1.5 and st.paused_until == 11.5 and st.window == 8 and st.wait(1, 11.0) == pytest.approx(0.5)
    st.rate_limited_reply({}, now=12.0, fallback_s=0.25)  # no header: the client's own backoff
    assert st.paused_until == 12.25 and st.window == 4
    for _ in range(40):
        st.succeeded()
    assert 8 < st.window < 16  # one more request in flight per window of successes
    for _ in range(200):
        st.succeeded()
    assert st.window == 16  # and never above the configured maximum


def test_client_paces_under_configured_limits_with_no_429():
    # A provider whose buckets hold one second of budget: a client that sent all 40 at once would be refused.
    lim = ServerLimits(requests_per_min=1200, tokens_per_min=12_000, burst_s=1.0)
    with FakeOpenAI(latency_s=0.05, limits=lim) as server:
        s = settings(server, limits=Limits(1200, 12_000))
        results, totals = run_requests(s, requests(40), ResponseCache(None), progress=False)
    assert all(r.text for r in results) and totals.failed == 0
    assert server.rate_limited == 0 and totals.rate_limited == 0 and server.requests == 40


def test_client_without_configured_limits_learns_them_from_the_headers():
    lim = ServerLimits(requests_per_min=1200, tokens_per_min=12_000, burst_s=1.0)
    with FakeOpenAI(latency_s=0.05, limits=lim) as server:
        s = settings(server)
        results, totals = run_requests(s, requests(40), ResponseCache(None), progress=False)
        early = server.rate_limited
    assert all(r.text for r in results) and totals.failed == 0
    assert totals.rate_limited == server.rate_limited == early
    # Only the first burst, before any header was seen, can be refused.
    assert server.rate_limited <= s.max_in_flight


def test_retry_after_is_waited_for_before_the_retry():
    arrivals = []

    def plan(n, body):
        arrivals.append(time.monotonic())
        return "429" if n == 1 else None

    with FakeOpenAI(fault_plan=plan, fault_retry_after_ms=400) as server:
        s = settings(server, max_in_flight=1, backoff_s=0.001, backoff_max_s=0.001)
        results, totals = run_requests(s, requests(1), ResponseCache(None), progress=False)
    assert results[0].text and totals.rate_limited == 1 and server.requests == 2
    assert arrivals[1] - arrivals[0] >= 0.4  # not the 1 ms backoff: the server's Retry-After


def test_the_test_server_enforces_its_budget_with_429_and_retry_after():
    import httpx

    body = {"model": "m", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 7}
    limits = ServerLimits(requests_per_min=60, tokens_per_min=600, burst_s=1.0)
    with FakeOpenAI(limits=limits) as server, httpx.Client() as http:
        first = http.post(f"{server.base_url}/chat/completions", json=body)
        second = http.post(f"{server.base_url}/chat/completions", json=body)  # the bucket held one request
    assert first.status_code == 200 and first.headers["x-ratelimit-limit-requests"] == "60"
    # 10 tokens held, 3 + 7 reserved, then corrected to the usage: 3 prompt + 5 reply words ("reply to: one two
    # three"); plus what refilled meanwhile (10 per second)
    assert first.headers["x-ratelimit-remaining-tokens"] in ("2", "3")
    assert second.status_code == 429 and server.rate_limited == 1 and len(server.admissions) == 1
    assert 0 < float(second.headers["retry-after-ms"]) <= 1000 and second.headers["retry-after"] == "1"
