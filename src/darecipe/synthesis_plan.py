"""The stage-2/3 synthesis jobs, known from the config alone (so `snakemake -n` lists every one before anything runs).

A workspace is a folder of data files: named in `synthesis.workspaces` (files under `synthesis.data_root`), or one
database of a `synthesis.sqlite_dirs` folder (BIRD / Spider layout). A category draws tasks on its workspaces; a
(category, workspace) pair asks the questioner for `sft_per_workspace` trajectory tasks and `rl_per_workspace` RL
tasks, split into batches of at most `tasks_per_job`, one synthesis job each. Every job has its own response
cache, so a killed job, rerun, repeats none of its completed requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .loaders import sqlite_databases
from .sets import CATEGORIES


class PlanError(ValueError):
    """A synthesis setting that cannot be planned; the message names the config key."""


@dataclass(frozen=True)
class Workspace:
    name: str
    files: tuple  # entries as in synthesis.workspaces (relative to `root`)
    root: str  # folder the files are relative to
    database: str | None = None  # db_id of a sqlite_dirs workspace (its files are found when it is built)
    descriptions: bool = False


@dataclass(frozen=True)
class Job:
    category: str
    workspace: str
    batch: int
    batches: int
    n_sft: int
    n_rl: int


def sqlite_workspace_names(name: str, spec: dict) -> list[str]:
    dbs = spec.get("databases")
    if dbs is None:
        root = Path(spec["path"])
        if not root.is_dir():
            raise PlanError(f"synthesis.sqlite_dirs.{name}: {root} does not exist yet; list its databases under "
                            f"`databases:` so the DAG can show every job before the download")  # fmt: skip
        dbs = list(sqlite_databases(root))
        if not dbs:
            raise PlanError(f"synthesis.sqlite_dirs.{name}: no <db_id>/<db_id>.sqlite under {root}")
    return [f"{name}_{db}" for db in dbs]


def workspaces(syn: dict) -> dict[str, Workspace]:
    """Every workspace the config defines, by name."""
    out = {n: Workspace(n, tuple(files), syn["data_root"]) for n, files in syn["workspaces"].items()}
    for name, spec in syn.get("sqlite_dirs", {}).items():
        for ws in sqlite_workspace_names(name, spec):
            if ws in out:
                raise PlanError(f"synthesis.sqlite_dirs.{name}: workspace {ws} is also in synthesis.workspaces")
            out[ws] = Workspace(ws, (), spec["path"], ws.removeprefix(f"{name}_"), spec.get("descriptions", False))
    return out


def category_workspaces(syn: dict, category: str, known: dict[str, Workspace] | None = None) -> list[str]:
    """The workspace names of a category, `<sqlite_dirs name>:*` expanded."""
    known = workspaces(syn) if known is None else known
    out = []
    for entry in syn["categories"].get(category, []):
        if entry.endswith(":*"):
            name = entry[:-2]
            if name not in syn.get("sqlite_dirs", {}):
                raise PlanError(f"synthesis.categories.{category}: {entry!r} names no synthesis.sqlite_dirs entry")
            out += sqlite_workspace_names(name, syn["sqlite_dirs"][name])
        elif entry in known:
            out.append(entry)
        else:
            raise PlanError(f"synthesis.categories.{category}: unknown workspace {entry!r}")
    return list(dict.fromkeys(out))


def split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def jobs(syn: dict) -> list[Job]:
    """Every synthesis job of the config, in category order."""
    known = workspaces(syn)
    n_sft, n_rl, per_job = syn["sft_per_workspace"], syn["rl_per_workspace"], syn.get("tasks_per_job")
    batches = max(1, math.ceil((n_sft + n_rl) / per_job)) if per_job else 1
    out = []
    for category in CATEGORIES:
        for ws in category_workspaces(syn, category, known):
            for b, (s, r) in enumerate(zip(split(n_sft, batches), split(n_rl, batches))):
                out.append(Job(category, ws, b, batches, s, r))
    return out


def batch_note(job: Job) -> str:
    """What a batch's questioner request adds so batches of one pair propose different tasks (none for one batch:
    the request stays what it was without sharding)."""
    if job.batches == 1:
        return ""
    return (f"\n\nThis is batch {job.batch + 1} of {job.batches} of task requests for this workspace and category. "
            f"Propose tasks that a different batch would be unlikely to propose: vary the tables, columns, "
            f"methods and questions, and lean towards angle {job.batch + 1} of {job.batches} in the list of what "
            f"the data allows.")  # fmt: skip


def task_id(job: Job, i: int) -> str:
    """Task ids as before sharding for a single batch, with the batch number otherwise (ids stay unique)."""
    base = f"{job.category}-{job.workspace}"
    return f"{base}-{i}" if job.batches == 1 else f"{base}-b{job.batch}-{i}"
