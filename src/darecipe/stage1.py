"""Stage-1 data (docs/recipe.md §3): teacher prompts, checks of the teacher's replies, file tasks run for real, the mix.

Pure logic; the rule scripts do the I/O. A reply that fails a check becomes a reject with the reason.
"""

from __future__ import annotations

import random
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

from .answers import answers_match, normalise_answer, parse_number
from .io import read_text
from .loaders import TaskRecord, materialise_files, table_text
from .prompts import table_prompt, task_prompt
from .sandbox import SandboxLimits, Session, execute_block
from .tags import check_structure, code_blocks, final_answer

TABLE_TAGS = {"Analyze", "Understand", "Answer"}


def _text_parts(task: TaskRecord) -> dict:
    if task.text:
        return {"text_hint": " and the text", "text_section": f"\n# Text\n{task.text.strip()}\n"}
    return {"text_hint": "", "text_section": ""}


def student_prompt(task: TaskRecord) -> str:
    """What the trained model sees: the task without the gold answer."""
    return table_prompt(task.question, table_text(task.table), task.text)


def distill_messages(tpl: Template, task: TaskRecord) -> list[dict]:
    body = tpl.substitute(question=task.question, table=table_text(task.table), answer=task.answer, **_text_parts(task))
    return [{"role": "user", "content": body}]


def sample_cues(cues: list[str], record_id: str, k: int, seed: int) -> list[str]:
    """k cues for a record, from an RNG seeded by (seed, record id): independent of sharding and order."""
    return random.Random(f"{seed}:{record_id}").sample(cues, k)


def read_cues(path: str | Path) -> list[str]:
    lines = read_text(path).splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def refine_messages(tpl: Template, task: TaskRecord, reasoning: str, cues: list[str]) -> list[dict]:
    body = tpl.substitute(
        question=task.question,
        table=table_text(task.table),
        answer=task.answer,
        reasoning=reasoning,
        cues="\n".join(f"- {c}" for c in cues),
        **_text_parts(task),
    )
    return [{"role": "user", "content": body}]


def tablegpt_messages(tpl: Template, task: TaskRecord) -> list[dict]:
    return [
        {
            "role": "user",
            "content": tpl.substitute(question=task.question, table=table_text(task.table), answer=task.answer),
        }
    ]


def file_messages(tpl: Template, task: TaskRecord, prompt: str) -> list[dict]:
    return [{"role": "user", "content": tpl.substitute(prompt=prompt, answer=task.answer)}]


def _cue_present(cue: str, text: str) -> bool:
    key = normalise_answer(cue).rstrip(",?.!")
    return key in normalise_answer(text)


def check_reasoning(
    reply: str, task: TaskRecord, cues: list[str] = (), mode: str = "match", rel_tol: float = 1e-3
) -> str | None:
    """None if the reply is usable; else the reject reason."""
    text = reply.strip()
    structure = check_structure(text)
    if not structure.ok:
        return "malformed tags: " + "; ".join(structure.reasons)
    used = set(re.findall(r"<(Analyze|Understand|Code|Execute|Answer)>", text))
    if used - TABLE_TAGS:
        return f"unexpected tags for a table task: {', '.join(sorted(used - TABLE_TAGS))}"
    if not text.startswith("<Analyze>"):
        return "malformed tags: reasoning must start with <Analyze>"
    answer = final_answer(text)
    if mode == "contains":
        if not re.search(rf"(?<![\d.]){re.escape(task.answer)}(?![\d.])", answer or ""):
            return f"answer mismatch: the description does not state {task.answer}"
    elif not answers_match(answer, task.answer, rel_tol):
        return f"answer mismatch: reply ends in {answer!r}, gold is {task.answer!r}"
    missing = [c for c in cues if not _cue_present(c, text)]
    if missing:
        return f"cue not woven in: {missing[0]!r}"
    return None


def tablegpt_tasks(tables: list[tuple[str, list[list[str]]]]) -> list[TaskRecord]:
    """Table-to-text tasks whose one checkable fact is the row count."""
    out = []
    for ident, rows in tables:
        if len(rows) < 2:
            continue
        n = len(rows) - 1
        out.append(
            TaskRecord(
                f"tablegpt-{ident}",
                "wikitq-table",
                "Write a short description of this table for a reader who cannot see it: what it lists, its columns, "
                "and how many rows it has.",
                str(n),
                table=rows,
                kind="tablegpt",
            )
        )
    return out


@dataclass
class FileRun:
    text: str  # the reply with each <Code> block followed by its real <Execute>
    outputs: list[str]
    reason: str | None


