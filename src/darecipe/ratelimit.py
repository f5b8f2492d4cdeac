"""A provider's rate limits, kept on the client side so that requests are paced instead of refused.

Providers meter requests per minute and tokens per minute, refilled continuously. A token is spent when the
request is admitted, on an estimate (the prompt's size plus the `max_tokens` the request may generate), and the
estimate is corrected once the reply reports its usage: OpenAI documents the estimate, Anthropic the
correction. This module mirrors that with two token buckets per endpoint:

- before a request is sent, one request and its estimated tokens are taken (waiting for the refill if needed);
- when the reply arrives, the estimate is replaced by the usage it reports, and the prompt-size-to-token ratio
  is learned from it;
- `x-ratelimit-limit-*` headers set the limits where the config gives none, `x-ratelimit-remaining-*` lower the
  buckets to what the provider says is left (other jobs may share the same key);
- a 429 pauses every sender until its `retry-after-ms` / `Retry-After` time and halves the concurrency window,
  which then grows back by one request per window of successes (AIMD, as TCP does).

Pure bookkeeping (`Bucket`, `RateState`) is separate from the asyncio gate (`Gate`), so it is testable with a
fake clock and survives from one event loop to the next (the agent loop starts one per turn).
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import re
import time
from dataclasses import dataclass, field

# Before any usage is reported: about 4 characters per token for English text and code (a deliberate
# over-estimate for most prompts; the ratio is learned from the first replies).
INITIAL_TOKENS_PER_CHAR = 0.3
_DURATION_RE = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?")


@dataclass(frozen=True)
class Limits:
    """`llm.limits`: the provider's per-minute limits for this job (None: not limited, or learned from headers)."""

    requests_per_min: float | None = None
    tokens_per_min: float | None = None
    headroom: float = 0.98  # pace at this share of a limit, so estimate errors never reach it
    burst_s: float = 1.0  # a bucket holds this many seconds of refill (at least one request's worth)

    @classmethod
    def from_config(cls, cfg: dict | None) -> Limits:
        cfg = cfg or {}
        return cls(
            cfg.get("requests_per_min"), cfg.get("tokens_per_min"), cfg.get("headroom", 0.98), cfg.get("burst_s", 1.0)
        )

    def scaled(self, share: float) -> Limits:
        """The limits one of several client processes gets."""
        rpm = self.requests_per_min * share if self.requests_per_min else None
        tpm = self.tokens_per_min * share if self.tokens_per_min else None
        return Limits(rpm, tpm, self.headroom, self.burst_s)


@dataclass
class Bucket:
    """Units refilled at `per_min / 60` per second up to `capacity`. A request larger than the capacity waits
    for a full bucket and leaves it in debt, so it is still paced at the refill rate."""

    per_min: float
    capacity: float
    level: float
    stamp: float

    @classmethod
    def new(cls, per_min: float, burst_s: float, now: float) -> Bucket:
        capacity = per_min / 60.0 * burst_s
        return cls(per_min, capacity, capacity, now)

    @property
    def rate(self) -> float:
        return self.per_min / 60.0

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, cost: float, now: float) -> float:
        """Seconds until `cost` units may be taken (0: now)."""
        self.refill(now)
        need = min(cost, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, cost: float) -> None:
        self.level -= cost

    def give(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)

    def at_most(self, remaining: float, now: float) -> None:
        """The provider says only `remaining` is left: never believe there is more."""
        self.refill(now)
        self.level = min(self.level, remaining)

    def retune(self, per_min: float, burst_s: float) -> None:
        self.per_min = per_min
        self.capacity = per_min / 60.0 * burst_s
        self.level = min(self.level, self.capacity)


def parse_duration(text: str | None) -> float | None:
    """OpenAI's reset durations ("1s", "6m0s", "20ms", "1h2m3.5s", "0.5s") in seconds; None if unreadable."""
    if not text:
        return None
    text = text.strip()
    m = _DURATION_RE.fullmatch(text)
    if not m or not any(m.groups()):
        try:
            return float(text)
        except ValueError:
            return None
    h, mins, s, ms = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mins * 60 + s + ms / 1000


