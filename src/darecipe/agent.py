"""The agent loop shared by trajectory synthesis (the solver) and evaluation, over the stage-3 environment's
episodes (`rollout.Episode`): generate until `</Code>` or the end, run the code, append `<Execute>\\n…\\n</Execute>`,
repeat until an answer or `max_turns`.

A generator is anything that maps a batch of states (task prompt + trajectory so far) to continuations:
an OpenAI-compatible endpoint or the replay backend through the LLM layer (`ChatGenerator`), or a local HF
model (`HFGenerator`). Many trajectories advance together, one turn at a time, so requests go out in batches.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .chat import prompt_ids
from .llm import LLMRequest, LLMResult, LLMSettings, ResponseCache, Totals, run_requests
from .rollout import Episode
from .sandbox import ExecResult, SandboxLimits

EXECUTE_BLOCK_RE = re.compile(r"(<Execute>\n.*?\n</Execute>)", re.DOTALL)


@dataclass
class State:
    id: str
    prompt: str
    text: str = ""  # the single assistant message so far, tags inline


@dataclass
class Trajectory:
    id: str
    prompt: str
    text: str
    turns: int
    finished: bool  # reached </Answer>
    stop: str  # answer | no_code | max_turns | over_length | error
    results: list[ExecResult] = field(default_factory=list)
    error: str | None = None
    no_code_turns: int = 0
    retryable: bool = False  # stopped by a teacher request that went unanswered (not the content's fault)

    @property
    def exec_ok(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def exec_total(self) -> int:
        """Code blocks that ran (a turn without a closed block ran none)."""
        return len(self.results)


class Generator(Protocol):
    def __call__(self, states: list[State]) -> list[str | None]: ...


def run_agents(
    generate: Generator,
    states: list[State],
    workspaces: list[Path],
    limits: SandboxLimits,
    max_turns: int = 30,
    progress: Callable[[int], None] | None = None,
    on_no_code: str = "continue",
) -> list[Trajectory]:
    """Advance every state, one environment episode each (`rollout.Episode`: the stage-3 environment's rules),
    until it answers or ends; many trajectories advance together, one turn at a time. `on_no_code="stop"` ends a
    trajectory at a turn without code (a synthesis solver's attempt) instead of answering it with the failed
    observation and going on (the environment's rule)."""
    episodes = [Episode(ws, limits, max_turns=max_turns, on_no_code=on_no_code) for ws in workspaces]
    done: dict[int, Trajectory] = {}

    def finish(i: int, stop: str, error: str | None = None, retryable: bool = False) -> None:
        s, ep = states[i], episodes[i]
        done[i] = Trajectory(
            s.id,
            s.prompt,
            ep.text,
            ep.turns,
            stop == "answer",
            stop,
            list(ep.results),
            error,
            ep.no_code_turns,
            retryable,
        )

    turn = 0
    try:
        while len(done) < len(states) and turn < max_turns:
            turn += 1
            active = [i for i in range(len(states)) if i not in done]
            outs = generate([states[i] for i in active])
            for i, out in zip(active, outs):
                if out is None:
                    episodes[i].turns += 1
                    # A generator that knows why (ChatGenerator) says so: unanswered is not the same as refused.
                    fail = getattr(generate, "failures", {}).get(states[i].id)
                    finish(i, "error", fail.error if fail else "generation failed", bool(fail and fail.retryable))
                    continue
                step = episodes[i].step(out)
                states[i].text = episodes[i].text
                if step.done:
                    finish(i, step.stop)
            if progress:
                progress(turn)
        for i in range(len(states)):
            if i not in done:
                finish(i, "max_turns")
    finally:
        for ep in episodes:
            ep.close()
    return [done[i] for i in range(len(states))]


def chat_messages(system: str, state: State) -> list[dict]:
    """A trajectory as a chat for a teacher model: its own turns as assistant messages, each `<Execute>` block
    as the user's reply (what the environment returned)."""
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": state.prompt}]
    for part in EXECUTE_BLOCK_RE.split(state.text):
        if not part:
            continue
        role = "user" if part.startswith("<Execute>") else "assistant"
        msgs.append({"role": role, "content": part})
    return msgs


class ChatGenerator:
    """Turns a teacher chat model (OpenAI-compatible endpoint or recorded replies) into a generator."""

    def __init__(self, settings: LLMSettings, cache: ResponseCache, system: str | Callable[[State], str]):
        self.settings, self.cache, self.system = settings, cache, system
        self.totals = Totals()
        self.failures: dict[str, LLMResult] = {}  # state id -> its failed request (error, retryable)

    def __call__(self, states: list[State]) -> list[str | None]:
        reqs = []
        for s in states:
            system = self.system(s) if callable(self.system) else self.system
            reqs.append(LLMRequest(s.id, chat_messages(system, s)))
        results, totals = run_requests(self.settings, reqs, self.cache, progress=False)
        for k, v in totals.as_dict().items():
            setattr(self.totals, k, getattr(self.totals, k) + v)
        self.failures.update({s.id: r for s, r in zip(states, results) if r.error})
        return [r.text for r in results]


class HFGenerator:
    """A local Hugging Face checkpoint, greedy or sampled: continues the single assistant message of agent states
    (stopping at `</Code>` or the end-of-turn token), or any chat rendered by the checkpoint's template. Inputs go
    through `generate` together, left-padded, `batch_size` at a time (one sequence at a time leaves most of a CPU
    idle); on a GPU when there is one."""

    def __init__(
        self,
        model_dir: Path,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        seed: int = 0,
        batch_size: int = 8,
        stop_at_code: bool = True,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto").to(self.device).eval()
        self.max_new_tokens, self.temperature, self.batch_size = max_new_tokens, temperature, batch_size
        self.stop_ids = ([self.tok.convert_tokens_to_ids("</Code>")] if stop_at_code else []) + [self.tok.eos_token_id]
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        torch.manual_seed(seed)

    def _continuation(self, new: list[int]) -> tuple[str, int]:
        """The generated ids up to the first stop id (a `</Code>` kept, the end-of-turn token dropped)."""
        for i, t in enumerate(new):
            if t in self.stop_ids:
                new = new[: i + 1] if t != self.tok.eos_token_id else new[:i]
                break
        return self.tok.decode(new, skip_special_tokens=False), len(new)

    def generate(self, inputs: list[list[int]]) -> list[tuple[str, int]]:
        """(text, generated tokens) continuing each list of input ids."""
        torch = self.torch
        outs = []
        for start in range(0, len(inputs), self.batch_size):
            batch = inputs[start : start + self.batch_size]
            width = max(map(len, batch))
            ids = torch.tensor([[self.pad_id] * (width - len(x)) + x for x in batch], device=self.device)
            mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch], device=self.device)
            with torch.no_grad():
                gen = self.model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=self.max_new_tokens,
                    eos_token_id=self.stop_ids,
                    do_sample=self.temperature > 0,
                    temperature=self.temperature or None,
                    pad_token_id=self.pad_id,
                )
            outs += [self._continuation(row[width:].tolist()) for row in gen]
        return outs

    def __call__(self, states: list[State]) -> list[str | None]:
        return [text for text, _ in self.generate([prompt_ids(self.tok, s.prompt, s.text) for s in states])]
