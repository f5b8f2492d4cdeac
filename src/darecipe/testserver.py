"""A real OpenAI-compatible HTTP server for tests and benchmarks (127.0.0.1 only): `POST /v1/chat/completions`,
`POST /v1/completions` (what a vLLM server answers for evaluation), `GET /v1/models`, and the Batch API
(`POST /v1/files`, `GET /v1/files/{id}/content`, `POST /v1/batches`, `GET /v1/batches[/{id}]`).

Replies are scripted by a function of the request; latency and faults are configurable: HTTP 429, HTTP 500,
a hang (the client times out), a malformed JSON body, a truncated body. With `limits` it enforces requests and
tokens per minute as a provider does (token buckets refilled continuously; tokens charged on admission as the
prompt plus `max_tokens`, corrected to the reported usage when the reply is sent), refusing what is over budget
with 429 and `Retry-After` / `retry-after-ms`, and sends OpenAI's `x-ratelimit-*` headers. Batches go through
validating, in_progress, finalizing and completed (or failed / expired), with output and error files in
OpenAI's format. It counts what it receives.

    python -m darecipe.testserver --port 8765 --latency 0.2      # serve until interrupted
    python -m darecipe.testserver --port 8765 --completion '<Answer>42</Answer>'   # a fixed completion
    python -m darecipe.testserver --port 8765 --recordings resources/recordings    # the recorded teacher and a judge
    python -m darecipe.testserver --port 8765 --rpm 600 --tpm 150000 --latency 2   # a rate-limited provider

It also stands in for vLLM's two entry points, taking the same arguments (for tests without a GPU), answering
from recorded responses (`--replay`) or echoing:

    python -m darecipe.testserver serve MODEL --port P --served-model-name N [--replay DIR]
    python -m darecipe.testserver run-batch -i IN.jsonl -o OUT.jsonl --model MODEL [--replay DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .ratelimit import Bucket

FAULTS = ("429", "500", "hang", "malformed_json", "truncated")
BATCH_STEP_S = 0.05  # seconds a batch spends in each state before the next


def echo_reply(messages: list[dict], body: dict) -> str:
    return f"reply to: {messages[-1]['content'][:80]}"


def count_tokens(text: str) -> int:
    """The test server's tokenizer: whitespace-separated words."""
    return len(text.split())


def prompt_tokens(body: dict) -> int:
    return sum(count_tokens(str(m.get("content") or "")) for m in body.get("messages", []))


@dataclass
class ServerLimits:
    """A provider's limits; the buckets hold `burst_s` seconds of budget (a minute's worth, as OpenAI's
    reset headers describe)."""

    requests_per_min: float | None = None
    tokens_per_min: float | None = None
    burst_s: float = 60.0


@dataclass
class Admission:
    at: float  # monotonic time the request was admitted
    tokens: int  # tokens charged: the reservation, then the reported usage


@dataclass
class BatchJob:
    obj: dict
    lines: list[dict] = field(default_factory=list)