def retry_after_s(headers, now_epoch: float | None = None) -> float | None:
    """The wait a reply asks for: `retry-after-ms`, else `Retry-After` (seconds or an HTTP date)."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            delay = float(value) / divisor
        except ValueError:
            continue
        return delay if math.isfinite(delay) and delay >= 0 else None
    value = headers.get("retry-after")
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when - (time.time() if now_epoch is None else now_epoch))
    return None


def _number(headers, name: str) -> float | None:
    value = headers.get(name) if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass
class RateState:
    """What one client knows about one endpoint's limits; lives across event loops."""

    limits: Limits
    max_in_flight: int
    requests: Bucket | None = None
    tokens: Bucket | None = None
    window: float = 0.0  # requests allowed in flight now (AIMD), at most max_in_flight
    paused_until: float = 0.0
    tokens_per_char: float = INITIAL_TOKENS_PER_CHAR
    completion_mean: float = 256.0  # completion tokens expected when the request sets no max_tokens
    learned: dict = field(default_factory=dict)  # per-minute limits read from headers
    rate_limited: int = 0  # 429 replies seen

    def __post_init__(self) -> None:
        now = time.monotonic()
        self.window = float(self.max_in_flight)
        lim = self.limits
        if lim.requests_per_min:
            self.requests = Bucket.new(
                lim.requests_per_min * lim.headroom, max(lim.burst_s, 60.0 / lim.requests_per_min), now
            )
        if lim.tokens_per_min:
            self.tokens = Bucket.new(lim.tokens_per_min * lim.headroom, lim.burst_s, now)

    # ------------------------------------------------------------ estimates

    def estimate(self, messages: list[dict], max_tokens: int | None) -> int:
        chars = sum(len(str(m.get("content") or "")) for m in messages)
        out = max_tokens if max_tokens else self.completion_mean
        return int(math.ceil(chars * self.tokens_per_char + 4 * len(messages) + out))

    def learn_usage(self, messages: list[dict], prompt_tokens: int, completion_tokens: int) -> None:
        chars = sum(len(str(m.get("content") or "")) for m in messages)
        if chars and prompt_tokens:
            # A slow average that leans high: under-estimating is what earns 429s.
            ratio = prompt_tokens / chars
            self.tokens_per_char = max(ratio, 0.9 * self.tokens_per_char + 0.1 * ratio)
        if completion_tokens:
            self.completion_mean = 0.9 * self.completion_mean + 0.1 * completion_tokens

    # ------------------------------------------------------------ admission

    def wait(self, cost: int, now: float) -> float:
        """Seconds until a request costing `cost` tokens may be sent (0: now)."""
        waits = [self.paused_until - now]
        if self.requests:
            waits.append(self.requests.wait(1, now))
        if self.tokens:
            waits.append(self.tokens.wait(cost, now))
        return max(0.0, *waits)

    def take(self, cost: int) -> None:
        if self.requests:
            self.requests.take(1)
        if self.tokens:
            self.tokens.take(cost)

    def settle(self, reserved: int, actual: int | None) -> None:
        """Replace a request's reservation by the usage its reply reported (None: keep the reservation)."""
        if self.tokens and actual is not None:
            self.tokens.give(reserved - actual)

    def refund(self, reserved: int) -> None:
        """A request the provider refused (429) spent no tokens."""
        if self.tokens:
            self.tokens.give(reserved)

    # ------------------------------------------------------------ what the provider says

    def observe(self, headers, now: float) -> None:
        """Limits and remaining budget from `x-ratelimit-*` headers."""
        if headers is None:
            return
        lim = self.limits
        for dim, configured in (("requests", lim.requests_per_min), ("tokens", lim.tokens_per_min)):
            limit = _number(headers, f"x-ratelimit-limit-{dim}")
            remaining = _number(headers, f"x-ratelimit-remaining-{dim}")
            bucket = getattr(self, dim)
            if limit and limit > 0 and (configured is None or limit < configured) and self.learned.get(dim) != limit:
                self.learned[dim] = limit
                per_min = limit * lim.headroom
                burst = max(lim.burst_s, 60.0 / limit) if dim == "requests" else lim.burst_s
                if bucket is None:
                    bucket = Bucket.new(per_min, burst, now)
                    setattr(self, dim, bucket)
                else:
                    bucket.retune(per_min, burst)
            if bucket is not None and remaining is not None:
                bucket.at_most(remaining, now)

    def rate_limited_reply(self, headers, now: float, fallback_s: float) -> float:
        """A 429: everyone waits for the time the provider asks (else `fallback_s`), and the window halves.
        Returns the wait."""
        self.rate_limited += 1
        self.observe(headers, now)
        wait = retry_after_s(headers)
        if wait is None:
            resets = [
                parse_duration(headers.get(f"x-ratelimit-reset-{d}")) if headers is not None else None
                for d in ("requests", "tokens")
            ]
            wait = min([r for r in resets if r is not None] + [fallback_s])
        self.paused_until = max(self.paused_until, now + wait)
        self.window = max(1.0, self.window / 2)
        return wait

    def succeeded(self) -> None:
        self.window = min(float(self.max_in_flight), self.window + 1.0 / max(self.window, 1.0))


class Gate:
    """The asyncio side of a `RateState` for one event loop: requests pass one at a time, in order, when the
    buckets, the pause and the concurrency window allow."""

    def __init__(self, state: RateState):
        self.state = state
        self.in_flight = 0
        self._lock = asyncio.Lock()
        self._freed = asyncio.Event()

    async def acquire(self, cost: int) -> None:
        st = self.state
        async with self._lock:
            while True:
                delay = st.wait(cost, time.monotonic())
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue
                if self.in_flight < int(st.window):
                    break
                self._freed.clear()
                await self._freed.wait()
            st.take(cost)
            self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        self._freed.set()
