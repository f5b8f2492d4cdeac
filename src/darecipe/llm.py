"""The teacher / judge LLM layer every synthesis stage uses.

- `openai` backend: the `openai` package's async client against any OpenAI-compatible endpoint, many requests
  in flight, paced by the provider's rate limits (`ratelimit.py`: requests and tokens per minute, `Retry-After`,
  `x-ratelimit-*` headers, a concurrency window that halves on 429), retried with exponential backoff on 429 /
  5xx / timeouts / connection errors / unparseable bodies.
- `vllm` backend: the same client against a vLLM server the job starts on its own GPUs (`serving.local_teacher`).
- `mode: batch` (one-shot steps only): the OpenAI Batch API, or `vllm run-batch` for the vllm backend
  (`llm_batch.py`), priced at the batch rate.
- `replay` backend: recorded responses shipped in the repository (the embedded default has no teacher model).
- A per-shard append-only cache: a rule killed at any moment and rerun repeats no completed request.

A request that failed only for transport, limit, server or account reasons is *unanswered* (`retryable`): the
rule reports it missing and a rerun asks again. Only the content's own failures (the provider refuses the
request itself, HTTP 400/413/422, or the reply stays empty) are final and may become rejects.

Requests are keyed by model, sampling parameters and the rendered messages only (no paths, no host names),
so the same key finds a response in the cache and in the recordings. The API key is read from the environment
variable the config *names*; its value is never written anywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .io import InputError, read_jsonl
from .ratelimit import Gate, Limits, RateState, retry_after_s

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
# The request itself is refused (too long, malformed for this model): asking again cannot help.
CONTENT_STATUS = {400, 413, 422}
EMPTY = "teacher reply empty"


def final_error(reason: str) -> str:
    """The reject reason of a request that failed for its content."""
    return reason if reason.startswith(EMPTY) else f"teacher request refused, {reason}"


@dataclass(frozen=True)
class BatchSettings:
    """`llm.batch`: the provider's batch limits and how long to wait."""

    max_requests: int = 50_000  # per input file (OpenAI's limit)
    max_bytes: int = 200_000_000  # per input file (OpenAI: 200 MB)
    completion_window: str = "24h"
    poll_s: float = 60.0
    max_rounds: int = 3  # batches per request before it counts as unanswered (or goes online)
    leftovers: str = "online"  # online: requests no batch answered are sent online; missing: reported missing

    @classmethod
    def from_config(cls, cfg: dict | None) -> BatchSettings:
        return cls(**{k: v for k, v in (cfg or {}).items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class LocalTeacher:
    """`llm.local`: the teacher's weights served by vLLM inside the job (backend `vllm`)."""

    model: str = ""  # weights directory ({model})
    gpus: int = 1  # {gpus}: tensor-parallel size
    serve_command: tuple = ()  # argv with {model} {port} {name} {gpus}
    run_batch_command: tuple = ()  # argv with {input} {output} {model} {name} {gpus}
    startup_timeout_s: float = 1800.0

    @classmethod
    def from_config(cls, cfg: dict | None) -> LocalTeacher:
        cfg = cfg or {}
        return cls(
            cfg.get("model") or "",
            cfg.get("gpus", 1),
            tuple(cfg.get("serve_command", ())),
            tuple(cfg.get("run_batch_command", ())),
            cfg.get("startup_timeout_s", 1800.0),
        )


@dataclass(frozen=True)
class LLMSettings:
    backend: str = "replay"
    model: str = "recorded-teacher"
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    max_in_flight: int = 16
    client_processes: int = 1
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    sampling: dict = field(default_factory=dict)
    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    price_batch_factor: float = 0.5  # batch requests cost this share of the online price
    recordings: str | None = None
    mode: str = "online"  # online | batch (batch: only where the caller allows it, see run_requests)
    limits: Limits = field(default_factory=Limits)
    on_missing: str = "fail"  # fail | write
    batch: BatchSettings = field(default_factory=BatchSettings)
    local: LocalTeacher = field(default_factory=LocalTeacher)

    @classmethod
    def from_config(cls, cfg: dict) -> LLMSettings:
        price = cfg.get("price", {})
        return cls(
            backend=cfg["backend"],
            model=cfg["model"],
            base_url=cfg.get("base_url"),
            api_key_env=cfg.get("api_key_env"),
            max_in_flight=cfg["max_in_flight"],
            client_processes=cfg.get("client_processes", 1),
            timeout_s=cfg["timeout_s"],
            max_retries=cfg["max_retries"],
            backoff_s=cfg["backoff_s"],
            backoff_max_s=cfg["backoff_max_s"],
            sampling=dict(cfg.get("sampling", {})),
            price_input_per_mtok=price.get("input_per_mtok", 0.0),
            price_output_per_mtok=price.get("output_per_mtok", 0.0),
            price_batch_factor=price.get("batch_factor", 0.5),
            recordings=cfg.get("recordings"),
            mode=cfg.get("mode", "online"),
            limits=Limits.from_config(cfg.get("limits")),
            on_missing=cfg.get("on_missing", "fail"),
            batch=BatchSettings.from_config(cfg.get("batch")),
            local=LocalTeacher.from_config(cfg.get("local")),
        )

    @property
    def max_output_tokens(self) -> int | None:
        return self.sampling.get("max_completion_tokens") or self.sampling.get("max_tokens")

    def body(self, messages: list[dict]) -> dict:
        """The chat-completion request body (online, and each line of a batch)."""
        return {"model": self.model, "messages": messages, **self.sampling}


@dataclass
class LLMRequest:
    id: str
    messages: list[dict]


@dataclass
class LLMResult:
    id: str
    key: str
    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0
    cached: bool = False
    error: str | None = None
    retryable: bool = False  # failed for transport/limit/server/account reasons: unanswered, not a reject
    batch: bool = False  # answered through a batch (priced at the batch rate)


class LLMError(InputError):
    """A configuration or recording problem that stops the rule (one line)."""


class MissingResponses(InputError):
    """Teacher requests still unanswered after their retries: the rule fails so that a rerun asks them again."""


class EmptyCompletion(ValueError):
    """A well-formed reply without text (e.g. cut at max_tokens before any content)."""


def request_key(model: str, sampling: dict, messages: list[dict]) -> str:
    blob = json.dumps({"model": model, "sampling": sampling, "messages": messages}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """Append-only JSONL of completed responses, one line per request, flushed and fsynced as they arrive.

    A line cut short by a kill is ignored when the file is read back."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, dict] = {}
        if self.path and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                    self.entries[rec["key"]] = rec
                except (ValueError, KeyError, TypeError):
                    continue
        self._fh = None

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(
        self, key: str, rec_id: str, text: str, prompt_tokens: int, completion_tokens: int, sync: bool = True
    ) -> None:
        """Add a response; `sync=False` leaves the fsync to a later `sync()` (a batch's many answers)."""
        rec = {
            "key": key,
            "id": rec_id,
            "text": text,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        }
        self.entries[key] = rec
        if self.path is None:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
            if self._fh.tell():
                # A previous attempt may have died mid-line: start on a fresh line.
                self._fh.write("\n")
        self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        if sync:
            self.sync()

    def sync(self) -> None:
        if self._fh:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None


class Recordings:
    """Recorded teacher responses (JSONL lines with id, key, response) for the replay backend."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.by_key: dict[str, str] = {}
        self.ids: dict[str, str] = {}  # record id -> the file holding a recording of it
        files = sorted(self.root.glob("*.jsonl")) if self.root.is_dir() else []  # sources/ holds no recordings
        for path in files:
            for lineno, rec in read_jsonl(path):
                if not isinstance(rec.get("key"), str) or not isinstance(rec.get("response"), str):
                    raise InputError(f"{path}:{lineno}: a recording needs string fields 'key' and 'response'")
                self.by_key[rec["key"]] = rec["response"]
                self.ids.setdefault(str(rec.get("id")), path.name)

    def missing_error(self, missing: list[tuple[LLMRequest, str]], dump: Path | None) -> LLMError:
        req, key = missing[0]
        if req.id in self.ids:  # the same record under another prompt: a changed prompt, or a new set over its tasks
            why = (
                f"{self.ids[req.id]} records this record for another prompt or sampling: re-key that file if its "
                "prompt changed on purpose; a new set over the same tasks needs recordings of its own"
            )
        else:
            why = "no recording for this record"
        where = f"; all {len(missing)} missing requests were written to {dump}" if dump else ""
        return LLMError(
            f"replay backend: {len(missing)} request(s) have no recorded response under {self.root}, first: record "
            f"{req.id!r} (key {key[:16]}): {why}{where}. See `python -m darecipe.recordings --help`."
        )


@dataclass
class Totals:
    requests_sent: int = 0
    responses: int = 0
    from_cache: int = 0
    failed: int = 0
    missing: int = 0  # of the failed: unanswered (transport, limits, server), asked again by a rerun
    retries: int = 0
    rate_limited: int = 0  # 429 replies
    batches: int = 0  # batches submitted
    batch_requests: int = 0  # requests submitted in them
    batch_responses: int = 0  # of the responses: answered through a batch
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _api_key(settings: LLMSettings) -> str:
    name = settings.api_key_env
    if not name:
        return "not-needed"
    value = os.environ.get(name)
    if not value:
        raise LLMError(f"llm.api_key_env: environment variable {name} is not set (it must hold the API key)")
    return value


def _classify(exc: Exception) -> tuple[bool, bool, str]:
    """(worth retrying, the content's fault, reason) for a failed request."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
        detail = str(err.get("message") or "")[:200]
        reason = f"HTTP {status}" + (f": {detail}" if detail else "")
        if status == 429 and err.get("code") == "insufficient_quota":
            return False, False, reason  # billing: waiting will not help, but the request is not at fault
        if status in CONTENT_STATUS:
            return False, True, reason
        return status in RETRYABLE_STATUS or status >= 500, False, reason
    if isinstance(exc, openai.APITimeoutError):
        return True, False, "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return True, False, f"connection error ({type(exc.__cause__).__name__ if exc.__cause__ else 'closed'})"
    if isinstance(exc, EmptyCompletion):
        return True, True, f"{EMPTY} ({exc})"
    if isinstance(exc, (openai.APIResponseValidationError, ValueError)):
        return True, False, f"unparseable response ({type(exc).__name__})"
    return False, False, f"{type(exc).__name__}: {exc}"


def run_requests(
    settings: LLMSettings,
    requests: list[LLMRequest],
    cache: ResponseCache,
    progress: bool = True,
    batch_ok: bool = False,
) -> tuple[list[LLMResult], Totals]:
    """Answer every request (cache first), in input order; a request that keeps failing gets `error` set, and
    `retryable` when it was not the content's fault. `batch_ok`: the caller's requests are one-shot, so
    `llm.mode: batch` may send them as a batch (multi-turn callers leave it off and stay online)."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(_run(settings, requests, cache, progress, batch_ok))


def event_loop_factory():
    """uvloop's event loop where it is installed (about half the per-request CPU of asyncio's own loop)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _run(settings, requests, cache, progress, batch_ok):
    start = time.monotonic()
    totals = Totals()
    results: list[LLMResult | None] = [None] * len(requests)
    pending: list[tuple[int, LLMRequest, str]] = []
    for i, req in enumerate(requests):
        key = request_key(settings.model, settings.sampling, req.messages)
        hit = cache.get(key)
        if hit is not None:
            results[i] = LLMResult(
                req.id, key, hit["text"], hit.get("prompt_tokens", 0), hit.get("completion_tokens", 0), 0, cached=True
            )
            totals.from_cache += 1
        else:
            pending.append((i, req, key))
    bar = _progress_bar(len(requests), totals.from_cache, settings.model, progress)
    try:
        if settings.backend == "replay":
            _replay(settings, pending, cache, results, totals, bar)
        elif pending:

            def record(i: int, res: LLMResult) -> None:
                if res.text is not None and cache.get(res.key) is None:  # batch answers are cached as they arrive
                    cache.put(res.key, res.id, res.text, res.prompt_tokens, res.completion_tokens)
                results[i] = res
                bar.update(1)

            if batch_ok and settings.mode == "batch":
                from .llm_batch import answer_in_batches

                pending = await answer_in_batches(settings, pending, cache, totals, record)
            if settings.client_processes > 1 and len(pending) > settings.client_processes:
                for i, res in _in_processes(settings, pending, totals):
                    record(i, res)
            elif pending:
                await _answer(settings, pending, totals, record)
    finally:
        bar.close()
    cost = 0.0
    for r in results:
        if r.error is None and not r.cached:
            totals.prompt_tokens += r.prompt_tokens
            totals.completion_tokens += r.completion_tokens
            usd = (
                r.prompt_tokens * settings.price_input_per_mtok + r.completion_tokens * settings.price_output_per_mtok
            ) / 1e6
            cost += usd * (settings.price_batch_factor if r.batch else 1.0)
        elif r.error is not None:
            totals.failed += 1
            totals.missing += r.retryable
    totals.cost_usd = cost
    totals.seconds = time.monotonic() - start
    return results, totals


def _replay(settings, pending, cache, results, totals, bar) -> None:
    recordings = Recordings(settings.recordings or "resources/recordings")
    missing = [(req, key) for _, req, key in pending if key not in recordings.by_key]
    if missing:
        dump = cache.path.with_suffix(".missing.jsonl") if cache.path else None
        if dump:
            dump.parent.mkdir(parents=True, exist_ok=True)
            with open(dump, "w", encoding="utf-8") as f:
                for req, key in missing:
                    f.write(json.dumps({"id": req.id, "key": key, "messages": req.messages}, ensure_ascii=False) + "\n")
        raise recordings.missing_error(missing, dump)
    for i, req, key in pending:
        text = recordings.by_key[key]
        results[i] = LLMResult(req.id, key, text, attempts=0)
        cache.put(key, req.id, text, 0, 0)
        totals.responses += 1
        bar.update(1)


def _in_processes(settings: LLMSettings, pending: list, totals: Totals):
    """Answer `pending` from `client_processes` forked workers, each an async client with its share of the
    requests in flight and of the rate limits; yields (index, result) as they arrive. One client process spends
    about 0.7 ms of CPU per request in the openai package, which caps it near 1,400 requests/s: more processes
    lift that ceiling."""
    import dataclasses
    import multiprocessing
    import queue as queue_mod

    import httpx2  # noqa: F401 - imported once here, not in every forked worker
    import openai  # noqa: F401

    n = settings.client_processes
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    share = dataclasses.replace(
        settings,
        max_in_flight=max(1, -(-settings.max_in_flight // n)),
        client_processes=1,
        limits=settings.limits.scaled(1 / n),
    )
    workers = [ctx.Process(target=_worker, args=(share, pending[k::n], q), daemon=True) for k in range(n)]
    for w in workers:
        w.start()
    left, running = len(pending), n
    try:
        while left or running:
            try:
                msg = q.get(timeout=1.0)
            except queue_mod.Empty:
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"an LLM client process exited with status {dead[0].exitcode}") from None
                continue
            if msg[0] == "totals":
                for k, v in msg[1].items():
                    setattr(totals, k, getattr(totals, k) + v)
                running -= 1
            else:
                left -= 1
                yield msg
    finally:
        for w in workers:
            w.join(5)
            if w.is_alive():
                w.kill()


# One rate state per endpoint, model and limits in this process: the agent loop calls run_requests once per
# turn, and each call must see what the previous ones spent and learned.
_RATE_STATES: dict[tuple, RateState] = {}


def rate_state(settings: LLMSettings) -> RateState:
    key = (settings.base_url, settings.model, settings.limits, settings.max_in_flight)
    if key not in _RATE_STATES:
        _RATE_STATES[key] = RateState(settings.limits, settings.max_in_flight)
    return _RATE_STATES[key]


async def _answer(settings: LLMSettings, items: list, totals: Totals, on_result) -> None:
    """Send `items` ((index, request, key)) through one async client, as the rate limits and the concurrency
    window allow, calling `on_result(index, result)` as each request ends."""
    client = _client(settings)
    gate = Gate(rate_state(settings))

    async def one(i, req, key):
        res = await _complete(client, settings, req, key, totals, gate)
        on_result(i, res)

    try:
        await asyncio.gather(*(one(i, req, key) for i, req, key in items))
    finally:
        await client.close()


def _worker(settings: LLMSettings, items: list, q) -> None:
    async def main():
        totals = Totals()
        await _answer(settings, items, totals, lambda i, res: q.put((i, res)))
        q.put(("totals", {k: getattr(totals, k) for k in ("requests_sent", "responses", "retries", "rate_limited")}))

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main())
    # Everything is sent: flush the queue and leave without the interpreter's teardown, which in a process forked
    # from a threaded parent can wait on a lock some other thread held at the fork.
    q.close()
    q.join_thread()
    os._exit(0)


def _client(settings: LLMSettings, max_retries: int = 0):
    import httpx2  # the HTTP library openai 3.x is built on
    from openai import AsyncOpenAI, DefaultAioHttpClient

    # The SDK's default httpx pool serialises past a few dozen connections (measured: 55 req/s at 256 in
    # flight); its aiohttp transport does not.
    return AsyncOpenAI(
        api_key=_api_key(settings),
        base_url=settings.base_url,
        timeout=settings.timeout_s,
        # Chat completions: retries are ours (counted, logged, and shared through the rate state: the SDK's own
        # honour Retry-After per request but know nothing of the other requests in flight).
        max_retries=max_retries,
        http_client=DefaultAioHttpClient(
            timeout=settings.timeout_s,
            limits=httpx2.Limits(
                max_connections=settings.max_in_flight, max_keepalive_connections=settings.max_in_flight
            ),
        ),
    )


async def _complete(client, settings: LLMSettings, req: LLMRequest, key: str, totals: Totals, gate: Gate) -> LLMResult:
    state = gate.state
    cost = state.estimate(req.messages, settings.max_output_tokens)
    last, content = "", False
    for attempt in range(1, settings.max_retries + 2):
        await gate.acquire(cost)
        totals.requests_sent += 1
        wait = None
        try:
            data, headers = await _chat_completion(client, settings, req.messages)
            state.observe(headers, time.monotonic())
            usage = data.get("usage") or {}
            prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            state.settle(cost, prompt + completion if usage else None)
            state.learn_usage(req.messages, prompt, completion)
            choices = data.get("choices") or []
            text = (choices[0].get("message") or {}).get("content") if choices else None
            if not isinstance(text, str) or not text:
                why = choices[0].get("finish_reason") if choices else "no choices"
                raise EmptyCompletion(f"finish_reason: {why}")
            state.succeeded()
            totals.responses += 1
            return LLMResult(req.id, key, text, prompt, completion, attempt)
        except Exception as exc:  # noqa: BLE001 - classified below; non-retryable ones end the request
            retry, content, last = _classify(exc)
            headers = getattr(getattr(exc, "response", None), "headers", None)
            if getattr(exc, "status_code", None) == 429:
                state.refund(cost)
                totals.rate_limited += 1
                wait = state.rate_limited_reply(headers, time.monotonic(), _backoff(settings, attempt))
            elif headers is not None:
                state.observe(headers, time.monotonic())
                wait = retry_after_s(headers)
            if not retry or attempt > settings.max_retries:
                break
        finally:
            gate.release()
        totals.retries += 1
        delay = wait if wait is not None else _backoff(settings, attempt)
        logger.info(f"{req.id}: {last}; retry {attempt}/{settings.max_retries} in {delay:.1f} s")
        await asyncio.sleep(delay)
    if content:
        return LLMResult(req.id, key, None, attempts=attempt, error=final_error(last))
    return LLMResult(
        req.id, key, None, attempts=attempt, retryable=True, error=f"no answer after {attempt} attempt(s): {last}"
    )


def _backoff(settings: LLMSettings, attempt: int) -> float:
    return min(settings.backoff_max_s, settings.backoff_s * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


async def _chat_completion(client, settings: LLMSettings, messages: list[dict]) -> tuple[dict, object]:
    """POST /chat/completions through the client's transport and errors, but with the request body passed as
    plain JSON and the reply parsed with `json`: the SDK's typed request transform and response models cost
    about 1 ms per request, which caps throughput at a few hundred requests per second. Returns the reply and
    its headers (rate-limit state)."""
    import httpx2

    raw = await client.post("/chat/completions", body=settings.body(messages), cast_to=httpx2.Response)
    data = json.loads(raw.content)
    if not isinstance(data, dict):
        raise ValueError("response body is not a JSON object")
    return data, raw.headers


def sort_failure(failure, where: str, item_id: str, missing: list, rejects) -> None:
    """A teacher call that failed (an `LLMResult`, or a trajectory its failed call stopped): unanswered (transport,
    limits, server) goes to `missing`, asked again by a rerun; refused for its content is a reject of `item_id`."""
    if failure.retryable:
        missing.append(failure)
    else:
        rejects.add(where, item_id, failure.error)


def report_missing(missing: dict[str, list], settings: LLMSettings) -> dict[str, int]:
    """Stop the rule when teacher requests stayed unanswered (`llm.on_missing: fail`), or say so and go on
    (`write`). `missing` maps a role to its unanswered items, each with `.id` and `.error`. Returns the counts."""
    counts = {role: len(items) for role, items in missing.items() if items}
    total = sum(counts.values())
    if not total:
        return {}
    first = next(item for items in missing.values() for item in items)
    what = (
        f"{total} teacher request(s) unanswered ({', '.join(f'{r} {n}' for r, n in counts.items())}; first: "
        f"{first.id}: {first.error})"
    )
    if settings.on_missing == "fail":
        raise MissingResponses(
            f"{what}. Answered requests are cached: a plain rerun asks exactly these again "
            "(or set llm.on_missing: write to keep what was answered)"
        )
    logger.warning(
        f"{what}; llm.on_missing: write, so the outputs are written without them (metrics 'missing'). "
        "To complete them later, rerun this rule with --forcerun: answered requests come from the cache."
    )
    return counts


def _progress_bar(total: int, done: int, model: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=done,
        desc=f"LLM {model}",
        unit="req",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        mininterval=1.0,
    )