def _duration(seconds: float) -> str:
    """OpenAI's reset format: "6m0s", "1.5s", "20ms"."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    mins, secs = divmod(seconds, 60)
    return f"{int(mins)}m{secs:.3g}s" if mins else f"{secs:.3g}s"


# What the recorded teacher was asked with (config/config.yaml's llm block): recordings are keyed by it.
RECORDED_MODEL, RECORDED_SAMPLING = "recorded-teacher", {"temperature": 0.7, "max_tokens": 4096}
# A verdict every judge method can read (qa: score, datatask: accuracy, openresearch: five dimensions).
ANY_VERDICT = (
    '{"score": 3, "accuracy": 3, "usefulness": 3, "richness": 3, "soundness": 3, "interpretability": 3, '
    '"readability": 3}'
)


def recorded_reply(
    recordings: str, fallback: str = ANY_VERDICT, model: str = RECORDED_MODEL, sampling: dict | None = None
):
    """A teacher behind HTTP: the recorded response for the request's messages (whatever model and sampling the
    request names: the recordings' own are used for the key), else `fallback` — by default a verdict any judge
    method can read, which a synthesis role cannot use (a content reject)."""
    from .llm import Recordings, request_key

    rec = Recordings(recordings)
    sampling = RECORDED_SAMPLING if sampling is None else sampling

    def reply(messages: list[dict], body: dict) -> str:
        return rec.by_key.get(request_key(model, sampling, messages), fallback)

    return reply


class FakeOpenAI:
    """Start with `with FakeOpenAI(...) as server:`; `server.base_url` ends in /v1."""

    def __init__(
        self,
        reply: Callable[[list[dict], dict], str] = echo_reply,
        latency_s: float = 0.0,
        fault_rate: float = 0.0,
        faults: tuple[str, ...] = FAULTS,
        seed: int = 0,
        fault_plan: Callable[[int, dict], str | None] | None = None,
        port: int = 0,
        complete: Callable[[str, dict], str] | None = None,
        limits: ServerLimits | None = None,
        batch_line_plan: Callable[[str, dict], int | None] | None = None,
        batch_status_plan: Callable[[int], str] | None = None,
        fault_retry_after_ms: int | None = None,
    ):
        self.reply = reply
        self.complete = complete or (lambda prompt, body: "")
        self.latency_s = latency_s
        self.fault_rate = fault_rate
        self.faults = faults
        self.rng = random.Random(seed)
        self.fault_plan = fault_plan
        self.port = port
        self.requests = 0  # every POST received
        self.answered = 0  # successful completions sent
        self.faults_sent: Counter = Counter()
        self.bodies: list[dict] = []
        self.hold = threading.Event()  # while set, every new request waits (to kill a client mid-run)
        self.fault_retry_after_ms = fault_retry_after_ms  # sent with scripted 429 faults
        # rate limits
        self.limits = limits
        self.buckets: dict[str, Bucket] = {}
        self.rate_limited = 0  # requests answered 429 because they were over budget
        self.admissions: list[Admission] = []
        # Batch API
        self.files: dict[str, dict] = {}
        self.batches: dict[str, BatchJob] = {}
        self.batch_line_plan = batch_line_plan  # (custom_id, body) -> an HTTP status for that line, or None
        self.batch_status_plan = batch_status_plan  # (n-th batch) -> completed | expired | failed
        self.batch_hold = threading.Event()  # while set, batches stay in_progress
        self.batch_requests: Counter = Counter()  # custom_id -> times submitted in a created batch
        self.batch_polls = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test server did not start")

    def stop(self) -> None:
        self.hold.clear()
        if self._loop:
            self._loop.call_soon_threadsafe(self._closing.set)  # releases hanging handlers
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            fut.result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)

    def _serve(self) -> None:
        from aiohttp import web

        from .llm import event_loop_factory

        self._loop = (event_loop_factory() or asyncio.new_event_loop)()
        asyncio.set_event_loop(self._loop)
        self._closing = asyncio.Event()
        app = web.Application(client_max_size=256 * 1024 * 1024)  # batch input files
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/completions", self._handle_completion)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}/content", self._file_content)
        app.router.add_post("/v1/batches", self._create_batch)
        app.router.add_get("/v1/batches", self._list_batches)
        app.router.add_get("/v1/batches/{id}", self._get_batch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def _pick_fault(self, n: int, body: dict) -> str | None:
        if self.fault_plan:
            return self.fault_plan(n, body)
        with self._lock:
            if self.fault_rate and self.rng.random() < self.fault_rate:
                return self.rng.choice(self.faults)
        return None

    # ------------------------------------------------------------ rate limits

    def _admit(self, body: dict) -> tuple[Admission | None, dict]:
        """Charge a request to the buckets if it fits: (its admission or None, the rate-limit headers)."""
        now = time.monotonic()
        lim = self.limits
        cost = prompt_tokens(body) + int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)
        with self._lock:
            if not self.buckets:
                for dim, per_min in (("requests", lim.requests_per_min), ("tokens", lim.tokens_per_min)):
                    if per_min:
                        self.buckets[dim] = Bucket.new(per_min, lim.burst_s, now)
            need = {"requests": 1, "tokens": cost}
            for b in self.buckets.values():
                b.refill(now)
            short = {d: (need[d] - b.level) / b.rate for d, b in self.buckets.items() if b.level < need[d]}
            if short:
                self.rate_limited += 1
                headers = self._limit_headers()
                wait = max(short.values())
                headers.update({"retry-after-ms": str(math.ceil(wait * 1000)), "retry-after": str(math.ceil(wait))})
                return None, headers
            for d, b in self.buckets.items():
                b.take(need[d])
            adm = Admission(now, cost)
            self.admissions.append(adm)
            return adm, self._limit_headers()

    def _settle(self, adm: Admission, actual: int) -> dict:
        """The reply reports its usage: the reservation becomes what was used."""
        with self._lock:
            if "tokens" in self.buckets:
                self.buckets["tokens"].refill(time.monotonic())
                self.buckets["tokens"].give(adm.tokens - actual)
            adm.tokens = actual
            return self._limit_headers()

    def _limit_headers(self) -> dict:
        out = {}
        for dim, b in self.buckets.items():
            out[f"x-ratelimit-limit-{dim}"] = str(int(b.per_min))
            out[f"x-ratelimit-remaining-{dim}"] = str(max(0, int(b.level)))
            out[f"x-ratelimit-reset-{dim}"] = _duration((b.capacity - b.level) / b.rate)
        return out

    # ------------------------------------------------------------ chat completions

    async def _handle(self, request):
        from aiohttp import web

        body = await request.json()
        with self._lock:
            self.requests += 1
            n = self.requests
            self.bodies.append(body)
        while self.hold.is_set():
            await asyncio.sleep(0.02)
        adm, headers = None, {}
        if self.limits:
            adm, headers = self._admit(body)
            if adm is None:
                return web.json_response(
                    {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
                    status=429,
                    headers=headers,
                )
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        fault = self._pick_fault(n, body)
        if fault:
            with self._lock:
                self.faults_sent[fault] += 1
            if fault == "429":
                wait = {"retry-after-ms": str(self.fault_retry_after_ms)} if self.fault_retry_after_ms else {}
                return web.json_response(
                    {"error": {"message": "rate limited", "type": "rate_limit"}}, status=429, headers=wait
                )
            if fault == "500":
                return web.json_response({"error": {"message": "internal error", "type": "server"}}, status=500)
            if fault == "hang":
                await self._closing.wait()  # never answers while the server runs: the client must time out
                return web.Response(status=503)
            if fault == "malformed_json":
                return web.Response(text='{"id": "x", "choices": [', content_type="application/json")
            if fault == "truncated":
                full = json.dumps(self._completion(body, "this body is cut short")).encode()
                resp = web.StreamResponse(
                    headers={"Content-Type": "application/json", "Content-Length": str(len(full))}
                )
                await resp.prepare(request)
                await resp.write(full[: len(full) // 2])
                request.transport.close()
                return resp
        try:
            text = self.reply(body["messages"], body)
        except LookupError as e:
            return web.json_response({"error": {"message": str(e), "type": "not_found"}}, status=404)
        with self._lock:
            self.answered += 1
        reply = self._completion(body, text)
        if adm is not None:
            headers = self._settle(adm, reply["usage"]["total_tokens"])
        return web.json_response(reply, headers=headers)

    async def _models(self, request):
        from aiohttp import web

        return web.json_response({"object": "list", "data": [{"id": "test", "object": "model", "owned_by": "test"}]})

    async def _handle_completion(self, request):
        from aiohttp import web

        body = await request.json()
        with self._lock:
            self.requests += 1
            self.bodies.append(body)
        text = self.complete(body["prompt"], body)
        # a prompt is text or, as the pipeline sends it, token ids (the OpenAI API accepts both)
        n_prompt = len(body["prompt"]) if isinstance(body["prompt"], list) else len(body["prompt"].split())
        with self._lock:
            self.answered += 1
        return web.json_response(
            {
                "id": f"cmpl-{time.monotonic_ns()}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": body.get("model", "test"),
                "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                "usage": {
                    "prompt_tokens": n_prompt,
                    "completion_tokens": len(text.split()),
                    "total_tokens": n_prompt + len(text.split()),
                },
            }
        )

    @staticmethod
    def _completion(body: dict, text: str) -> dict:
        prompt = prompt_tokens(body)
        completion = count_tokens(text)
        return {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }

    # ------------------------------------------------------------ Batch API

    async def _upload(self, request):
        from aiohttp import web

        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        if upload is None or purpose != "batch":
            return web.json_response({"error": {"message": "a file with purpose 'batch' is required"}}, status=400)
        fid = self._store_file(upload.file.read(), upload.filename, purpose)
        return web.json_response({k: v for k, v in self.files[fid].items() if k != "data"})

    def _store_file(self, data: bytes, filename: str, purpose: str) -> str:
        """Keep a file as the Files API would (an uploaded input, or a batch's output or error file); its id."""
        with self._lock:
            fid = f"file-{len(self.files) + 1}"
            self.files[fid] = {
                "id": fid,
                "object": "file",
                "bytes": len(data),
                "created_at": int(time.time()),
                "filename": filename,
                "purpose": purpose,
                "data": data,
            }
        return fid

    async def _file_content(self, request):
        from aiohttp import web

        f = self.files.get(request.match_info["id"])
        if f is None:
            return web.json_response({"error": {"message": "no such file"}}, status=404)
        return web.Response(body=f["data"], content_type="application/octet-stream")

    async def _create_batch(self, request):
        from aiohttp import web

        body = await request.json()
        f = self.files.get(body.get("input_file_id"))
        if f is None or body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return web.json_response(
                {"error": {"message": "bad input_file_id, endpoint or completion_window"}}, status=400
            )
        now = int(time.time())
        submitted = []
        for raw in f["data"].splitlines():
            try:
                submitted.append(json.loads(raw)["custom_id"])
            except (ValueError, KeyError, TypeError):
                continue  # validation reports it
        with self._lock:
            self.batch_requests.update(submitted)  # a request is submitted when its batch is created
            bid = f"batch_{len(self.batches) + 1}"
            obj = {
                "id": bid,
                "object": "batch",
                "endpoint": body["endpoint"],
                "input_file_id": f["id"],
                "completion_window": "24h",
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": now,
                "expires_at": now + 86400,
                "errors": None,
                "metadata": body.get("metadata"),
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
            }
            self.batches[bid] = BatchJob(obj)
        asyncio.get_running_loop().create_task(self._run_batch(bid, len(self.batches)))
        return web.json_response(obj)

    async def _get_batch(self, request):
        from aiohttp import web

        job = self.batches.get(request.match_info["id"])
        if job is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        with self._lock:
            self.batch_polls += 1
        return web.json_response(job.obj)

    async def _list_batches(self, request):
        from aiohttp import web

        limit = int(request.query.get("limit", 20))
        ids = list(reversed(self.batches))  # newest first
        after = request.query.get("after")
        if after in ids:
            ids = ids[ids.index(after) + 1 :]
        page = [self.batches[i].obj for i in ids[:limit]]
        return web.json_response(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(ids) > limit,
            }
        )

    def _validate(self, data: bytes) -> tuple[list[dict], str | None]:
        lines, seen = [], set()
        if len(data) > 200 * 1000 * 1000:
            return [], "the input file is larger than 200 MB"
        for no, raw in enumerate(data.splitlines(), start=1):
            try:
                rec = json.loads(raw)
            except ValueError:
                return [], f"line {no}: not JSON"
            if rec.get("method") != "POST" or rec.get("url") != "/v1/chat/completions" or "body" not in rec:
                return [], f"line {no}: needs method POST, url /v1/chat/completions and a body"
            if rec.get("custom_id") in seen:
                return [], f"line {no}: duplicate custom_id"
            seen.add(rec.get("custom_id"))
            lines.append(rec)
        if len(lines) > 50_000:
            return [], "more than 50,000 requests"
        return lines, None

    async def _run_batch(self, bid: str, n: int) -> None:
        job = self.batches[bid]
        obj = job.obj
        await asyncio.sleep(BATCH_STEP_S)
        lines, problem = self._validate(self.files[obj["input_file_id"]]["data"])
        if problem:
            obj.update(
                status="failed",
                failed_at=int(time.time()),
                errors={"object": "list", "data": [{"code": "invalid_file", "message": problem}]},
            )
            return
        obj["request_counts"]["total"] = len(lines)
        obj.update(status="in_progress", in_progress_at=int(time.time()))
        await asyncio.sleep(BATCH_STEP_S)
        while self.batch_hold.is_set():
            await asyncio.sleep(0.02)
        final = self.batch_status_plan(n) if self.batch_status_plan else "completed"
        if final == "failed":
            obj.update(
                status="failed",
                failed_at=int(time.time()),
                errors={"object": "list", "data": [{"code": "server_error", "message": "the batch failed"}]},
            )
            return
        out, err = [], []
        for k, rec in enumerate(lines):
            cid, body = rec["custom_id"], rec["body"]
            if final == "expired" and k >= len(lines) // 2:
                err.append(
                    {
                        "id": f"batch_req_{bid}_{k}",
                        "custom_id": cid,
                        "response": None,
                        "error": {
                            "code": "batch_expired",
                            "message": "This request could not be executed before the completion window expired.",
                        },
                    }
                )
                continue
            status = self.batch_line_plan(cid, body) if self.batch_line_plan else None
            if status:
                err.append(
                    {
                        "id": f"batch_req_{bid}_{k}",
                        "custom_id": cid,
                        "response": {
                            "status_code": status,
                            "request_id": f"req_{bid}_{k}",
                            "body": {"error": {"message": f"scripted HTTP {status}", "type": "test"}},
                        },
                        "error": None,
                    }
                )
                continue
            try:
                reply = self._completion(body, self.reply(body["messages"], body))
            except LookupError as e:
                err.append(
                    {
                        "id": f"batch_req_{bid}_{k}",
                        "custom_id": cid,
                        "response": {
                            "status_code": 404,
                            "request_id": f"req_{bid}_{k}",
                            "body": {"error": {"message": str(e)}},
                        },
                        "error": None,
                    }
                )
                continue
            out.append(
                {
                    "id": f"batch_req_{bid}_{k}",
                    "custom_id": cid,
                    "response": {"status_code": 200, "request_id": f"req_{bid}_{k}", "body": reply},
                    "error": None,
                }
            )
            with self._lock:
                self.answered += 1
        obj["request_counts"].update(completed=len(out), failed=len(err))
        obj.update(status="finalizing", finalizing_at=int(time.time()))
        await asyncio.sleep(BATCH_STEP_S)
        for kind, recs in (("output_file_id", out), ("error_file_id", err)):
            if recs:
                data = "".join(json.dumps(r) + "\n" for r in recs).encode()
                obj[kind] = self._store_file(data, f"{bid}_{kind}.jsonl", "batch_output")
        obj.update(status=final, **{f"{final}_at": int(time.time())})


