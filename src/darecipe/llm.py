"""The teacher / judge LLM layer every synthesis stage uses.

- `openai` backend: the `openai` package's async client against any OpenAI-compatible endpoint, many requests
  in flight, retries with exponential backoff on 429 / 5xx / timeouts / connection errors / unparseable bodies.
- `replay` backend: recorded responses shipped in the repository (the embedded default has no teacher model).
- A per-shard append-only cache: a rule killed at any moment and rerun repeats no completed request.

Requests are keyed by model, sampling parameters and the rendered messages only (no paths, no host names),
so the same key finds a response in the cache and in the recordings. The API key is read from the environment
variable the config *names*; its value is never written anywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .io import InputError, read_jsonl

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


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
    recordings: str | None = None

    @classmethod
    def from_config(cls, cfg: dict) -> "LLMSettings":
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
            recordings=cfg.get("recordings"),
        )


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


class LLMError(InputError):
    """A configuration or recording problem that stops the rule (one line)."""


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

    def put(self, key: str, rec_id: str, text: str, prompt_tokens: int, completion_tokens: int) -> None:
        rec = {"key": key, "id": rec_id, "text": text, "prompt_tokens": prompt_tokens,
               "completion_tokens": completion_tokens}  # fmt: skip
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
        self.ids: set[str] = set()
        files = sorted(self.root.glob("*.jsonl")) if self.root.is_dir() else []  # sources/ holds no recordings
        for path in files:
            for lineno, rec in read_jsonl(path):
                if not isinstance(rec.get("key"), str) or not isinstance(rec.get("response"), str):
                    raise InputError(f"{path}:{lineno}: a recording needs string fields 'key' and 'response'")
                self.by_key[rec["key"]] = rec["response"]
                self.ids.add(str(rec.get("id")))

    def missing_error(self, missing: list[tuple[LLMRequest, str]], dump: Path | None) -> LLMError:
        req, key = missing[0]
        why = ("a recording exists for this record but for another prompt or sampling (re-key it)"
               if req.id in self.ids else "no recording for this record")  # fmt: skip
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
    retries: int = 0
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


def _retryable(exc: Exception) -> tuple[bool, str]:
    import openai

    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500, f"HTTP {exc.status_code}"
    if isinstance(exc, openai.APITimeoutError):
        return True, "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return True, f"connection error ({type(exc.__cause__).__name__ if exc.__cause__ else 'closed'})"
    if isinstance(exc, (openai.APIResponseValidationError, ValueError)):
        return True, f"unparseable response ({type(exc).__name__})"
    return False, f"{type(exc).__name__}: {exc}"


def run_requests(settings: LLMSettings, requests: list[LLMRequest], cache: ResponseCache, log=None,
                 progress: bool = True) -> tuple[list[LLMResult], Totals]:  # fmt: skip
    """Answer every request (cache first), in input order; a request that keeps failing gets `error` set."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(_run(settings, requests, cache, log, progress))


