"""Comparing a final answer with a gold answer: text normalisation, numeric tolerance, answer lists."""

from __future__ import annotations

import math
import re

_NUM_RE = re.compile(r"^[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?$", re.IGNORECASE)


def normalise_answer(s: str) -> str:
    s = s.strip().strip("*").strip()
    s = re.sub(r"\s+", " ", s)
    return s.rstrip(".").strip().lower()


def parse_number(s: str) -> tuple[float, bool] | None:
    """(value, had a percent sign) for strings like '$1,496.5', '-12.6', '(3,405)', '22.2 %', '−0.1'."""
    t = normalise_answer(s).replace("\u2212", "-").replace(",", "").replace("$", "").replace(" ", "")
    percent = t.endswith("%")
    t = t.rstrip("%")
    for word in ("million", "billion", "thousand", "percent"):
        if t.endswith(word):
            percent = percent or word == "percent"
            t = t[: -len(word)]
    negative = t.startswith("(") and t.endswith(")")
    t = t.strip("()")
    if not _NUM_RE.match(t):
        return None
    value = float(t)
    return (-value if negative else value), percent


def numbers_match(a: float, b: float, rel_tol: float) -> bool:
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-9)


def answers_match(pred: str | None, gold: str, rel_tol: float = 1e-3) -> bool:
    """Exact match after normalisation; numbers within `rel_tol` (a percentage may be given as a fraction or
    the other way round); ' | '-separated gold lists match as sets."""
    if pred is None:
        return False
    if normalise_answer(pred) == normalise_answer(gold):
        return True
    if " | " in gold:
        golds = sorted(normalise_answer(g) for g in gold.split(" | "))
        preds = sorted(normalise_answer(p) for p in re.split(r"\s*[|;]\s*|,\s+(?=\D)", pred) if p.strip())
        return (
            preds == golds
            or all(answers_match(p, g, rel_tol) for p, g in zip(preds, golds))
            and len(preds) == len(golds)
        )
    p, g = parse_number(pred), parse_number(gold)
    if p is None or g is None:
        return False
    (pv, pp), (gv, gp) = p, g
    # Whole-number golds (years, counts) must match exactly; tolerance is for computed decimals.
    tol = 0.0 if gv == int(gv) and "." not in gold else rel_tol
    if numbers_match(pv, gv, tol):
        return True
    if pp != gp:  # 22.2 % vs 0.222
        return numbers_match(pv, gv * 100, rel_tol) or numbers_match(pv * 100, gv, rel_tol)
    return False
