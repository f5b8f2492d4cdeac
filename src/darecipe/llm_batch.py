"""Batch mode for the one-shot teacher steps (`llm.mode: batch`): the OpenAI Batch API at the batch price, or
`vllm run-batch` on the job's own GPUs (backend `vllm`). Multi-turn synthesis never comes here.

OpenAI Batch API, as documented: the requests go into JSONL input files (one line each: `custom_id` = the
request key, `method` POST, `url` /v1/chat/completions, `body` = the online request body), split at the
provider's limits (`llm.batch.max_requests` lines, `max_bytes` bytes per file); each file is uploaded
(`POST /v1/files`, purpose `batch`) and becomes a batch (`POST /v1/batches`, completion window 24h), polled
(`GET /v1/batches/{id}`: validating, in_progress, finalizing, then completed, failed, expired or cancelled) and
collected (`GET /v1/files/{id}/content` of its output and error files). Answers go to the response cache line
by line as they are read. A request a batch did not answer for a transient reason (expired, cancelled, a 5xx or
429 line, a failed batch) goes into the next batch, up to `max_rounds`, then online or missing
(`llm.batch.leftovers`); one whose line says the request itself is bad (HTTP 400/413/422) is final.

Resuming after kill -9: a journal beside the cache (`<cache>.batches.jsonl`) records, fsynced before the next
step, each input file written, uploaded and turned into a batch, and each batch collected; the input files stay
in `<cache>.batches/` until their batch is collected. A rerun resumes polling the batches in flight and never
submits their requests again; a file uploaded but not yet recorded as a batch is first looked up among the
provider's batches (a create sent just before the kill), so a request is never in two live batches.

`vllm run-batch` reads the same input format and writes the same output format; a run killed midway leaves
its output file (written in input order), which the next run reads before sending what is left.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .config import render_command
from .llm import (
    CONTENT_STATUS,
    EMPTY,
    LLMError,
    LLMResult,
    LLMSettings,
    ResponseCache,
    Totals,
    _backoff,
    _classify,
    _client,
    final_error,
)

logger = logging.getLogger(__name__)

TERMINAL = ("completed", "failed", "expired", "cancelled")
ENDPOINT = "/v1/chat/completions"


@dataclass
class Chunk:
    """One batch input file and what became of it."""

    name: str
    path: Path
    uploaded_at: float = 0.0
    file_id: str | None = None
    batch_id: str | None = None
    collected: bool = False

    def keys(self) -> list[str]:
        if not self.path.is_file():
            return []
        return [json.loads(line)["custom_id"] for line in self.path.read_text(encoding="utf-8").splitlines() if line]


class Journal:
    """Append-only record of the batch work for one cache file; a line cut short by a kill is ignored."""

    def __init__(self, cache_path: Path):
        self.path = cache_path.with_suffix(".batches.jsonl")
        self.dir = cache_path.with_suffix(".batches")
        self.chunks: dict[str, Chunk] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    self._apply(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    continue

    def _apply(self, ev: dict) -> None:
        name = ev["chunk"]
        if ev["event"] == "written":
            self.chunks[name] = Chunk(name, self.dir / f"{name}.jsonl")
            return
        chunk = self.chunks[name]
        if ev["event"] == "uploaded":
            chunk.file_id, chunk.uploaded_at = ev["file_id"], ev.get("at", 0.0)
        elif ev["event"] == "created":
            chunk.batch_id = ev["batch_id"]
        elif ev["event"] == "collected":
            chunk.collected = True

    def record(self, **ev) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            if f.tell():
                f.write("\n")  # a previous line may have been cut short
            f.write(json.dumps(ev))
            f.flush()
            os.fsync(f.fileno())
        self._apply(ev)

    def open_chunks(self) -> list[Chunk]:
        return [c for c in self.chunks.values() if not c.collected]

    def write_chunk(self, lines: list[bytes]) -> Chunk:
        blob = b"".join(lines)
        name = f"{len(self.chunks):05d}-{hashlib.sha256(blob).hexdigest()[:12]}"
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / f"{name}.jsonl")
        self.record(event="written", chunk=name, requests=len(lines))
        return self.chunks[name]


def batch_line(key: str, body: dict) -> bytes:
    return (
        json.dumps({"custom_id": key, "method": "POST", "url": ENDPOINT, "body": body}, ensure_ascii=False) + "\n"
    ).encode("utf-8")


def split_lines(lines: list[bytes], max_requests: int, max_bytes: int) -> list[list[bytes]]:
    """Input files within the provider's limits on lines and bytes, in order."""
    chunks, cur, size = [], [], 0
    for line in lines:
        if len(line) > max_bytes:
            raise LLMError(
                f"llm.batch.max_bytes: one request is {len(line)} bytes, more than the {max_bytes} a batch file may hold"
            )
        if cur and (len(cur) >= max_requests or size + len(line) > max_bytes):
            chunks.append(cur)
            cur, size = [], 0
        cur.append(line)
        size += len(line)
    if cur:
        chunks.append(cur)
    return chunks