def event_loop_factory():
    """uvloop's event loop where it is installed (about half the per-request CPU of asyncio's own loop)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _run(settings, requests, cache, log, progress):
    start = time.monotonic()
    totals = Totals()
    results: list[LLMResult | None] = [None] * len(requests)
    pending: list[tuple[int, LLMRequest, str]] = []
    for i, req in enumerate(requests):
        key = request_key(settings.model, settings.sampling, req.messages)
        hit = cache.get(key)
        if hit is not None:
            results[i] = LLMResult(req.id, key, hit["text"], hit.get("prompt_tokens", 0),
                                   hit.get("completion_tokens", 0), 0, cached=True)  # fmt: skip
            totals.from_cache += 1
        else:
            pending.append((i, req, key))
    bar = _progress_bar(len(requests), totals.from_cache, settings.model, progress)
    try:
        if settings.backend == "replay":
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
        elif pending:

            def record(i: int, res: LLMResult) -> None:
                if res.text is not None:
                    cache.put(res.key, res.id, res.text, res.prompt_tokens, res.completion_tokens)
                results[i] = res
                bar.update(1)

            if settings.client_processes > 1 and len(pending) > settings.client_processes:
                for i, res in _in_processes(settings, pending, totals, log):
                    record(i, res)
            else:
                await _answer(settings, pending, totals, log, record)
    finally:
        bar.close()
    for r in results:
        if r.error is None and not r.cached:
            totals.prompt_tokens += r.prompt_tokens
            totals.completion_tokens += r.completion_tokens
    totals.cost_usd = (totals.prompt_tokens * settings.price_input_per_mtok
                       + totals.completion_tokens * settings.price_output_per_mtok) / 1e6  # fmt: skip
    totals.seconds = time.monotonic() - start
    return results, totals


def _in_processes(settings: LLMSettings, pending: list, totals: Totals, log):
    """Answer `pending` from `client_processes` forked workers, each an async client with its share of the
    requests in flight; yields (index, result) as they arrive. One client process spends about 0.7 ms of CPU per
    request in the openai package, which caps it near 1,400 requests/s: more processes lift that ceiling."""
    import dataclasses
    import multiprocessing
    import queue as queue_mod

    import httpx2  # noqa: F401 - imported once here, not in every forked worker
    import openai  # noqa: F401

    n = settings.client_processes
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    share = dataclasses.replace(settings, max_in_flight=max(1, -(-settings.max_in_flight // n)), client_processes=1)
    workers = [ctx.Process(target=_worker, args=(share, pending[k::n], q, log), daemon=True) for k in range(n)]
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


async def _answer(settings: LLMSettings, items: list, totals: Totals, log, on_result) -> None:
    """Send `items` ((index, request, key)) through one async client, `max_in_flight` at a time, calling
    `on_result(index, result)` as each request ends."""
    client = _client(settings)
    sem = asyncio.Semaphore(settings.max_in_flight)

    async def one(i, req, key):
        async with sem:
            res = await _complete(client, settings, req, key, totals, log)
        on_result(i, res)

    try:
        await asyncio.gather(*(one(i, req, key) for i, req, key in items))
    finally:
        await client.close()


def _worker(settings: LLMSettings, items: list, q, log) -> None:
    async def main():
        totals = Totals()
        await _answer(settings, items, totals, log, lambda i, res: q.put((i, res)))
        q.put(("totals", {k: getattr(totals, k) for k in ("requests_sent", "responses", "failed", "retries")}))

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main())
    # Everything is sent: flush the queue and leave without the interpreter's teardown, which in a process forked
    # from a threaded parent can wait on a lock some other thread held at the fork.
    q.close()
    q.join_thread()
    os._exit(0)


def _client(settings: LLMSettings):
    import httpx2  # the HTTP library openai 3.x is built on
    from openai import AsyncOpenAI, DefaultAioHttpClient

    # The SDK's default httpx pool serialises past a few dozen connections (measured: 55 req/s at 256 in
    # flight); its aiohttp transport does not.
    return AsyncOpenAI(
        api_key=_api_key(settings),
        base_url=settings.base_url,
        timeout=settings.timeout_s,
        max_retries=0,  # retries are ours: counted, logged, with our backoff
        http_client=DefaultAioHttpClient(
            timeout=settings.timeout_s,
            limits=httpx2.Limits(max_connections=settings.max_in_flight, max_keepalive_connections=settings.max_in_flight),
        ),
    )


async def _complete(client, settings: LLMSettings, req: LLMRequest, key: str, totals: Totals, log) -> LLMResult:
    last = ""
    for attempt in range(1, settings.max_retries + 2):
        totals.requests_sent += 1
        try:
            data = await _chat_completion(client, settings, req.messages)
            choices = data.get("choices") or []
            text = (choices[0].get("message") or {}).get("content") if choices else None
            if not isinstance(text, str) or not text:
                raise ValueError("no completion text in the response")
            usage = data.get("usage") or {}
            totals.responses += 1
            return LLMResult(req.id, key, text, int(usage.get("prompt_tokens") or 0),
                             int(usage.get("completion_tokens") or 0), attempt)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - classified below; non-retryable ones end the request
            retry, last = _retryable(exc)
            if not retry or attempt > settings.max_retries:
                break
            totals.retries += 1
            delay = min(settings.backoff_max_s, settings.backoff_s * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            if log:
                log(f"{req.id}: {last}; retry {attempt}/{settings.max_retries} in {delay:.1f} s")
            await asyncio.sleep(delay)
    totals.failed += 1
    return LLMResult(req.id, key, None, attempts=attempt, error=f"llm failed after {attempt} attempt(s): {last}")


async def _chat_completion(client, settings: LLMSettings, messages: list[dict]) -> dict:
    """POST /chat/completions through the client's transport, retries and errors, but with the request body
    passed as plain JSON and the reply parsed with `json`: the SDK's typed request transform and response
    models cost about 1 ms per request, which caps throughput at a few hundred requests per second."""
    import httpx2

    body = {"model": settings.model, "messages": messages, **settings.sampling}
    raw = await client.post("/chat/completions", body=body, cast_to=httpx2.Response)
    data = json.loads(raw.content)
    if not isinstance(data, dict):
        raise ValueError("response body is not a JSON object")
    return data


def _progress_bar(total: int, done: int, model: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc=f"LLM {model}", unit="req", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, mininterval=1.0)  # fmt: skip
