"""Turn the hand-written seed files (resources/seed/) into the stage-2 and stage-3 inputs."""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

from .io import InputError, read_jsonl, require
from .loaders import Rejects
from .prompts import task_prompt
from .sandbox import SandboxLimits, execute_block
from .tags import check_structure

INTERACTION_CATEGORIES = (
    "data_pipeline", "data_preparation", "data_cleaning", "data_analysis", "data_insight",
    "research_database", "research_xlsx", "research_other", "research_data_preparation",
    "research_data_analysis", "research_data_insight", "research_report_generation",
)  # fmt: skip
RL_SETS = {"qa": "qa", "datatask": "datatask", "research": "openresearch"}
STEP_TAGS = ("Analyze", "Understand", "Code", "Answer")


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
