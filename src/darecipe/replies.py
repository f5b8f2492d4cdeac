"""Reading the JSON object out of a teacher's or judge's reply: the one parser of the synthesis roles
(questioner, inspector), the judge and the summary teacher.

Replies come as a bare object, inside a ```json fence, or with prose around it; trailing commas are forgiven.
"""

from __future__ import annotations

import json
import re

FENCED_RE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)
WHOLE_FENCE_RE = re.compile(r"```(?:json)?\s*\n(.*?)\n?```", re.DOTALL)
TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")


def loads(text: str):
    """json.loads, and once more with trailing commas removed."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(TRAILING_COMMA_RE.sub(r"\1", text))


def balanced_objects(text: str) -> list[str]:
    """Every top-level balanced {...} of the text, in order."""
    found, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                found.append(text[start : i + 1])
    return found


def candidates(text: str) -> list[str]:
    """Where an object may be, most likely first: fenced blocks, the span from the first `{` to the last `}`, then
    each balanced object from the last (a verdict usually closes the reply)."""
    out = FENCED_RE.findall(text)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        out.append(text[start : end + 1])
    out += balanced_objects(text)[::-1]
    return list(dict.fromkeys(out))


def parse_json_object(text: str, whole: bool = False) -> dict:
    """The reply's JSON object; ValueError saying why not. `whole`: the reply must be the object (a ```json fence
    around it allowed), no prose."""
    if whole:
        body = text.strip()
        fence = WHOLE_FENCE_RE.fullmatch(body)
        try:
            data = json.loads(fence.group(1) if fence else body)
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON ({e.msg})") from None
    else:
        found = candidates(text)
        if not found:
            raise ValueError("no JSON object in the reply")
        data, error = None, None
        for c in found:
            try:
                data = loads(c)
                break
            except json.JSONDecodeError as e:
                error = e
        if data is None:
            raise ValueError(f"not JSON ({error.msg})")
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data
