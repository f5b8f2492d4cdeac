"""Evaluation on held-out tasks: the task list, its disjointness from every training set, and the metrics.

Metrics of one trajectory (`score`) and of a stage (`aggregate`), as docs/recipe.md §7 reports them:
- format validity: the trajectory passes the deterministic structure checks (`tags.check_structure`);
- task accuracy: the final `<Answer>` matches the gold answer — WikiTQ by denotation, as the official
  evaluator (`evaluator.py` of WikiTableQuestions) does it, every other source with numeric tolerance;
- completion rate: the trajectory reached `</Answer>`;
- average rounds: generation turns (a turn ends at `</Code>` or at the end of the reply);
- code success rate: executed blocks that ran without error, over all executed blocks;
- tokens per task: tokens the model generated (`<Execute>` observations excluded).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .answers import answers_match
from .io import InputError, Rejects, read_jsonl, require
from .loaders import TaskRecord, load_file_tasks, load_finqa, load_tatqa, load_wikitq, read_tsv
from .tags import check_structure, final_answer

SOURCES = ("wikitq", "finqa", "tatqa", "dabstep", "file")
EXECUTE_SPAN_RE = re.compile(r"<Execute>.*?</Execute>", re.DOTALL)


# --- WikiTableQuestions denotation match (a port of the official evaluator.py) ---------------------------------


def wtq_normalize(x: str) -> str:
    x = "".join(c for c in unicodedata.normalize("NFKD", x) if unicodedata.category(c) != "Mn")
    x = re.sub(r"[‘’´`]", "'", x)
    x = re.sub(r"[“”]", '"', x)
    x = re.sub(r"[‐‑‒–—−]", "-", x)
    while True:
        old = x
        x = re.sub(r"((?<!^)\[[^\]]*\]|\[\d+\]|[•♦†‡*#+])*$", "", x.strip())  # citations
        x = re.sub(r"(?<!^)( \([^)]*\))*$", "", x.strip())  # details in parentheses
        x = re.sub(r'^"([^"]*)"$', r"\1", x.strip())  # outermost quotes
        if x == old:
            break
    if x and x[-1] == ".":
        x = x[:-1]
    return re.sub(r"\s+", " ", x, flags=re.U).lower().strip()


def _parse_number(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            v = float(text)
        except ValueError:
            return None
        return None if math.isnan(v) or math.isinf(v) else v


def _parse_date(text: str):
    parts = text.lower().split("-")
    if len(parts) != 3:
        return None
    try:
        y = -1 if parts[0] in ("xx", "xxxx") else int(parts[0])
        m = -1 if parts[1] == "xx" else int(parts[1])
        d = -1 if parts[2] == "xx" else int(parts[2])
    except ValueError:
        return None
    if y == m == d == -1 or not (m == -1 or 1 <= m <= 12) or not (d == -1 or 1 <= d <= 31):
        return None
    return (y, m, d)


@dataclass(frozen=True)
class WtqValue:
    kind: str  # string | number | date
    normalized: str
    amount: float | None = None
    ymd: tuple | None = None

    def match(self, other: WtqValue) -> bool:
        if self.normalized == other.normalized:
            return True
        if self.kind == "number" and other.kind == "number":
            return abs(self.amount - other.amount) < 1e-6
        if self.kind == "date" and other.kind == "date":
            return self.ymd == other.ymd
        return False


def wtq_value(original: str, canon: str | None = None) -> WtqValue:
    canon = original if canon is None else canon
    norm = wtq_normalize(original)
    amount = _parse_number(canon)
    if amount is not None:
        return WtqValue("number", norm or str(amount), amount=float(amount))
    ymd = _parse_date(canon)
    if ymd is not None:
        return WtqValue("date", norm or "{:04d}-{:02d}-{:02d}".format(*ymd).replace("-1", "xx"), ymd=ymd)
    return WtqValue("string", norm)


def wtq_values(originals: list[str], canons: list[str] | None = None) -> list[WtqValue]:
    if canons is not None and len(canons) != len(originals):
        canons = None
    vals = [wtq_value(o, canons[i] if canons else None) for i, o in enumerate(originals)]
    return list(dict.fromkeys(vals))  # the evaluator takes the set of values


def wtq_denotation_match(predicted: list[str], targets: list[str], canons: list[str] | None = None) -> bool:
    tv, pv = wtq_values(targets, canons), wtq_values(predicted)
    return len(tv) == len(pv) and all(any(t.match(p) for p in pv) for t in tv)


# --- scoring ------------------------------------------------------------------------------------------------------


def is_correct(task: dict, answer: str | None, rel_tol: float) -> bool:
    if answer is None:
        return False
    if task["source"] == "wikitq":
        predicted = [a.strip() for a in answer.split("|") if a.strip()]
        return wtq_denotation_match(predicted, task["meta"]["answer_list"], task["meta"].get("canon"))
    return answers_match(answer, task["answer"], rel_tol)


def generated_text(text: str) -> str:
    """What the model wrote: the trajectory without the environment's `<Execute>` observations."""
    return EXECUTE_SPAN_RE.sub("", text)


