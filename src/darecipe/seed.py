"""Turn the hand-written seed files (resources/seed/) into the stage inputs the training rules read."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .io import InputError, read_jsonl, require
from .prompts import read_wikitq_csv, render_rows, table_prompt, task_prompt
from .reward import normalise_answer
from .sandbox import SandboxLimits, execute_block
from .tags import check_structure, final_answer

INTERACTION_CATEGORIES = (
    "data_pipeline", "data_preparation", "data_cleaning", "data_analysis", "data_insight",
    "research_database", "research_xlsx", "research_other", "research_data_preparation",
    "research_data_analysis", "research_data_insight", "research_report_generation",
)  # fmt: skip
RL_SETS = {"qa": "qa", "datatask": "datatask", "research": "openresearch"}
STEP_TAGS = ("Analyze", "Understand", "Code", "Answer")


@dataclass
class Rejects:
    rows: list[dict] = field(default_factory=list)

    def add(self, where: str, rec_id: str, reason: str) -> None:
        self.rows.append({"where": where, "id": rec_id, "reason": reason})

    def counts(self) -> dict[str, int]:
        return dict(Counter(r["reason"].split(":")[0] for r in self.rows))


def stage1_records(seed: Path, data_root: Path, rejects: Rejects) -> list[dict]:
    out = []
    for lineno, rec in read_jsonl(seed):
        where = f"{seed}:{lineno}"
        rid = require(rec, "id", str, where)
        question = require(rec, "question", str, where)
        answer = require(rec, "answer", str, where)
        response = require(rec, "response", str, where)
        table = rec.get("table_text")
        if rec.get("table"):
            path = data_root / rec["table"]
            if not path.is_file():
                raise InputError(f"{where}: field 'table': file {path} does not exist")
            table = render_rows(read_wikitq_csv(path))
        check = check_structure(response)
        if not check.ok:
            rejects.add(where, rid, "malformed tags: " + "; ".join(check.reasons))
            continue
        if normalise_answer(final_answer(response) or "") != normalise_answer(answer):
            rejects.add(where, rid, f"answer mismatch: response ends in {final_answer(response)!r}, gold is {answer!r}")
            continue
        out.append(
            {
                "messages": [
                    {"role": "user", "content": table_prompt(question, table)},
                    {"role": "assistant", "content": response},
                ],
                "id": rid,
                "source": rec.get("source", "seed"),
                "role": rec.get("role", "data_science"),
            }
        )
    return out


def _stage_files(files: list[str], data_root: Path, dest: Path, where: str) -> list[Path]:
    staged = []
    for rel in files:
        src = data_root / rel
        if not src.is_file():
            raise InputError(f"{where}: field 'files': {src} does not exist")
        target = dest / src.name
        shutil.copy2(src, target)
        staged.append(target)
    return staged


def interaction_records(
    seed: Path, data_root: Path, limits: SandboxLimits, rejects: Rejects, progress=None
) -> dict[str, list[dict]]:
    """Render each seed trajectory, running its <Code> blocks for real to fill <Execute>."""
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for lineno, rec in read_jsonl(seed):
        where = f"{seed}:{lineno}"
        rid = require(rec, "id", str, where)
        category = require(rec, "category", str, where)
        if category not in INTERACTION_CATEGORIES:
            raise InputError(f"{where}: field 'category': {category!r} is not one of the twelve categories")
        task = require(rec, "task", str, where)
        steps = require(rec, "steps", list, where)
        with tempfile.TemporaryDirectory(prefix="seed-ws-") as tmp:
            ws = Path(tmp)
            files = _stage_files(rec.get("files", []), data_root, ws, where)
            prompt = task_prompt(task, files)
            text, failed = _render_steps(steps, ws, limits, where)
        if failed:
            rejects.add(where, rid, f"code failed: {failed}")
            continue
        check = check_structure(text)
        if not check.ok:
            rejects.add(where, rid, "malformed tags: " + "; ".join(check.reasons))
            continue
        by_cat[category].append(
            {
                "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}],
                "id": rid,
                "category": category,
            }
        )
        if progress:
            progress(rid)
    return by_cat


def _render_steps(steps: list, ws: Path, limits: SandboxLimits, where: str) -> tuple[str, str | None]:
    parts = []
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or len(step) != 1 or next(iter(step)) not in STEP_TAGS:
            raise InputError(f"{where}: field 'steps[{i}]': expected one of {STEP_TAGS} as the only key")
        (tag, body), = step.items()
        parts.append(f"<{tag}>{body}</{tag}>")
        if tag == "Code":
            obs, res = execute_block(body, ws, limits)
            if not res.ok:
                return "", f"steps[{i}]: {res.output.splitlines()[-1] if res.output else 'no output'}"
            parts.append(obs)
    return "".join(parts), None


def rl_rows(seed: Path, data_root: Path, workspaces: Path) -> dict[str, list[dict]]:
    """SkyRL-schema rows per set; each task's files are copied into its own workspace folder."""
    rows: dict[str, list[dict]] = {name: [] for name in RL_SETS}
    for lineno, rec in read_jsonl(seed):
        where = f"{seed}:{lineno}"
        rid = require(rec, "id", str, where)
        set_name = require(rec, "set", str, where)
        if set_name not in RL_SETS:
            raise InputError(f"{where}: field 'set': {set_name!r} is not one of {sorted(RL_SETS)}")
        method = rec.get("method", RL_SETS[set_name])
        data = require(rec, "data", str, where)
        task = require(rec, "task", str, where)
        ws = workspaces / data / rid
        ws.mkdir(parents=True, exist_ok=True)
        files = _stage_files(rec.get("files", []), data_root, ws, where)
        prompt = task_prompt(task, files)
        rows[set_name].append(
            {
                "prompt": [{"role": "user", "content": prompt}],
                "env_class": "deepanalyze",
                "reward_spec": {"method": method, "ground_truth": str(rec.get("answer", "")), "function": ""},
                "data": data,
                "workspace_id": rid,
                "input_seq": task,
            }
        )
    return rows