@dataclass
class Outcome:
    """One output or error line of a batch."""

    key: str
    text: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reason: str = ""
    content: bool = False  # the request itself is at fault: final


def parse_output_line(line: str) -> Outcome | None:
    """A line of an OpenAI batch output/error file or of `vllm run-batch` output (None if unreadable)."""
    try:
        rec = json.loads(line)
        key = rec["custom_id"]
    except (ValueError, KeyError, TypeError):
        return None
    resp = rec.get("response") or {}
    status = resp.get("status_code")
    body = resp.get("body") if isinstance(resp.get("body"), dict) else {}
    if status == 200 and body.get("choices"):
        choice = body["choices"][0]
        text = (choice.get("message") or {}).get("content")
        usage = body.get("usage") or {}
        if isinstance(text, str) and text:
            return Outcome(key, text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        return Outcome(key, reason=f"{EMPTY} (finish_reason: {choice.get('finish_reason')})", content=True)
    err = rec.get("error") or body.get("error") or {}
    if isinstance(err, dict):
        detail = str(err.get("message") or err.get("code") or "")[:200]
    else:
        detail = str(err)[:200]
    reason = (f"HTTP {status}" if status else "batch error") + (f": {detail}" if detail else "")
    return Outcome(key, reason=reason, content=status in CONTENT_STATUS)


class _Work:
    """The requests of one run_requests call and where their answers go."""

    def __init__(self, settings, pending, cache, totals, record):
        self.settings, self.cache, self.totals, self.record = settings, cache, totals, record
        self.items: dict[str, list] = {}
        for i, req, key in pending:
            self.items.setdefault(key, []).append((i, req))
        self.reasons: dict[str, Outcome] = {}  # key -> why the last batch did not answer it

    def todo(self) -> list[str]:
        """Keys no batch answered yet, except those refused for good (an empty reply is asked again)."""
        return [k for k in self.items if self.cache.get(k) is None and not self._refused(k)]

    def _refused(self, key: str) -> bool:
        o = self.reasons.get(key)
        return bool(o and o.content and not o.reason.startswith(EMPTY))

    def line(self, key: str) -> bytes:
        return batch_line(key, self.settings.body(self.items[key][0][1].messages))

    def take(self, o: Outcome) -> bool:
        """Store an output line's answer in the cache at once (or remember why there is none); True if
        answered."""
        if o.text is None:
            self.reasons[o.key] = o
            return False
        if self.cache.get(o.key) is None:
            rec_id = self.items[o.key][0][1].id if o.key in self.items else ""
            # Synced once per file read (`_read`): until the batch is journalled as collected, a kill only
            # means reading its output again.
            self.cache.put(o.key, rec_id, o.text, o.prompt_tokens, o.completion_tokens, sync=False)
        self.reasons.pop(o.key, None)
        return True

    def finish(self, rounds: int) -> list:
        """A result for every request: answered (from the cache the batches filled), refused, or unanswered;
        returns the unanswered items that go online instead."""
        online = []
        for key, entries in self.items.items():
            hit = self.cache.get(key)
            o = self.reasons.get(key) or Outcome(key, reason="not answered by any batch")
            for i, req in entries:
                if hit is not None:
                    self.totals.responses += 1
                    self.totals.batch_responses += 1
                    self.record(
                        i,
                        LLMResult(
                            req.id,
                            key,
                            hit["text"],
                            hit.get("prompt_tokens", 0),
                            hit.get("completion_tokens", 0),
                            1,
                            batch=True,
                        ),
                    )
                elif o.content:
                    self.record(i, LLMResult(req.id, key, None, rounds, error=final_error(o.reason)))
                elif self.settings.batch.leftovers == "online" and self.settings.backend != "vllm":
                    online.append((i, req, key))
                else:
                    self.record(
                        i,
                        LLMResult(
                            req.id,
                            key,
                            None,
                            rounds,
                            retryable=True,
                            error=f"no answer after {rounds} batch round(s): {o.reason}",
                        ),
                    )
        if online:
            logger.info(f"batch: {len(online)} request(s) that no batch answered go online")
        return online


async def answer_in_batches(settings: LLMSettings, pending: list, cache: ResponseCache, totals: Totals, record) -> list:
    """Answer `pending` ((index, request, key)) through batches, calling `record(index, result)` for each
    request answered or given up; returns the items left for the online path."""
    if cache.path is None:
        raise LLMError("llm.mode: batch needs a response cache file (the batch journal lives beside it)")
    work = _Work(settings, pending, cache, totals, record)
    journal = Journal(cache.path)
    if settings.backend == "vllm":
        _run_local(settings, work, journal)
        return work.finish(1)
    client = _client(settings, max_retries=settings.max_retries)  # the SDK's retries (Retry-After) for control calls
    rounds = 0
    try:
        while rounds < settings.batch.max_rounds:
            in_flight = []
            for chunk in journal.open_chunks():
                if chunk.batch_id is None and all(work.cache.get(k) is not None for k in chunk.keys()):
                    journal.record(event="collected", chunk=chunk.name, status="not needed")  # answered meanwhile
                    chunk.path.unlink(missing_ok=True)
                else:
                    in_flight.append(chunk)
            covered = {k for c in in_flight for k in c.keys()}
            new = [k for k in work.todo() if k not in covered]
            if not new and not in_flight:
                break
            rounds += 1
            for lines in split_lines(
                [work.line(k) for k in new], settings.batch.max_requests, settings.batch.max_bytes
            ):
                in_flight.append(journal.write_chunk(lines))
            for chunk in in_flight:
                await _submit(client, settings, journal, chunk, totals)
            await _poll(client, settings, journal, in_flight, work)
    finally:
        await client.close()
    return work.finish(rounds)


async def _submit(client, settings: LLMSettings, journal: Journal, chunk: Chunk, totals: Totals) -> None:
    if chunk.batch_id:
        logger.info(f"batch {chunk.batch_id} ({chunk.name}): resumed")
        return
    if chunk.file_id is None:
        f = await client.files.create(
            file=(f"{chunk.name}.jsonl", chunk.path.read_bytes(), "application/jsonl"), purpose="batch"
        )
        journal.record(event="uploaded", chunk=chunk.name, file_id=f.id, at=time.time())
    creator = client.with_options(max_retries=0)  # a create retried blindly could start the same batch twice
    for attempt in range(1, settings.max_retries + 2):
        found = await _find_batch(client, chunk)  # created before a kill, or by a create whose reply was lost
        if found is not None:
            journal.record(event="created", chunk=chunk.name, batch_id=found.id)
            logger.info(f"batch {found.id} ({chunk.name}): found among the provider's batches, resumed")
            return
        try:
            b = await creator.batches.create(
                input_file_id=chunk.file_id,
                endpoint=ENDPOINT,
                completion_window=settings.batch.completion_window,
                metadata={"darecipe_chunk": chunk.name},
            )
        except Exception as exc:  # noqa: BLE001 - classified: a transient failure is looked up, then tried again
            retry, _, reason = _classify(exc)
            if not retry or attempt > settings.max_retries:
                raise LLMError(f"batch {chunk.name}: could not create the batch ({reason})") from None
            logger.info(f"batch {chunk.name}: create failed ({reason}); checking, then trying again")
            await asyncio.sleep(_backoff(settings, attempt))
            continue
        journal.record(event="created", chunk=chunk.name, batch_id=b.id)
        n = len(chunk.keys())
        totals.batches += 1
        totals.batch_requests += n
        logger.info(f"batch {b.id} ({chunk.name}): {n} requests submitted")
        return


async def _find_batch(client, chunk: Chunk):
    """The provider's batch made from this chunk's input file, if any (newest first; stops at batches older
    than the upload)."""
    async for b in client.batches.list(limit=100):
        if b.input_file_id == chunk.file_id:
            return b
        if chunk.uploaded_at and b.created_at and b.created_at < chunk.uploaded_at - 600:
            return None
    return None


async def _poll(client, settings: LLMSettings, journal: Journal, chunks: list[Chunk], work: _Work) -> None:
    waiting = list(chunks)
    seen: dict[str, str] = {}
    while waiting:
        for chunk in list(waiting):
            b = await client.batches.retrieve(chunk.batch_id)
            counts = b.request_counts
            state = f"{b.status}" + (
                f" ({counts.completed}/{counts.total} done, {counts.failed} failed)" if counts else ""
            )
            if seen.get(chunk.name) != state:
                logger.info(f"batch {b.id} ({chunk.name}): {state}")
                seen[chunk.name] = state
            if b.status in TERMINAL:
                await _collect(client, journal, chunk, b, work)
                waiting.remove(chunk)
        if waiting:
            await asyncio.sleep(settings.batch.poll_s)


async def _collect(client, journal: Journal, chunk: Chunk, b, work: _Work) -> None:
    answered = errors = 0
    for fid in (b.output_file_id, b.error_file_id):
        if not fid:
            continue
        content = await client.files.content(fid)
        a, e = _read(content.content.decode("utf-8", errors="replace"), work)
        answered, errors = answered + a, errors + e
    why = f"batch {b.status}"
    if b.status == "failed" and b.errors and b.errors.data:
        why += ": " + "; ".join(str(e.message) for e in b.errors.data[:3])
    for key in chunk.keys():
        if work.cache.get(key) is None and key not in work.reasons:
            work.reasons[key] = Outcome(key, reason=why)
    journal.record(
        event="collected", chunk=chunk.name, batch_id=b.id, status=b.status, answered=answered, errors=errors
    )
    chunk.path.unlink(missing_ok=True)
    logger.info(f"batch {b.id} ({chunk.name}): {b.status}, {answered} answered, {errors} error line(s)")


# ---------------------------------------------------------------- vllm run-batch on the job's GPUs


def _run_local(settings: LLMSettings, work: _Work, journal: Journal) -> None:
    journal.dir.mkdir(parents=True, exist_ok=True)
    for out in sorted(journal.dir.glob("*.out.jsonl")):  # a run killed midway: keep what it wrote
        salvaged, _ = _read(out.read_text(encoding="utf-8", errors="replace"), work)
        logger.info(f"local batch: {salvaged} answer(s) kept from the interrupted run's {out.name}")
        out.unlink()
    todo = work.todo()
    if not todo:
        return
    name = f"local-{hashlib.sha256(''.join(todo).encode()).hexdigest()[:12]}"
    inp, out, log_path = (
        journal.dir / f"{name}.in.jsonl",
        journal.dir / f"{name}.out.jsonl",
        journal.dir / f"{name}.log",
    )
    with open(inp, "wb") as f:
        f.writelines(work.line(k) for k in todo)
    loc = settings.local
    argv = render_command(
        loc.run_batch_command,
        "llm.local.run_batch_command",
        input=inp,
        output=out,
        model=loc.model,
        name=settings.model,
        gpus=loc.gpus,
    )
    logger.info(f"local batch: {len(todo)} requests through `{' '.join(argv)}` (its log: {log_path})")
    work.totals.batches += 1
    work.totals.batch_requests += len(todo)
    with open(log_path, "a", encoding="utf-8") as lf:
        try:
            rc = subprocess.run(argv, stdout=lf, stderr=subprocess.STDOUT).returncode
        except FileNotFoundError:
            raise LLMError(
                f"llm.local.run_batch_command: {argv[0]} not found (is vLLM installed in this job's environment?)"
            ) from None
    answered = _read(out.read_text(encoding="utf-8", errors="replace"), work)[0] if out.is_file() else 0
    logger.info(f"local batch: exit status {rc}, {answered} answered")
    for k in todo:
        if work.cache.get(k) is None and k not in work.reasons:
            work.reasons[k] = Outcome(
                k, reason=f"vllm run-batch exited with status {rc} before answering (see {log_path})"
            )
    out.unlink(missing_ok=True)
    inp.unlink(missing_ok=True)


def _read(text: str, work: _Work) -> tuple[int, int]:
    """Take every readable output line (a line cut short by a kill is skipped); (answered, errors)."""
    answered = errors = 0
    for line in text.splitlines():
        o = parse_output_line(line)
        if o is not None:
            if work.take(o):
                answered += 1
            else:
                errors += 1
    work.cache.sync()
    return answered, errors