def score(task: dict, traj: dict, rel_tol: float, n_tokens: int) -> dict:
    """One trajectory (`text`, `turns`, `exec_ok`, `exec_total`) against its task."""
    text = traj["text"]
    answer = final_answer(text)
    completed = "</Answer>" in text
    return {
        "id": task["id"],
        "source": task["source"],
        "format_ok": check_structure(text).ok,
        "completed": completed,
        "answer": answer,
        "gold": task["answer"],
        "correct": completed and is_correct(task, answer, rel_tol),
        "rounds": traj["turns"],
        "code_blocks": traj["exec_total"],
        "code_ok": traj["exec_ok"],
        "tokens": n_tokens,
    }


def _mean(xs):
    xs = list(xs)
    return round(sum(xs) / len(xs), 6) if xs else None


def aggregate(rows: list[dict]) -> dict:
    blocks = sum(r["code_blocks"] for r in rows)
    out = {
        "tasks": len(rows),
        "format_validity": _mean(r["format_ok"] for r in rows),
        "accuracy": _mean(r["correct"] for r in rows),
        "completion_rate": _mean(r["completed"] for r in rows),
        "avg_rounds": _mean(r["rounds"] for r in rows),
        "code_success_rate": round(sum(r["code_ok"] for r in rows) / blocks, 6) if blocks else None,
        "code_blocks": blocks,
        "tokens_per_task": _mean(r["tokens"] for r in rows),
    }
    out["by_source"] = {
        s: {"tasks": len(sub), "accuracy": _mean(r["correct"] for r in sub)}
        for s in SOURCES
        if (sub := [r for r in rows if r["source"] == s])
    }
    return out


# --- held-out tasks ------------------------------------------------------------------------------------------------


def read_heldout(path: str | Path) -> dict[str, list[str]]:
    """The fixed held-out list: JSONL lines {"source": wikitq|finqa|tatqa|dabstep, "id": …}, in order."""
    out: dict[str, list[str]] = {s: [] for s in SOURCES}
    for lineno, rec in read_jsonl(path):
        where = f"{path}:{lineno}"
        src = require(rec, "source", str, where)
        if src not in SOURCES or src == "file":
            raise InputError(f"{where}: field 'source': {src!r} is not one of wikitq, finqa, tatqa, dabstep")
        out[src].append(str(require(rec, "id", str, where)))
    return out


def heldout_ids(path: str | Path, file_tasks: str | Path) -> set[str]:
    ids = {i for ids in read_heldout(path).values() for i in ids}
    ids |= {str(rec.get("id")) for _, rec in read_jsonl(file_tasks)}
    return ids


def _pick(tasks: list[TaskRecord], ids: list[str], source: str, where: str) -> list[TaskRecord]:
    by_id = {t.id: t for t in tasks}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise InputError(
            f"{where}: held-out {source} id {missing[0]!r} is not in the {source} data ({len(missing)} missing)"
        )
    return [by_id[i] for i in ids]


def wikitq_canon(tagged: Path) -> dict[str, list[str]]:
    """targetCanon per question id from the CoreNLP-tagged file (what the official evaluator compares with)."""
    df = read_tsv(tagged, ("id", "targetValue", "targetCanon"))
    return {r["id"]: (r["targetCanon"].split("|") if r["targetCanon"] else None) for r in df.iter_rows(named=True)}


def load_heldout(cfg: dict, rejects: Rejects) -> tuple[list[TaskRecord], list[str]]:
    """Every held-out task as a TaskRecord, and notes of what was skipped."""
    ids = read_heldout(cfg["heldout"])
    limit = cfg["limit_per_source"]
    notes: list[str] = []
    take = (lambda xs: xs[:limit]) if limit is not None else (lambda xs: xs)
    w = cfg["wikitq"]
    wikitq = _pick(
        load_wikitq(Path(w["path"]), Path(w["root"]), rejects), take(ids["wikitq"]), "wikitq", cfg["heldout"]
    )
    canon = wikitq_canon(Path(w["tagged"])) if w.get("tagged") else {}
    for t in wikitq:
        t.meta["canon"] = canon.get(t.id)
    finqa = _pick(load_finqa(Path(cfg["finqa"]), rejects), take(ids["finqa"]), "finqa", cfg["heldout"])
    tatqa = _pick(load_tatqa(Path(cfg["tatqa"]), rejects), take(ids["tatqa"]), "tatqa", cfg["heldout"])
    files = take(load_file_tasks(Path(cfg["file_tasks"]), Path(cfg["data_root"]), rejects))
    dabstep: list[TaskRecord] = []
    d = cfg["dabstep"]
    wanted = take(ids["dabstep"])
    if wanted and not d.get("context_dir"):
        notes.append(
            f"dabstep: {len(wanted)} held-out tasks skipped: eval.dabstep.context_dir is not set "
            "(DABStep's context files are not shipped; see resources/data/dabstep/NOTICE.md)"
        )
    elif wanted:
        ctx = Path(d["context_dir"])
        files_there = sorted(str(p.relative_to(ctx)) for p in ctx.iterdir() if p.is_file())
        all_tasks = {}
        for lineno, rec in read_jsonl(d["tasks"]):
            all_tasks[str(rec.get("task_id"))] = (lineno, rec)
        for i in wanted:
            if i not in all_tasks:
                raise InputError(f"{cfg['heldout']}: held-out dabstep id {i!r} is not in {d['tasks']}")
            lineno, rec = all_tasks[i]
            q = require(rec, "question", str, f"{d['tasks']}:{lineno}")
            guide = rec.get("guidelines") or ""
            dabstep.append(
                TaskRecord(
                    id=f"dabstep-{i}",
                    source="dabstep",
                    question=f"{q}\n{guide}".strip(),
                    answer=str(rec.get("answer", "")),
                    files=files_there,
                    kind="dabstep",
                    meta={"context_dir": str(ctx)},
                )
            )
    tasks = wikitq + finqa + tatqa + dabstep + files  # each record's `source` names its scorer
    return tasks, notes