def standin_reply(recordings: str | None, served_name: str) -> Callable[[list[dict], dict], str]:
    """vLLM's answer: a request for another model than `served_name` is refused, as vLLM refuses it; the rest get
    the recorded teacher's response (`--replay`), else an echo."""
    base = recorded_reply(recordings) if recordings else echo_reply

    def reply(messages: list[dict], body: dict) -> str:
        if body.get("model") != served_name:
            raise LookupError(f"The model `{body.get('model')}` does not exist.")
        return base(messages, body)

    return reply


def _vllm_args(ap: argparse.ArgumentParser) -> None:
    """The vLLM engine options the pipeline's commands use (an unknown option is an error, as in vLLM)."""
    ap.add_argument("--served-model-name")
    ap.add_argument("--tensor-parallel-size", type=int, default=1)
    ap.add_argument("--max-model-len", type=int)
    ap.add_argument("--gpu-memory-utilization", type=float)
    ap.add_argument("--replay", help="answer from the recordings in this folder (else echo)")


def run_batch(argv: list[str]) -> None:
    """`vllm run-batch`'s contract: read the input JSONL, write one output line per request, in input order."""
    ap = argparse.ArgumentParser(prog="testserver run-batch")
    ap.add_argument("-i", "--input-file", required=True)
    ap.add_argument("-o", "--output-file", required=True)
    ap.add_argument("--model", required=True)
    _vllm_args(ap)
    args = ap.parse_args(argv)
    reply = standin_reply(args.replay, args.served_model_name or args.model)
    with open(args.input_file, encoding="utf-8") as fin, open(args.output_file, "w", encoding="utf-8") as fout:
        for k, line in enumerate(fin):
            if not line.strip():
                continue
            rec = json.loads(line)
            body = rec["body"]
            try:
                resp = {
                    "status_code": 200,
                    "request_id": f"vllm-batch-{k}",
                    "body": FakeOpenAI._completion(body, reply(body["messages"], body)),
                }
                error = None
            except LookupError as e:
                resp, error = {"status_code": 404, "request_id": f"vllm-batch-{k}"}, {"message": str(e), "code": 404}
            fout.write(
                json.dumps({"id": f"vllm-{k}", "custom_id": rec["custom_id"], "response": resp, "error": error}) + "\n"
            )
            fout.flush()


