"""Summary-enhanced agent SFT (docs/recipe.md §8): agent traces -> per-step samples -> teacher summaries -> two sets.

A trace is a question and the agent's side of the episode as one text in which every result the environment
returned sits inline between its result tags (`<information>` for a search agent, `<Execute>` for DeepAnalyze).
A *tag family* names the result tag and the answer tag; the same code splits every family.

- multi-turn form: question as the user turn, then alternately an agent step (assistant) and a result (user,
  tags kept), ending with the step that holds the answer;
- samples: a trace with N results gives N samples; sample i's prompt is everything through result i, its target
  the step after it (up to the next result, or through the answer); a trace with no result gives one sample
  (question -> answer); a trace without an answer after its last result is rejected;
- a summary of a sample: the question, a short summary of the reasoning so far and key facts quoted verbatim
  from the sample's results; a quote that is not a substring of one of those results rejects the summary.

Pure logic; the rule scripts (scripts/summary_*.py) do the I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from string import Template

from .answers import answers_match
from .chat import chat_text
from .replies import parse_json_object

SUMMARY_OPEN, SUMMARY_CLOSE = "<summary>", "</summary>"
# Chat-template text (Search-R1 rollouts): `<|im_start|>role\n...` blocks; the last assistant block runs on to
# the end of the rollout (its results are inline and it has no `<|im_end|>`).
CHAT_BLOCK_RE = re.compile(r"<\|im_start\|>(system|user|assistant)\n(.*?)(?=<\|im_end\|>|<\|im_start\|>|\Z)", re.DOTALL)


class TraceError(ValueError):
    """A trace that cannot be split; the message is the reject reason."""


class SummaryError(ValueError):
    """A teacher summary that cannot be used; the message is the reject reason."""


@dataclass(frozen=True)
class TagFamily:
    name: str
    result: str
    answer: str

    @classmethod
    def from_config(cls, families: dict) -> dict[str, TagFamily]:
        return {name: cls(name, f["result"], f["answer"]) for name, f in families.items()}

    def blocks(self, tag: str) -> re.Pattern:
        return re.compile(f"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", re.DOTALL)

    def result_inner(self, block: str) -> str:
        """The text of a result block without its tags."""
        m = self.blocks(self.result).fullmatch(block.strip())
        return m.group(1) if m else block

    def final_answer(self, text: str) -> str | None:
        found = self.blocks(self.answer).findall(text)
        return found[-1].strip() if found else None


@dataclass
class Trace:
    id: str
    source: str
    family: str
    question: str
    text: str  # the agent's side, results inline
    system: str | None = None


# ---------------------------------------------------------------- reading traces


def traces_from_chat_text(text: str, name: str, family: str) -> list[Trace]:
    """Rollouts in chat-template text (Search-R1's `case.txt`): a rollout starts at a system block, or at a user
    block that follows an assistant block. Trace ids are `<name>-<k>`, k counting rollouts from 1."""
    rollouts: list[dict] = []
    for m in CHAT_BLOCK_RE.finditer(text):
        role, content = m.group(1), m.group(2).strip()
        cur = rollouts[-1] if rollouts else None
        if cur is None or role == "system" or (role == "user" and "assistant" in cur):
            cur = {}
            rollouts.append(cur)
        cur[role] = (cur[role] + "\n" + content) if role in cur else content
    traces = []
    for k, r in enumerate(rollouts):
        traces.append(
            Trace(f"{name}-{k + 1}", name, family, r.get("user", ""), r.get("assistant", ""), r.get("system"))
        )
    return traces


def trace_from_messages(rec: dict, trace_id: str, source: str, family: str) -> Trace:
    """A chat record: optional system message, the user's question, then the agent's side, either one assistant
    message with the results inline or several messages (results wrapped in their tags), joined in order."""
    msgs = rec.get("messages")
    if not isinstance(msgs, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs):
        raise TraceError("bad record: field 'messages' must be a list of {role, content} objects")
    system = next((m["content"] for m in msgs if m.get("role") == "system"), None)
    q = next((i for i, m in enumerate(msgs) if m.get("role") == "user"), None)
    if q is None:
        raise TraceError("bad record: no user message (the question)")
    return Trace(trace_id, source, family, msgs[q]["content"], "".join(m["content"] for m in msgs[q + 1 :]), system)


# ---------------------------------------------------------------- splitting


def split_trace(trace: Trace, fam: TagFamily) -> list[dict]:
    """The trace in multi-turn form: [system], user question, assistant step, user result, ..., assistant step
    through the answer (text after the answer is dropped). Raises TraceError with the reject reason."""
    if not trace.question.strip():
        raise TraceError("no question: the trace has no user message")
    text = trace.text
    opens = text.count(f"<{fam.result}>")
    closes = text.count(f"</{fam.result}>")
    results = list(fam.blocks(fam.result).finditer(text))
    if opens != closes or len(results) != opens:
        raise TraceError(f"unbalanced result tags: {opens} <{fam.result}> and {closes} </{fam.result}>")
    steps, start = [], 0
    for m in results:
        steps.append(text[start : m.start()])
        start = m.end()
    last = text[start:]
    answer = fam.blocks(fam.answer).search(last)
    if answer is None:
        where = "after the last result" if results else "in a trace without results"
        raise TraceError(f"no answer: no <{fam.answer}> block {where}")
    steps.append(last[: answer.end()])
    for i, step in enumerate(steps):
        if not step.strip():
            where = "before the first result" if i == 0 else f"between result {i} and the next"
            raise TraceError(f"empty step: no agent text {where}")
    msgs = ([{"role": "system", "content": trace.system}] if trace.system else []) + [
        {"role": "user", "content": trace.question.strip()}
    ]
    for i, step in enumerate(steps):
        msgs.append({"role": "assistant", "content": step.strip()})
        if i < len(results):
            msgs.append({"role": "user", "content": results[i].group(0)})
    return msgs


def multiturn_record(trace: Trace, fam: TagFamily) -> dict:
    msgs = split_trace(trace, fam)
    return {
        "id": trace.id,
        "source": trace.source,
        "family": trace.family,
        "messages": msgs,
        "answer": fam.final_answer(msgs[-1]["content"]),
    }


def _question_index(msgs: list[dict]) -> int:
    return next(i for i, m in enumerate(msgs) if m["role"] == "user")


def samples_from_multiturn(rec: dict, fam: TagFamily) -> list[dict]:
    """N results -> N samples; no result -> one (question -> answer). Sample ids are `<trace id>#<step>`."""
    msgs = rec["messages"]
    q = _question_index(msgs)
    result_at = [i for i in range(q + 1, len(msgs)) if msgs[i]["role"] == "user"]
    cuts = result_at or [q]
    out = []
    for step, cut in enumerate(cuts, start=1 if result_at else 0):
        out.append(
            {
                "id": f"{rec['id']}#{step}",
                "trace_id": rec["id"],
                "step": step,
                "steps": len(result_at),
                "source": rec["source"],
                "family": rec["family"],
                "prompt": msgs[: cut + 1],
                "target": msgs[cut + 1]["content"],
                "results": [fam.result_inner(msgs[i]["content"]) for i in result_at if i <= cut],
                "is_final": cut + 2 == len(msgs),
                "answer": rec["answer"],
            }
        )
    return out


def system_of(prompt: list[dict]) -> list[dict]:
    return [m for m in prompt if m["role"] == "system"]


def flat_prompt(prompt: list[dict]) -> str:
    """The prompt as one user turn: the question, a blank line, then the steps and results so far, one per line."""
    q = _question_index(prompt)
    context = "\n".join(m["content"] for m in prompt[q + 1 :])
    return prompt[q]["content"] + (f"\n\n{context}" if context else "")


# ---------------------------------------------------------------- summaries


@dataclass
class Summary:
    question: str
    reasoning: str
    key_facts: list[str]


def summary_messages(tpl: Template, sample: dict) -> list[dict]:
    q = _question_index(sample["prompt"])
    trace = "\n".join(m["content"] for m in sample["prompt"][q + 1 :])
    return [{"role": "user", "content": tpl.substitute(question=sample["prompt"][q]["content"], trace=trace)}]


def parse_summary_reply(text: str) -> Summary:
    """The teacher's JSON reply (a ```json fence around it is allowed)."""
    try:
        data = parse_json_object(text, whole=True)
    except ValueError as e:
        raise SummaryError(f"unparseable summary: {e}") from None
    for key in ("question", "reasoning"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise SummaryError(f"unparseable summary: '{key}' must be a non-empty string")
    facts = data.get("key_facts")
    if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
        raise SummaryError("unparseable summary: 'key_facts' must be a list of strings")
    return Summary(data["question"].strip(), data["reasoning"].strip(), facts)


def check_quotes(summary: Summary, results: list[str], min_chars: int) -> str | None:
    """None if every key fact occurs verbatim in one of the results, else the reject reason. A sample with
    results needs at least one fact; a sample without results (question -> answer) may have none."""
    if results and not summary.key_facts:
        return "no key facts: the summary quotes nothing from the results"
    for fact in summary.key_facts:
        if len(fact.strip()) < min_chars:
            return f"quote too short: {fact!r} (fewer than {min_chars} characters)"
        if not any(fact in r for r in results):
            return f"quote not in the results: {fact[:80]!r}"
    return None


def render_summary(s: Summary) -> str:
    """The summary as the trained model reads and writes it; each fact as a JSON string on its own line, so a
    quote spanning lines stays one line and can be read back exactly (`parse_rendered_summary`)."""
    facts = "\n".join(f"- {json.dumps(f, ensure_ascii=False)}" for f in s.key_facts) or "- (none)"
    return (
        f"{SUMMARY_OPEN}\nQuestion: {s.question}\nReasoning so far: {s.reasoning}\n"
        f"Key facts (quoted from the results):\n{facts}\n{SUMMARY_CLOSE}"
    )


def parse_rendered_summary(text: str) -> Summary | None:
    """A summary block at the start of a generated text (None if there is none or it is malformed)."""
    m = re.match(
        rf"\s*{SUMMARY_OPEN}\nQuestion: (.*?)\nReasoning so far: (.*?)\nKey facts \(quoted from the results\):\n"
        rf"(.*?)\n{SUMMARY_CLOSE}",
        text,
        re.DOTALL,
    )
    if not m:
        return None
    facts = []
    for line in m.group(3).splitlines():
        if line == "- (none)":
            continue
        try:
            fact = json.loads(line[2:]) if line.startswith("- ") else None
        except json.JSONDecodeError:
            return None
        if not isinstance(fact, str):
            return None
        facts.append(fact)
    return Summary(m.group(1), m.group(2), facts)


def with_summary_record(sample: dict, s: Summary) -> dict:
    return {**sample, "summary": asdict(s), "summary_text": render_summary(s)}


# ---------------------------------------------------------------- training sets and split


def summary_prefix_record(rec: dict) -> dict:
    """Prompt = the full context, target = summary, then the original target."""
    msgs = system_of(rec["prompt"]) + [
        {"role": "user", "content": flat_prompt(rec["prompt"])},
        {"role": "assistant", "content": f"{rec['summary_text']}\n\n{rec['target']}"},
    ]
    return {"messages": msgs, "id": rec["id"], "trace_id": rec["trace_id"], "step": rec["step"]}


def summary_only_record(rec: dict) -> dict:
    """Prompt = the summary alone, target = the original target."""
    msgs = system_of(rec["prompt"]) + [
        {"role": "user", "content": rec["summary_text"]},
        {"role": "assistant", "content": rec["target"]},
    ]
    return {"messages": msgs, "id": rec["id"], "trace_id": rec["trace_id"], "step": rec["step"]}


def multiturn_train_record(rec: dict) -> dict:
    return {"messages": rec["messages"], "id": rec["id"], "trace_id": rec["id"], "step": 0}


def val_traces(trace_ids: list[str], ratio: float, seed: int) -> set[str]:
    """The traces held out for validation: round(ratio x traces) of them (at least one when ratio > 0 and there
    are two or more traces, never all), chosen by a seeded hash of the id, so the choice does not depend on
    input order and every sample of a trace falls on the same side."""
    ids = sorted(set(trace_ids))
    if ratio <= 0 or len(ids) < 2:
        return set()
    n = min(len(ids) - 1, max(1, round(ratio * len(ids))))
    ranked = sorted(ids, key=lambda t: hashlib.sha256(f"{seed}\0{t}".encode()).hexdigest())
    return set(ranked[:n])


def split_records(records: list[dict], val: set[str]) -> tuple[list[dict], list[dict]]:
    return [r for r in records if r["trace_id"] not in val], [r for r in records if r["trace_id"] in val]


# ---------------------------------------------------------------- token statistics and evaluation


def token_stats(records: list[dict], encode) -> dict:
    """Mean prompt tokens (everything before the last assistant message), target tokens and total, per record."""
    if not records:
        return {"records": 0, "prompt_tokens_mean": None, "target_tokens_mean": None, "total_tokens_mean": None}
    prompt = [len(encode(chat_text(r["messages"][:-1]))) for r in records]
    target = [len(encode(chat_text(r["messages"][-1:]))) for r in records]
    n = len(records)
    return {
        "records": n,
        "prompt_tokens_mean": round(sum(prompt) / n, 1),
        "target_tokens_mean": round(sum(target) / n, 1),
        "total_tokens_mean": round((sum(prompt) + sum(target)) / n, 1),
    }


def split_generated(text: str) -> tuple[Summary | None, str]:
    """(summary, what follows it) of a summary-prefix model's output; (None, text) without a summary block."""
    s = parse_rendered_summary(text)
    if s is None:
        return None, text
    return s, text[text.index(SUMMARY_CLOSE) + len(SUMMARY_CLOSE) :].strip()


def score_output(rec: dict, fam: TagFamily, generated: str, with_summary: bool, rel_tol: float, min_chars: int) -> dict:
    """One generated output against its sample: summary validity (summary-prefix) and answer match (samples whose
    target holds the answer)."""
    out: dict = {"id": rec["id"], "generated_chars": len(generated)}
    rest = generated
    if with_summary:
        s, rest = split_generated(generated)
        out["summary_parsed"] = s is not None
        out["summary_valid"] = s is not None and check_quotes(s, rec["results"], min_chars) is None
    if rec["is_final"] and rec.get("answer") is not None:
        out["answer_match"] = answers_match(fam.final_answer(rest), rec["answer"], rel_tol)
    return out


def _rate(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if key in r]
    return round(sum(vals) / len(vals), 4) if vals else None


def aggregate(rows: list[dict], lengths: list[int]) -> dict:
    return {
        "samples": len(rows),
        "answer_samples": sum("answer_match" in r for r in rows),
        "answer_match_rate": _rate(rows, "answer_match"),
        "summary_parsed_rate": _rate(rows, "summary_parsed"),
        "summary_quote_valid_rate": _rate(rows, "summary_valid"),
        "generated_tokens_mean": round(sum(lengths) / len(lengths), 1) if lengths else None,
    }