# --- disjointness -------------------------------------------------------------------------------------------------


def normalise_question(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def training_records(path: Path) -> list[tuple[str, str, str]]:
    """(where, id, user text) of every record of a training file: JSONL/JSON with `messages`, parquet RL rows."""
    out = []
    if path.suffix == ".parquet":
        import polars as pl

        df = pl.read_parquet(path)
        for i, row in enumerate(df.iter_rows(named=True)):
            msgs = row.get("prompt") or []
            text = " ".join(str(m.get("content", "")) for m in msgs if m.get("role") in ("user", "system"))
            text += " " + str(row.get("input_seq") or "")
            rid = str(row.get("id") or row.get("workspace_id") or "")
            out.append((f"{path}:row {i}", rid, text))
        return out
    if path.stat().st_size == 0:
        return out
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        recs = list(enumerate(data if isinstance(data, list) else [data], start=1))
    else:
        recs = list(read_jsonl(path))
    for n, rec in recs:
        msgs = rec.get("messages") or []
        text = " ".join(str(m.get("content", "")) for m in msgs if m.get("role") in ("user", "system"))
        text += " " + str(rec.get("question") or "") + " " + str(rec.get("task") or "")
        out.append((f"{path}:{n}", str(rec.get("id") or ""), text))
    return out


def overlaps(tasks: list[dict], training_files: list[Path]) -> list[str]:
    """Held-out tasks found in a training file, by task id or by normalised question text inside a prompt."""
    found = []
    by_id = {t["id"]: t for t in tasks}
    questions = [(t["id"], normalise_question(t["question"])) for t in tasks]
    for path in training_files:
        for where, rid, text in training_records(Path(path)):
            if rid in by_id:
                found.append(f"{where}: held-out task {rid!r} is a training record (same id)")
                continue
            padded = f" {normalise_question(text)} "
            for tid, q in questions:
                if q and f" {q} " in padded:
                    found.append(f"{where}: the question of held-out task {tid!r} appears in a training prompt")
    return found


# --- the table across stages ---------------------------------------------------------------------------------------

COLUMNS = (
    ("accuracy", "accuracy", "pct"),
    ("completion_rate", "completion", "pct"),
    ("format_validity", "format valid", "pct"),
    ("avg_rounds", "avg rounds", "num"),
    ("code_success_rate", "code success", "pct"),
    ("tokens_per_task", "tokens/task", "num"),
)

RECIPE_EXPECTED = {
    "stage1": "~85 % single-task accuracy, no multi-turn",
    "stage2": "~83 %, 8-10 rounds",
    "stage3": "~87 %, 4-6 rounds, ~92 % completion",
}


def _cell(v, kind):
    if v is None:
        return "—"
    return f"{100 * v:.1f} %" if kind == "pct" else f"{v:.1f}"


def summary_markdown(results: dict[str, dict]) -> str:
    """The table across stages, then accuracy by source (each cell: correct / tasks of that source)."""
    head = "| stage | tasks | " + " | ".join(c[1] for c in COLUMNS) + " | paper (docs/recipe.md §7) |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for stage, m in results.items():
        cells = " | ".join(_cell(m.get(k), kind) for k, _, kind in COLUMNS)
        lines.append(f"| {stage} | {m['tasks']} | {cells} | {RECIPE_EXPECTED.get(stage, '')} |")
    sources = [s for s in SOURCES if any(s in (m.get("by_source") or {}) for m in results.values())]
    if sources:
        lines += ["", "| accuracy by source | " + " | ".join(sources) + " |", "|" + "---|" * (len(sources) + 1)]
        for stage, m in results.items():
            by = m.get("by_source") or {}
            cells = [
                f"{round(by[s]['accuracy'] * by[s]['tasks'])}/{by[s]['tasks']}" if s in by else "—" for s in sources
            ]
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
