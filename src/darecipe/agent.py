"""The agent loop shared by trajectory synthesis (the solver), evaluation and the RL environment's logic:
generate until `</Code>` or the end, run the code, append `<Execute>\\n…\\n</Execute>`, repeat up to `max_turns`.

A generator is anything that maps a batch of states (task prompt + trajectory so far) to continuations:
an OpenAI-compatible endpoint or the replay backend through the LLM layer (`ChatGenerator`), or a local HF
model (`HFGenerator`). Many trajectories advance together, one turn at a time, so requests go out in batches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from .llm import LLMRequest, LLMSettings, ResponseCache, Totals, run_requests
from .sandbox import ExecResult, SandboxLimits, Session
from .tags import last_open_code

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
    stop: str  # answer | no_code | max_turns | error
    results: list[ExecResult] = field(default_factory=list)
    error: str | None = None

    @property
    def exec_ok(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def exec_total(self) -> int:
        return len(self.results)


class Generator(Protocol):
    def __call__(self, states: list[State]) -> list[str | None]: ...


def cut_at_code_end(continuation: str) -> str:
    """Keep a continuation up to and including its first `</Code>` (generation stops there)."""
    end = continuation.find("</Code>")
    return continuation if end < 0 else continuation[: end + len("</Code>")]


def run_agents(generate: Generator, states: list[State], workspaces: list[Path], limits: SandboxLimits,
               max_turns: int = 30, progress: Callable[[int], None] | None = None) -> list[Trajectory]:  # fmt: skip
    """Advance every state until it answers, stops without code, fails or reaches `max_turns`."""
    sessions = [Session(ws, limits) for ws in workspaces]
    results: list[list[ExecResult]] = [[] for _ in states]
    done: dict[int, Trajectory] = {}
    turn = 0
    try:
        while len(done) < len(states) and turn < max_turns:
            turn += 1
            active = [i for i in range(len(states)) if i not in done]
            outs = generate([states[i] for i in active])
            for i, out in zip(active, outs):
                s = states[i]
                if out is None:
                    done[i] = Trajectory(s.id, s.prompt, s.text, turn, False, "error", results[i], "generation failed")
                    continue
                s.text += cut_at_code_end(out)
                code = None if "</Answer>" in s.text else last_open_code(s.text)
                if code is None:
                    stop = "answer" if "</Answer>" in s.text else "no_code"
                    done[i] = Trajectory(s.id, s.prompt, s.text, turn, stop == "answer", stop, results[i])
                    continue
                if not s.text.endswith("</Code>"):
                    s.text += "</Code>"
                res = sessions[i].run(code)
                results[i].append(res)
                s.text += f"<Execute>\n{res.observation}\n</Execute>"
            if progress:
                progress(turn)
        for i, s in enumerate(states):
            if i not in done:
                done[i] = Trajectory(s.id, s.prompt, s.text, turn, False, "max_turns", results[i])
    finally:
        for session in sessions:
            session.close()
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

    def __init__(self, settings: LLMSettings, cache: ResponseCache, system: str | Callable[[State], str], log=None):
        self.settings, self.cache, self.system, self.log = settings, cache, system, log
        self.totals = Totals()

    def __call__(self, states: list[State]) -> list[str | None]:
        reqs = []
        for s in states:
            system = self.system(s) if callable(self.system) else self.system
            reqs.append(LLMRequest(s.id, chat_messages(system, s)))
        results, totals = run_requests(self.settings, reqs, self.cache, log=self.log, progress=False)
        for k, v in totals.as_dict().items():
            setattr(self.totals, k, getattr(self.totals, k) + v)
        return [r.text for r in results]


def render_prompt(tokenizer, state: State) -> str:
    """The text a trained model continues: the chat template (without the empty think block Qwen3's template
    opens when thinking is off: DeepAnalyze generates without it), then the trajectory so far."""
    prefix = tokenizer.apply_chat_template([{"role": "user", "content": state.prompt}], tokenize=False,
                                           add_generation_prompt=True, enable_thinking=False)  # fmt: skip
    return prefix.replace("<think>\n\n</think>\n\n", "") + state.text


class HFGenerator:
    """A local Hugging Face checkpoint continuing the single assistant message (how trained models run):
    stops at `</Code>` or the end-of-turn token. The states of a turn go through `generate` together, left-padded,
    `batch_size` at a time (one sequence at a time leaves most of a CPU idle)."""

    def __init__(self, model_dir: Path, max_new_tokens: int = 512, temperature: float = 0.0, seed: int = 0,
                 batch_size: int = 8):  # fmt: skip
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.max_new_tokens, self.temperature, self.batch_size = max_new_tokens, temperature, batch_size
        self.stop_ids = [self.tok.convert_tokens_to_ids("</Code>"), self.tok.eos_token_id]
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        torch.manual_seed(seed)

    def _input(self, s: State) -> list[int]:
        return self.tok.encode(render_prompt(self.tok, s), add_special_tokens=False)

    def _continuation(self, new: list[int]) -> str:
        """The generated ids up to the first stop id (a `</Code>` kept, the end-of-turn token dropped)."""
        for i, t in enumerate(new):
            if t in self.stop_ids:
                new = new[: i + 1] if t != self.tok.eos_token_id else new[:i]
                break
        return self.tok.decode(new, skip_special_tokens=False)

    def __call__(self, states: list[State]) -> list[str | None]:
        torch = self.torch
        outs = []
        for start in range(0, len(states), self.batch_size):
            inputs = [self._input(s) for s in states[start : start + self.batch_size]]
            width = max(map(len, inputs))
            ids = torch.tensor([[self.pad_id] * (width - len(x)) + x for x in inputs])
            mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in inputs])
            with torch.no_grad():
                gen = self.model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=self.max_new_tokens, eos_token_id=self.stop_ids,
                    do_sample=self.temperature > 0, temperature=self.temperature or None, pad_token_id=self.pad_id,
                )  # fmt: skip
            outs += [self._continuation(row[width:].tolist()) for row in gen]
        return outs
