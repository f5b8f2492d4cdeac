"""Multi-agent synthesis of stage-2 trajectories and stage-3 RL tasks (docs/recipe.md §4-§5).

questioner  -> proposes tasks for a category over a workspace, each with a checklist (turn budget, libraries,
               what the answer must contain); tasks meant for RL also carry the reward method (and, for `qa`,
               the short gold answer)
solver      -> runs the agent loop for real in a private copy of the workspace
inspector   -> deterministic checks first (tags balanced and ordered, every <Code> followed by its <Execute>,
               exactly one final <Answer>, the final code ran without error), then the checklist, judged by the LLM
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from string import Template

import pyarrow as pa

from .agent import Trajectory
from .datafiles import check_data_file, read_csv_table, read_xlsx_table
from .io import InputError
from .loaders import materialise_files
from .prompts import task_prompt
from .replies import parse_json_object
from .reward import METHODS as REWARD_METHODS
from .sets import CATEGORIES
from .tags import check_structure

logger = logging.getLogger(__name__)

CATEGORY_GOALS = {name: c.goal for name, c in CATEGORIES.items()}
RL_METHODS = tuple(REWARD_METHODS)
RL_SET_OF = {name: m.rl_set for name, m in REWARD_METHODS.items()}
# The stage-3 parquet schema (SkyRL's, docs/recipe.md §5); `function` is kept for compatibility and left empty.
RL_PARQUET_SCHEMA = pa.schema(
    [
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("env_class", pa.string()),
        ("reward_spec", pa.struct([("method", pa.string()), ("ground_truth", pa.string()), ("function", pa.string())])),
        ("data", pa.string()),
        ("workspace_id", pa.string()),
        ("input_seq", pa.string()),
        ("provenance", pa.string()),  # synthesised (this pipeline) or released (DataScience-Instruct-500K)
    ]
)


@dataclass
class Task:
    id: str
    category: str
    workspace: str
    task: str
    checklist: dict
    purpose: str = "sft"  # sft | rl
    rl_method: str | None = None
    answer: str = ""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Verdict:
    accept: bool
    reasons: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- workspaces


def workspace_files(folder: Path) -> list[Path]:
    """A workspace's data files, sorted (Snakemake's hidden .snakemake_timestamp and other dot-files left out)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def copy_workspace_files(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".*"))


def check_workspace(name: str, files: list[Path]) -> None:
    """A workspace whose files cannot be used stops the rule with one line naming the file and the line or table:
    each file is read in full (darecipe.datafiles), as the questioner's preview and the solver's code will read it."""
    if not files:
        raise InputError(f"workspace {name}: no files")
    for f in files:
        try:
            check_data_file(f)
        except InputError as e:
            raise InputError(f"workspace {name}: {e}") from None


def build_workspace(name: str, files: list, data_root: Path, dest: Path, repair: tuple[str, ...] = ()) -> list[Path]:
    """Check the files a workspace is made from, copy them (or generate their CSV/XLSX variants) into `dest`, and
    check the variants. Files in `repair` (documentation, such as BIRD's column descriptions, whose CSVs are known to
    hold stray non-UTF-8 bytes) get each such byte replaced by U+FFFD, said in the log, instead of stopping the rule."""
    sources = []
    for f in files:
        src = data_root / (f["from"] if isinstance(f, dict) else f)
        if not src.is_file():
            raise InputError(f"workspace {name}: {src} does not exist")
        if f not in repair:
            sources.append(src)
    if sources:  # a workspace that lists no files is deliberate: its tasks carry their table in the prompt
        check_workspace(name, list(dict.fromkeys(sources)))
    try:
        made = materialise_files(files, data_root, dest)
    except InputError as e:
        raise InputError(f"workspace {name}: {e}") from None
    for target in (m for m, f in zip(made, files) if f in repair):
        data = target.read_bytes()
        text = data.decode("utf-8", errors="replace")
        if text.encode("utf-8") != data:
            target.write_text(text, encoding="utf-8")
            logger.warning(f"workspace {name}: {target.name}: bytes that are not UTF-8 replaced by U+FFFD")
    later = [m for m, f in zip(made, files) if isinstance(f, dict) or f in repair]
    if later:
        check_workspace(name, later)
    return made


def preview(files: list[Path], rows: int = 3) -> str:
    """A short look at each file for the questioner: columns and first rows, or the database's tables."""
    out = []
    for f in sorted(files, key=lambda p: p.name):
        if f.suffix in (".sqlite", ".db"):
            with sqlite3.connect(f"file:{f}?mode=ro", uri=True) as con:
                tables = [r[0] for r in con.execute("select name from sqlite_master where type='table' order by name")]
                desc = []
                for t in tables:
                    cols = [c[1] for c in con.execute(f'pragma table_info("{t}")')]
                    n = con.execute(f'select count(*) from "{t}"').fetchone()[0]
                    desc.append(f"  {t}({', '.join(cols)}): {n} rows")
            out.append(f"{f.name}: SQLite database\n" + "\n".join(desc))
        elif f.suffix in (".csv", ".xlsx"):
            df = read_csv_table(f) if f.suffix == ".csv" else read_xlsx_table(f)
            out.append(f"{f.name}: {df.height} rows, columns {', '.join(df.columns)}\n{df.head(rows)}")
        else:
            out.append(f"{f.name}: {f.stat().st_size} bytes")
    return "\n\n".join(out)