def run_file_reply(reply: str, task: TaskRecord, data_root: Path, workdir: Path, limits: SandboxLimits) -> FileRun:
    """Execute every <Code> block of a file-task reply in a fresh copy of the task's files, in order."""
    text = reply.strip()
    if "<Execute>" in text:
        return FileRun(text, [], "malformed tags: the teacher wrote an <Execute> block")
    blocks = code_blocks(text)
    if not blocks:
        return FileRun(text, [], "no code: a file task must read the file with a <Code> block")
    materialise_files(task.files, data_root, workdir)
    pieces, outputs, pos = [], [], 0
    session = Session(workdir, limits)  # the blocks of one reply share their files, as in an episode
    try:
        for block in blocks:
            end = text.index("</Code>", text.index(f"<Code>{block}", pos)) + len("</Code>")
            obs, res = execute_block(block, workdir, limits, session)
            pieces.append(text[pos:end] + obs)
            outputs.append(res.output)
            pos = end
            if not res.ok:
                last = res.output.strip().splitlines()[-1] if res.output.strip() else "no output"
                return FileRun("".join(pieces) + text[pos:], outputs, f"code failed: {last}")
    finally:
        session.close()
    full = "".join(pieces) + text[pos:]
    structure = check_structure(full)
    if not structure.ok:
        return FileRun(full, outputs, "malformed tags: " + "; ".join(structure.reasons))
    answer = final_answer(full)
    if not answers_match(answer, task.answer):
        return FileRun(full, outputs, f"answer mismatch: reply ends in {answer!r}, gold is {task.answer!r}")
    if not supported(outputs, task.answer):
        return FileRun(full, outputs, f"unsupported answer: no code output shows {task.answer!r}")
    return FileRun(full, outputs, None)


def supported(outputs: list[str], gold: str) -> bool:
    """The gold answer (as text, or as a number within tolerance) appears in some execution output."""
    joined = normalise_answer(" ".join(outputs))
    if normalise_answer(gold) in joined:
        return True
    g = parse_number(gold)
    if g is None:
        return False
    for tok in re.findall(r"[-+(]?[\d,]*\.?\d+(?:e[-+]?\d+)?\)?%?", joined):
        p = parse_number(tok)
        if p and answers_match(tok, gold):
            return True
    return False


def file_prompt(task: TaskRecord, files: list[Path]) -> str:
    return task_prompt(task.question, files)


# ---------------------------------------------------------------- the kinds of synthesised stage-1 sets
#
# A synthesised set (darecipe.sets: `made_by="synthesis"`) names one of these kinds; the rule `stage1_synth` runs
# every synthesised set. A kind says how the teacher is asked and how a reply is checked (darecipe.sets.SYNTHESIS_KINDS
# says which task file it reads). Adding a set of an existing kind takes a registry entry, a prompt file and its
# recordings (docs/where-to-change-what.md).


@dataclass
class SynthContext:
    """What one `stage1_synth` job knows besides its tasks."""

    template: Template
    set_name: str
    data_root: Path
    workdir: Path  # a temporary folder of the job
    rel_tol: float
    seed: int = 0
    n_cues: int = 3
    cues: list[str] = ()
    refines: dict | None = None  # record id -> record of the set this one refines
    limits: SandboxLimits | None = None


@dataclass
class Request:
    task: TaskRecord
    messages: list[dict]
    extra: dict


@dataclass(frozen=True)
class Kind:
    prepare: object  # (task, ctx) -> Request, or a reject reason
    accept: object  # (reply, request, ctx) -> (user prompt, assistant reply, reason or None)


def _plain_prepare(build):
    return lambda t, ctx: Request(t, build(ctx.template, t), {})


def _refine_prepare(t: TaskRecord, ctx: SynthContext):
    if t.id not in ctx.refines:
        return f"no reasoning to refine: the record of {t.id} in the set this one refines was rejected"
    chosen = sample_cues(ctx.cues, t.id, ctx.n_cues, ctx.seed)
    reasoning = ctx.refines[t.id]["messages"][-1]["content"]
    return Request(t, refine_messages(ctx.template, t, reasoning, chosen), {"cues": chosen})


def _file_prepare(t: TaskRecord, ctx: SynthContext):
    files = materialise_files(t.files, ctx.data_root, ctx.workdir / "prompt" / t.id)
    prompt = file_prompt(t, files)
    return Request(t, file_messages(ctx.template, t, prompt), {"prompt": prompt})


def _checked_accept(mode: str):
    def accept(reply: str, req: Request, ctx: SynthContext):
        reason = check_reasoning(reply, req.task, req.extra.get("cues", ()), mode=mode, rel_tol=ctx.rel_tol)
        return student_prompt(req.task), reply.strip(), reason

    return accept


def _file_accept(reply: str, req: Request, ctx: SynthContext):
    run = run_file_reply(reply, req.task, ctx.data_root, Path(tempfile.mkdtemp(dir=ctx.workdir)), ctx.limits)
    return req.extra["prompt"], run.text, run.reason


# The functions of each kind in darecipe.sets.SYNTHESIS_KINDS (which holds what the DAG needs to know of it).
KINDS = {
    "distill": Kind(_plain_prepare(distill_messages), _checked_accept("match")),
    "refine": Kind(_refine_prepare, _checked_accept("match")),
    "tablegpt": Kind(_plain_prepare(tablegpt_messages), _checked_accept("contains")),
    "file": Kind(_file_prepare, _file_accept),
}


def kind_tasks(kind: str, set_name: str, tasks: list[TaskRecord]) -> list[TaskRecord]:
    """The tasks a set draws from its kind's task file (a file set takes the file tasks of its own type)."""
    return [t for t in tasks if t.kind == set_name] if kind == "file" else tasks
