"""How close the LLM client runs to a provider's rate limits without being refused.

The project's test server enforces 600 requests/min and 150,000 tokens/min (token buckets holding a minute's
budget, tokens charged on admission as prompt + max_tokens and corrected to the reported usage, 429 with
Retry-After when over budget) and answers after 2 s. The client is configured with the same limits
(`llm.limits`). Requests are sized so that one limit binds (default: tokens; `--scenario requests` makes the
request limit bind). Throughput is counted by the server, on admission, over a window of `--window` seconds that
starts `--warmup` seconds in (the client is still busy when it ends), as a share of each limit; the binding
limit is the one used most. Target: >= 95 % of the binding limit with <= 1 % of requests answered 429.
The last line printed is the figure.

    .venv/bin/python bench/llm_ratelimit.py [--window 60] [--scenario tokens|requests]
"""

import argparse
import hashlib
import math
import os
import random
import time

from darecipe.llm import LLMRequest, LLMSettings, ResponseCache, run_requests
from darecipe.ratelimit import Limits
from darecipe.testserver import FakeOpenAI, ServerLimits

WORDS = [
    "table",
    "row",
    "column",
    "value",
    "mean",
    "median",
    "total",
    "share",
    "growth",
    "region",
    "year",
    "month",
    "revenue",
    "cost",
    "price",
    "count",
    "missing",
    "duplicate",
    "join",
    "filter",
    "group",
    "sort",
    "rank",
    "ratio",
    "trend",
    "outlier",
    "sample",
    "model",
    "feature",
]
SCENARIOS = {  # prompt words, reply words (ranges) and max_tokens per request
    "tokens": ((150, 250), (150, 250), 400),  # ~400 tokens used per request: 375 requests/min fill 150K tokens/min
    "requests": ((10, 30), (10, 30), 60),  # ~40 tokens per request: 600 requests/min use ~24K tokens/min
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rpm", type=float, default=600)
    ap.add_argument("--tpm", type=float, default=150_000)
    ap.add_argument("--latency", type=float, default=2.0)
    ap.add_argument("--window", type=float, default=60.0, help="seconds measured")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds before the window starts")
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), default="tokens")
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    (p_lo, p_hi), (r_lo, r_hi), max_tokens = SCENARIOS[args.scenario]
    rng = random.Random(args.seed)

    def reply(messages, body):
        h = int(hashlib.sha256(messages[-1]["content"].encode()).hexdigest(), 16)
        return " ".join(WORDS[(h >> i) % len(WORDS)] for i in range(r_lo + h % (r_hi - r_lo + 1)))

    per_request = (p_lo + p_hi) / 2 + (r_lo + r_hi) / 2
    rate = min(args.rpm, args.tpm / per_request) / 60  # requests/s the limits allow
    n = math.ceil(rate * (args.warmup + args.window + 15))
    reqs = [
        LLMRequest(
            str(i),
            [
                {
                    "role": "user",
                    "content": f"task {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(p_lo, p_hi))),
                }
            ],
        )
        for i in range(n)
    ]
    os.environ["BENCH_DUMMY_KEY"] = "dummy"
    import httpx2  # noqa: F401 - library imports are start-up, not the measured run
    import openai  # noqa: F401

    with FakeOpenAI(reply=reply, latency_s=args.latency, limits=ServerLimits(args.rpm, args.tpm)) as server:
        settings = LLMSettings(
            backend="openai",
            model="bench",
            base_url=server.base_url,
            api_key_env="BENCH_DUMMY_KEY",
            max_in_flight=args.in_flight,
            timeout_s=30,
            max_retries=8,
            sampling={"max_tokens": max_tokens},
            limits=Limits(args.rpm, args.tpm),
        )
        t0 = time.monotonic()
        results, totals = run_requests(settings, reqs, ResponseCache(None), progress=False)
        elapsed = time.monotonic() - t0
        lo, hi = t0 + args.warmup, t0 + args.warmup + args.window
        window = [a for a in server.admissions if lo <= a.at < hi]
        refused, received = server.rate_limited, server.requests
    assert totals.failed == 0 and all(r.text for r in results), "the bench expects every request to be answered"
    if server.admissions[-1].at < hi:
        raise SystemExit(
            f"the run ended {hi - server.admissions[-1].at:.1f} s before the window did: raise the request count"
        )
    req_share = len(window) / (args.rpm * args.window / 60)
    tok_share = sum(a.tokens for a in window) / (args.tpm * args.window / 60)
    binding = "tokens/min" if tok_share >= req_share else "requests/min"
    print(
        f"{n} requests in {elapsed:.1f} s at {args.latency:g} s latency, {args.in_flight} in flight at most; "
        f"window {args.warmup:g}-{args.warmup + args.window:g} s: {len(window)} requests admitted"
    )
    print(
        f"requests/min: {100 * req_share:.1f} % of {args.rpm:,.0f}; tokens/min: {100 * tok_share:.1f} % of "
        f"{args.tpm:,.0f} (usage as reported); client retries {totals.retries}"
    )
    print(
        f"llm_ratelimit: {100 * max(req_share, tok_share):.1f} % of the binding limit ({binding}) over "
        f"{args.window:g} s; {refused} of {received} requests answered 429 ({100 * refused / received:.2f} %)"
    )


if __name__ == "__main__":
    main()
