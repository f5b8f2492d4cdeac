"""OpenAI-compatible servers (vLLM) started inside a GPU job and stopped after it:

- evaluation: the trained models continue one assistant message (tags inline, `<Execute>` observations
  appended by the environment), so prompts are rendered locally with the checkpoint's chat template
  (`chat.prompt_ids`, the same ids training saw) and sent as token ids: text would be tokenised again by
  the server, which may add a second BOS;
- the local teacher (`llm.backend: vllm`): the synthesis job serves the teacher's weights on its own GPUs and
  the LLM layer talks to it as to any chat endpoint (`local_teacher`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from .agent import State
from .chat import prompt_ids
from .config import render_command
from .llm import LLMError, LLMSettings

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ModelServer:
    """`with ModelServer(command, model_dir, log_path) as base_url:` — the command is a list of strings with
    `{model}` and `{port}` placeholders (e.g. `vllm serve {model} --port {port} --served-model-name eval`), and
    any further ones given in `fields`."""

    def __init__(
        self,
        command: list[str],
        model_dir: Path,
        log_path: Path,
        startup_timeout_s: float = 900.0,
        port: int | None = None,
        fields: dict | None = None,
        config_field: str = "eval.server.command",
    ):
        self.port = port or free_port()
        self.argv = render_command(command, config_field, model=model_dir, port=self.port, **(fields or {}))
        self.log_path, self.startup_timeout_s = Path(log_path), startup_timeout_s
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> str:
        self._log = open(self.log_path, "a", encoding="utf-8")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._close()
                raise RuntimeError(
                    f"model server exited with status {self.proc.returncode} before it was ready; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                    if r.status == 200:
                        return self.base_url
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"model server not ready after {self.startup_timeout_s:.0f} s; see {self.log_path}")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._close()

    def _close(self) -> None:
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None


class CompletionsGenerator:
    """A generator (see `agent.run_agents`) over `/v1/completions` of an OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        tokenizer,
        max_new_tokens: int,
        temperature: float,
        max_in_flight: int = 64,
        timeout_s: float = 600.0,
    ):
        self.base_url, self.model, self.tok = base_url, model, tokenizer
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.max_in_flight, self.timeout_s = max_in_flight, timeout_s

    def __call__(self, states: list[State]) -> list[str | None]:
        return asyncio.run(self._all(states))

    async def _all(self, states):
        from openai import AsyncOpenAI

        client = AsyncOpenAI(api_key="not-needed", base_url=self.base_url, timeout=self.timeout_s, max_retries=3)
        sem = asyncio.Semaphore(self.max_in_flight)

        async def one(s: State):
            async with sem:
                try:
                    r = await client.completions.create(
                        model=self.model,
                        prompt=prompt_ids(self.tok, s.prompt, s.text),
                        max_tokens=self.max_new_tokens,
                        temperature=self.temperature,
                        stop=["</Code>"],
                        extra_body={"include_stop_str_in_output": True, "skip_special_tokens": False},
                    )
                except Exception:  # noqa: BLE001 - a failed generation ends that trajectory as "error"
                    return None
                return r.choices[0].text if r.choices else None

        try:
            return await asyncio.gather(*(one(s) for s in states))
        finally:
            await client.close()


@contextmanager
def local_teacher(settings: LLMSettings, log_path: Path, serve: bool = True):
    """For `llm.backend: vllm`: serve the teacher's weights (`llm.local.serve_command`) on this job's GPUs for
    the duration of the block, yielding settings pointed at it; any other backend, or `serve=False` (the job
    runs `vllm run-batch` instead), passes through unchanged."""
    if settings.backend != "vllm" or not serve:
        yield settings
        return
    loc = settings.local
    server = ModelServer(
        loc.serve_command,
        loc.model,
        log_path,
        loc.startup_timeout_s,
        fields={"name": settings.model, "gpus": loc.gpus},
        config_field="llm.local.serve_command",
    )
    logger.info(f"local teacher: starting `{' '.join(server.argv)}` (its log: {log_path})")
    try:
        base_url = server.__enter__()
    except FileNotFoundError:
        server._close()
        raise LLMError(
            f"llm.local.serve_command: {server.argv[0]} not found (is vLLM installed in this job's environment?)"
        ) from None
    try:
        logger.info(f"local teacher ready at {base_url}")
        yield dataclasses.replace(settings, base_url=base_url, api_key_env=None)
    finally:
        server.__exit__()