def serve(argv: list[str]) -> None:
    """`vllm serve MODEL --port P ...`'s contract: an OpenAI-compatible server until terminated."""
    ap = argparse.ArgumentParser(prog="testserver serve")
    ap.add_argument("model")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    _vllm_args(ap)
    args = ap.parse_args(argv)
    with FakeOpenAI(reply=standin_reply(args.replay, args.served_model_name or args.model), port=args.port) as server:
        print(f"serving {args.model} as {args.served_model_name} at {server.base_url}", flush=True)
        while True:
            time.sleep(1)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("serve", "run-batch"):
        return (serve if sys.argv[1] == "serve" else run_batch)(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    ap.add_argument("--fault-rate", type=float, default=0.0, help="share of requests answered with a fault")
    ap.add_argument("--completion", default="", help="the text every /v1/completions request gets")
    ap.add_argument(
        "--recordings",
        default=None,
        help="answer chat requests from these recorded teacher responses (else a judge verdict)",
    )
    ap.add_argument("--rpm", type=float, help="requests per minute enforced (429 over budget)")
    ap.add_argument("--tpm", type=float, help="tokens per minute enforced (prompt + max_tokens, then the usage)")
    args = ap.parse_args()
    fixed = args.completion
    reply = recorded_reply(args.recordings) if args.recordings else echo_reply
    limits = ServerLimits(args.rpm, args.tpm) if args.rpm or args.tpm else None
    with FakeOpenAI(
        reply=reply,
        latency_s=args.latency,
        fault_rate=args.fault_rate,
        port=args.port,
        limits=limits,
        complete=lambda prompt, body: fixed,
    ) as server:
        print(f"serving {server.base_url}  (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            print(
                f"requests: {server.requests}, answered: {server.answered}, faults: {dict(server.faults_sent)}, "
                f"rate-limited: {server.rate_limited}"
            )


if __name__ == "__main__":
    main()
