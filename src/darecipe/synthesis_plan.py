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
        from .loaders import sqlite_databases  # here: the DAG of a config that lists its databases needs no polars

        root = Path(spec["path"])
        if not root.is_dir():
            raise PlanError(
                f"synthesis.sqlite_dirs.{name}: {root} does not exist yet; list its databases under "
                f"`databases:` so the DAG can show every job before the download"
            )
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


def share(n_sft: int, n_rl: int, most: int | None) -> list[tuple[int, int]]:
    """(trajectory tasks, RL tasks) of each part when n_sft + n_rl tasks are cut into parts of at most `most`
    (one part when None): the parts differ in size by one at most, and no part exceeds `most`."""
    total = n_sft + n_rl
    parts = max(1, math.ceil(total / most)) if most else 1
    return [(s, size - s) for size, s in zip(split(total, parts), split(n_sft, parts))]


def jobs(syn: dict) -> list[Job]:
    """Every synthesis job of the config, in category order."""
    known = workspaces(syn)
    batches = share(syn["sft_per_workspace"], syn["rl_per_workspace"], syn.get("tasks_per_job"))
    out = []
    for category in CATEGORIES:
        for ws in category_workspaces(syn, category, known):
            out += [Job(category, ws, b, len(batches), s, r) for b, (s, r) in enumerate(batches)]
    return out


def requests(job: Job, per_request: int | None) -> list[tuple[int, int]]:
    """The questioner requests of a job: (trajectory tasks, RL tasks) each, at most `per_request` tasks a request,
    so each reply stays well inside the teacher's max_tokens."""
    return share(job.n_sft, job.n_rl, per_request)


def batch_note(job: Job, request: int = 0, n_requests: int = 1) -> str:
    """What a questioner request adds so the requests of one (category, workspace) propose different tasks; nothing
    when it is the pair's only request (the request is then what it was without sharding)."""
    if job.batches == 1 and n_requests == 1:
        return ""
    where = f"request {request + 1} of {n_requests} in batch {job.batch + 1} of {job.batches}"
    return (
        f"\n\nThis is {where} of task requests for this workspace and category. Propose tasks that another "
        "request would be unlikely to propose: vary the tables, columns, methods and questions."
    )


def id_part(job: Job, request: int = 0, n_requests: int = 1) -> str:
    """What task ids add after `<category>-<workspace>-` so they stay unique across batches and requests (nothing
    for a pair's only request: ids as before sharding)."""
    if job.batches == 1 and n_requests == 1:
        return ""
    return f"b{job.batch}-" + (f"r{request}-" if n_requests > 1 else "")