# ---------------------------------------------------------------- questioner


def questioner_messages(
    tpl: Template, category: str, workspace: str, files: list[Path], n_sft: int, n_rl: int
) -> list[dict]:
    body = tpl.substitute(
        category=category,
        goal=CATEGORY_GOALS[category],
        workspace=workspace,
        n_sft=n_sft,
        n_rl=n_rl,
        data=task_prompt("(the task you write)", files).split("# Data\n", 1)[-1] if files else "(no files)",
        preview=preview(files),
    )
    return [{"role": "user", "content": body}]


def parse_tasks(reply: str, category: str, workspace: str) -> tuple[list[Task], list[str]]:
    """Tasks from a questioner reply, plus the problems of the ones that could not be used."""
    try:
        data = parse_json_object(reply)
    except ValueError as e:
        return [], [f"questioner reply is not JSON ({e})"]
    tasks, problems = [], []
    for i, t in enumerate(data.get("tasks", []) if isinstance(data, dict) else []):
        tid = f"{category}-{workspace}-{i}"
        if not isinstance(t, dict) or not str(t.get("task", "")).strip():
            problems.append(f"{tid}: no task text")
            continue
        purpose = t.get("purpose", "sft")
        method = t.get("rl_method")
        if purpose == "rl" and method not in RL_METHODS:
            problems.append(f"{tid}: an RL task needs rl_method in {RL_METHODS}")
            continue
        if purpose == "rl" and REWARD_METHODS[method].needs_gold and not str(t.get("answer", "")).strip():
            problems.append(f"{tid}: a {method} task needs a short gold answer")
            continue
        checklist = t.get("checklist") if isinstance(t.get("checklist"), dict) else {}
        tasks.append(
            Task(
                tid,
                category,
                workspace,
                str(t["task"]).strip(),
                checklist,
                purpose,
                method,
                str(t.get("answer", "")).strip(),
            )
        )
    return tasks, problems


# ---------------------------------------------------------------- solver and inspector


def solver_system(tpl: Template, task: Task) -> str:
    c = task.checklist
    return tpl.substitute(
        turn_budget=c.get("turn_budget", "a few"),
        libraries=", ".join(c.get("libraries", [])) or "any of the standard data libraries",
        must_contain="; ".join(c.get("answer_must_contain", [])) or "a direct answer to the task",
    )


def deterministic_checks(traj: Trajectory) -> list[str]:
    """The inspector's checks that need no model."""
    reasons = list(check_structure(traj.text).reasons)
    if traj.stop != "answer":
        reasons.append(
            {
                "no_code": "stopped without <Answer>",
                "max_turns": "turn limit reached without <Answer>",
                "error": f"generation failed: {traj.error}",
            }.get(traj.stop, traj.stop)
        )
    if traj.results and not traj.results[-1].ok:
        reasons.append("the final code block failed")
    if not traj.results:
        reasons.append("no code was run")
    return reasons


def inspector_messages(tpl: Template, task: Task, traj: Trajectory) -> list[dict]:
    return [
        {
            "role": "user",
            "content": tpl.substitute(
                task=task.task, checklist=json.dumps(task.checklist, indent=1), trajectory=traj.text
            ),
        }
    ]


def parse_verdict(reply: str) -> Verdict:
    try:
        data = parse_json_object(reply)
    except ValueError:
        return Verdict(False, ["inspector reply is not JSON"])
    accept = data.get("accept")
    if not isinstance(accept, bool):
        return Verdict(False, ["inspector reply has no boolean 'accept'"])
    reasons = data.get("reasons") or []
    return Verdict(accept, [str(r) for r in reasons] if isinstance(reasons, list) else [str(reasons)])


def sft_record(task: Task, traj: Trajectory) -> dict:
    return {
        "messages": [{"role": "user", "content": traj.prompt}, {"role": "assistant", "content": traj.text}],
        "id": task.id,
        "category": task.category,
        "workspace": task.workspace,
        "task": task.task,
        "checklist": json.dumps(task.checklist, ensure_ascii=False),
        "turns": traj.turns,
        "exec_ok": traj.exec_ok,
        "exec_total": traj.exec_total,
    }


def rl_row(task: Task, prompt: str) -> dict:
    """A SkyRL-schema row (docs/recipe.md §5)."""
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "env_class": "deepanalyze",
        "reward_spec": {"method": task.rl_method, "ground_truth": task.answer, "function": ""},
        "data": task.workspace,
        "workspace_id": task.id,
        "input_seq": task.task,
    }
