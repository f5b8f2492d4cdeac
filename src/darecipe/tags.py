"""The five DeepAnalyze actions, their ten tags, and parsing of tagged trajectories.

Token ids are never hard-coded: they are read from the tokenizer (`tag_ids`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ACTIONS = ("Analyze", "Understand", "Code", "Execute", "Answer")
TAGS = tuple(t for a in ACTIONS for t in (f"<{a}>", f"</{a}>"))

CODE_BLOCK_RE = re.compile(r"<Code>(.*?)</Code>", re.DOTALL)
EXECUTE_RE = re.compile(r"<Execute>(.*?)</Execute>", re.DOTALL)
ANSWER_RE = re.compile(r"<Answer>(.*?)</Answer>", re.DOTALL)
# A ```python fence around a <Code> body: the language tag (python, python3, py) ends at a space or newline, and a
# one-line block ("```python print(1)```") has its code after that space.
FENCE_RE = re.compile(r"^\s*```(?:[ \t]*(?:python3?|py)(?=\s))?[ \t]*\n?(.*?)\n?```\s*$", re.DOTALL | re.IGNORECASE)


def tag_ids(tokenizer) -> dict[str, int]:
    """Map each tag to its id, and fail if any tag is not a single token."""
    out = {}
    for tag in TAGS:
        ids = tokenizer.encode(tag, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"tag {tag} encodes to {len(ids)} tokens {ids}; the vocabulary lacks it")
        out[tag] = ids[0]
    return out


def strip_fence(code: str) -> str:
    """Remove a ```python fence around a <Code> body (the paper runs the body only)."""
    m = FENCE_RE.match(code)
    return m.group(1) if m else code.strip("\n")


def is_python_fenced(code: str) -> bool:
    """The reward's fence check, as the release's: the block, stripped, starts with ```python and ends with ```."""
    block = code.strip()
    return block.startswith("```python") and block.endswith("```") and len(block) >= len("```python```")


def code_blocks(text: str) -> list[str]:
    return CODE_BLOCK_RE.findall(text)


def last_open_code(text: str) -> str | None:
    """The body of a trailing <Code> block, closed or not (generation stops at </Code>)."""
    start = text.rfind("<Code>")
    if start < 0:
        return None
    body = text[start + len("<Code>") :]
    end = body.find("</Code>")
    if end >= 0:
        if body[end + len("</Code>") :].strip():
            return None
        body = body[:end]
    return body


def final_answer(text: str) -> str | None:
    """Text of the last <Answer> block. As in the release, if it contains "Answer:", the answer is what follows the
    first one ("The final Answer: 42" -> "42"); a leading "**Answer**:" or "answer：" is removed too."""
    found = ANSWER_RE.findall(text)
    if not found:
        return None
    ans = found[-1].strip()
    if "Answer:" in ans:
        ans = ans.split("Answer:")[1]
    ans = re.sub(r"^\**answer\**\s*[:：]\s*", "", ans.strip(), flags=re.IGNORECASE)
    return ans.strip()


@dataclass
class FormatCheck:
    ok: bool
    reasons: list[str]


def check_structure(text: str) -> FormatCheck:
    """Deterministic structure checks of a trajectory: balanced, non-nested tags in order,
    every <Code> followed by its <Execute>, exactly one <Answer>, nothing after it."""
    reasons: list[str] = []
    open_tag: str | None = None
    last_closed: str | None = None
    for m in re.finditer(r"</?(Analyze|Understand|Code|Execute|Answer)>", text):
        name, closing = m.group(1), m.group(0).startswith("</")
        if not closing:
            if open_tag is not None:
                reasons.append(f"<{name}> opened inside <{open_tag}>")
                break
            if last_closed == "Code" and name != "Execute":
                reasons.append("<Code> block not followed by <Execute>")
                break
            if name == "Execute" and last_closed != "Code":
                reasons.append("<Execute> without a preceding <Code>")
                break
            open_tag = name
        else:
            if open_tag != name:
                reasons.append(f"</{name}> closes {'nothing' if open_tag is None else '<' + open_tag + '>'}")
                break
            open_tag, last_closed = None, name
    else:
        if open_tag is not None:
            reasons.append(f"<{open_tag}> never closed")
        if last_closed == "Code":
            reasons.append("final <Code> block has no <Execute>")
    n_answers = len(ANSWER_RE.findall(text))
    if n_answers != 1:
        reasons.append(f"{n_answers} <Answer> blocks (need exactly 1)")
    elif text.rstrip().endswith("</Answer>") is False:
        reasons.append("text after </Answer>")
    return FormatCheck(not reasons, reasons)
