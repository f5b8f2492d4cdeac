"""A real OpenAI-compatible HTTP server for tests and benchmarks (127.0.0.1 only): `POST /v1/chat/completions`,
`POST /v1/completions` (what a vLLM server answers for evaluation) and `GET /v1/models`.

Replies are scripted by a function of the request; latency and faults are configurable: HTTP 429, HTTP 500,
a hang (the client times out), a malformed JSON body, a truncated body. It counts what it receives.

    python -m darecipe.testserver --port 8765 --latency 0.2      # serve until interrupted
    python -m darecipe.testserver --port 8765 --completion '<Answer>42</Answer>'   # a fixed completion
    python -m darecipe.testserver --port 8765 --recordings resources/recordings    # the recorded teacher and a judge
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import threading
import time
from collections import Counter
from typing import Callable

FAULTS = ("429", "500", "hang", "malformed_json", "truncated")


def echo_reply(messages: list[dict], body: dict) -> str:
    return f"reply to: {messages[-1]['content'][:80]}"


# What the recorded teacher was asked with (config/config.yaml's llm block): recordings are keyed by it.
RECORDED_MODEL, RECORDED_SAMPLING = "recorded-teacher", {"temperature": 0.7, "max_tokens": 4096}
# A verdict every judge method can read (qa: score, datatask: accuracy, openresearch: five dimensions).
ANY_VERDICT = ('{"score": 3, "accuracy": 3, "usefulness": 3, "richness": 3, "soundness": 3, "interpretability": 3, '
               '"readability": 3}')


def recorded_reply(recordings: str, fallback: str = ANY_VERDICT, model: str = RECORDED_MODEL,
                   sampling: dict | None = None):  # fmt: skip
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
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "FakeOpenAI":
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
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/completions", self._handle_completion)
        app.router.add_get("/v1/models", self._models)
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

    async def _handle(self, request):
        from aiohttp import web

        body = await request.json()
        with self._lock:
            self.requests += 1
            n = self.requests
            self.bodies.append(body)
        while self.hold.is_set():
            await asyncio.sleep(0.02)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        fault = self._pick_fault(n, body)
        if fault:
            with self._lock:
                self.faults_sent[fault] += 1
            if fault == "429":
                return web.json_response({"error": {"message": "rate limited", "type": "rate_limit"}}, status=429)
            if fault == "500":
                return web.json_response({"error": {"message": "internal error", "type": "server"}}, status=500)
            if fault == "hang":
                await self._closing.wait()  # never answers while the server runs: the client must time out
                return web.Response(status=503)
            if fault == "malformed_json":
                return web.Response(text='{"id": "x", "choices": [', content_type="application/json")
            if fault == "truncated":
                full = json.dumps(self._completion(body, "this body is cut short")).encode()
                resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": str(len(full))})
                await resp.prepare(request)
                await resp.write(full[: len(full) // 2])
                request.transport.close()
                return resp
        text = self.reply(body["messages"], body)
        with self._lock:
            self.answered += 1
        return web.json_response(self._completion(body, text))

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
        return web.json_response({
            "id": f"cmpl-{time.monotonic_ns()}", "object": "text_completion", "created": int(time.time()),
            "model": body.get("model", "test"),
            "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": len(text.split()),
                      "total_tokens": n_prompt + len(text.split())},
        })  # fmt: skip

    @staticmethod
    def _completion(body: dict, text: str) -> dict:
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion_tokens = len(text.split())
        return {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},  # fmt: skip
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    ap.add_argument("--fault-rate", type=float, default=0.0, help="share of requests answered with a fault")
    ap.add_argument("--completion", default="", help="the text every /v1/completions request gets")
    ap.add_argument("--recordings", default=None,
                    help="answer chat requests from these recorded teacher responses (else a judge verdict)")
    args = ap.parse_args()
    fixed = args.completion
    reply = recorded_reply(args.recordings) if args.recordings else echo_reply
    with FakeOpenAI(reply=reply, latency_s=args.latency, fault_rate=args.fault_rate, port=args.port,
                    complete=lambda prompt, body: fixed) as server:  # fmt: skip
        print(f"serving {server.base_url}  (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            print(f"requests: {server.requests}, answered: {server.answered}, faults: {dict(server.faults_sent)}")


if __name__ == "__main__":
    main()
