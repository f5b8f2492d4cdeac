"""The released DataScience-Instruct-500K (`RUC-DataLab/DataScience-Instruct-500K`, MIT), read and validated.

Layout of the release (the official training scripts at ruc-datalab/DeepAnalyze 0b54741 read it so; docs/data.md):

    reasoning/<set>_<N>.json          13 stage-1 sets, N = records (JSON arrays, ms-swift records)
    interation/<category>_<N>.json    12 stage-2 categories (sic: the release's spelling)
    RL/qa.parquet, RL/datatask.parquet, RL/reseach.parquet (sic)   stage-3 tasks (SkyRL rows)
    RL/data.zip                       the workspaces: <data>/<workspace_id>/ for each RL row

Every record is checked as it is read: its schema (messages with roles and text), its tag structure, the count
in its file's name, and for RL rows that the workspace is in data.zip. A record that fails goes to the rule's
rejects file with the file, the record and the reason; a file that cannot be read at all stops the rule with one
line. The release's known hole (DeepAnalyze issue #68: `research/mondial_geo` is not in data.zip) ends as counted
rejects naming the rows.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path

from .io import InputError, Rejects, read_text, sha256_file
from .reward import METHODS as REWARD_METHODS
from .sets import INTERACTION_DIRS, RL_SETS
from .synthesis import RL_METHODS
from .tags import check_structure

logger = logging.getLogger(__name__)

ROLE_OF = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "system": "system",
    "tool": "tool",
    "observation": "tool",
}
TAG_RE = re.compile(r"</?(Analyze|Understand|Code|Execute|Answer)>")
EMPTY_WORKSPACE = ("_no_workspace", "empty")  # where a row without a workspace_id runs: an empty folder


# ---------------------------------------------------------------- locating the files


def _counted(folder: Path, name: str, what: str) -> tuple[Path, int]:
    pattern = re.compile(rf"^{re.escape(name)}_(\d+)\.json$")
    found = [(p, int(m.group(1))) for p in folder.glob(f"{name}_*.json") if (m := pattern.match(p.name))]
    if not found:
        raise InputError(f"{folder}/{name}_<N>.json: missing ({what} {name!r} of the release)")
    if len(found) > 1:
        raise InputError(f"{folder}: several files for {what} {name!r}: {', '.join(sorted(p.name for p, _ in found))}")
    return found[0]


def check_layout(root: Path) -> None:
    """The release's root must hold the per-stage folders. A `datasets` Arrow export of the hub repository (one
    merged `train` split, what DeepAnalyze issue #21 saw) cannot be split back into stages: say so."""
    if not root.is_dir():
        raise InputError(f"{root}: the released data set is not there (data.released.path or the download rule)")
    if any((root / d).is_dir() for d in ("reasoning", "RL", *INTERACTION_DIRS)):
        return
    arrow = sorted(p.name for p in root.rglob("*.arrow"))[:3]
    hint = (
        (
            f"it holds Arrow files ({', '.join(arrow)}): a `datasets` export merges every file into one split whose "
            "records do not say their stage or set; point data.released.path at the repository files instead "
            "(what the download_released rule fetches)"
        )
        if arrow
        else "it has none of reasoning/, interation/, RL/"
    )
    raise InputError(f"{root}: not the released layout: {hint}")


def reasoning_file(root: Path, name: str) -> tuple[Path, int]:
    check_layout(root)
    return _counted(root / "reasoning", name, "stage-1 set")


def interaction_file(root: Path, category: str) -> tuple[Path, int]:
    check_layout(root)
    for d in INTERACTION_DIRS:
        if (root / d).is_dir():
            return _counted(root / d, category, "stage-2 category")
    raise InputError(f"{root}/interation/: missing (the stage-2 trajectories of the release)")


def rl_file(root: Path, name: str) -> Path:
    check_layout(root)
    for fname in RL_SETS[name]:
        if (root / "RL" / fname).is_file():
            return root / "RL" / fname
    raise InputError(f"{root}/RL/{RL_SETS[name][0]}: missing (the stage-3 {name} tasks of the release)")


# ---------------------------------------------------------------- records


def read_json_array(path: Path) -> list:
    """A released JSON file: an array of records (JSON Lines accepted too)."""
    text = read_text(path)
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        return data
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    return out


def to_messages(rec) -> list[dict] | str:
    """A record in any of ms-swift's standard formats as `messages` (the release is read by `swift sft` as is):
    messages (role/content), sharegpt conversations (from/value), query/response(/history/system), alpaca
    instruction/input/output. Returns the reason when the record fits none."""
    if not isinstance(rec, dict):
        return f"not a JSON object ({type(rec).__name__})"
    if "messages" in rec or "conversations" in rec:
        turns = rec.get("messages", rec.get("conversations"))
        if not isinstance(turns, list) or not turns:
            return "no messages"
        msgs = []
        if isinstance(rec.get("system"), str) and rec["system"].strip() and "messages" not in rec:
            msgs.append({"role": "system", "content": rec["system"]})
        for t in turns:
            if not isinstance(t, dict):
                return "a message that is not an object"
            role = ROLE_OF.get(str(t.get("role", t.get("from", ""))).lower())
            content = t.get("content", t.get("value"))
            if role is None:
                return f"a message with an unknown role {t.get('role', t.get('from'))!r}"
            if not isinstance(content, str):
                return f"a {role} message without text content"
            msgs.append({"role": role, "content": content})
        return msgs
    if "query" in rec and "response" in rec:
        msgs = (
            [{"role": "system", "content": rec["system"]}]
            if isinstance(rec.get("system"), str) and rec["system"]
            else []
        )
        for pair in rec.get("history") or []:
            if not (isinstance(pair, list) and len(pair) == 2):
                return "a history entry that is not a [query, response] pair"
            msgs += [{"role": "user", "content": str(pair[0])}, {"role": "assistant", "content": str(pair[1])}]
        return msgs + [
            {"role": "user", "content": str(rec["query"])},
            {"role": "assistant", "content": str(rec["response"])},
        ]
    if "instruction" in rec and "output" in rec:
        prompt = "\n\n".join(str(x) for x in (rec["instruction"], rec.get("input") or "") if str(x).strip())
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": str(rec["output"])}]
    return f"no messages (fields: {', '.join(sorted(rec)[:6])})"


def trajectory_text(msgs: list[dict]) -> str:
    """Everything after the first user message: the assistant's turns and any observations between them."""
    first = next(i for i, m in enumerate(msgs) if m["role"] == "user")
    return "".join(m["content"] for m in msgs[first + 1 :])


def messages_problem(msgs: list[dict], need_tags: bool) -> str | None:
    """None if a chat record can be trained on; else the reject reason."""
    for m in msgs:
        if not m["content"].strip():
            return f"an empty {m['role']} message"
    if not any(m["role"] == "user" for m in msgs):
        return "no user message"
    if msgs[-1]["role"] != "assistant":
        return "does not end with an assistant message"
    text = trajectory_text(msgs)
    if TAG_RE.search(text) or need_tags:
        structure = check_structure(text)
        if not structure.ok:
            return "malformed tags: " + "; ".join(structure.reasons)
    return None


def released_records(path: Path, name: str, expected: int, kind: str, need_tags: bool, strict: bool):
    """The usable records of one released file (each {messages, id, <kind>, provenance}), its rejects, and the
    number of records read. A count that differs from the one in the file's name stops the rule when `strict`."""
    data = read_json_array(path)
    if not isinstance(data, list):
        raise InputError(f"{path}:1: expected a JSON array of records")
    if len(data) != expected:
        msg = f"{path}: {len(data)} records, the file name says {expected}"
        if strict:
            raise InputError(f"{msg} (a truncated download? set data.released.strict_counts: false to go on)")
        logger.warning(msg)
    records, rejects = [], Rejects()
    for i, rec in enumerate(data):
        where = f"{path}:record {i}"
        rid = str(rec.get("id") or f"{name}-{i}") if isinstance(rec, dict) else f"{name}-{i}"
        msgs = to_messages(rec)
        reason = msgs if isinstance(msgs, str) else messages_problem(msgs, need_tags)
        if reason:
            rejects.add(where, rid, reason)
            continue
        records.append({"messages": msgs, "id": rid, kind: name, "provenance": "released"})
    return records, rejects, len(data)


# ---------------------------------------------------------------- RL rows and their workspaces


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


def normalise_rl_row(row: dict, root: Path, folders: dict[str, str]) -> tuple[dict | None, str | None]:
    """A released RL row in this pipeline's schema (synthesis.RL_PARQUET_SCHEMA), or the reject reason.
    The workspace is `root/<data>/<workspace_id>/` as the public environment reads it; `folders` renames a
    `data` value to the folder data.zip holds it in."""
    prompt = row.get("prompt")
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        return None, "no prompt"
    try:
        prompt = [{"role": ROLE_OF.get(str(m["role"]).lower(), ""), "content": str(m["content"])} for m in prompt]
    except (TypeError, KeyError):
        return None, "a prompt message without role and content"
    if not all(m["role"] for m in prompt) or not any(m["role"] == "user" and m["content"].strip() for m in prompt):
        return None, "a prompt without a user message"
    if row.get("env_class") not in (None, "deepanalyze"):
        return None, f"env_class {row['env_class']!r} is not deepanalyze"
    spec = row.get("reward_spec")
    if not isinstance(spec, dict) or spec.get("method") not in RL_METHODS:
        method = spec.get("method") if isinstance(spec, dict) else None
        return None, f"reward_spec.method {method!r} is not one of {', '.join(RL_METHODS)}"
    truth = _text(spec.get("ground_truth")).strip()
    if REWARD_METHODS[spec["method"]].needs_gold and not truth:
        return None, f"a {spec['method']} task without reward_spec.ground_truth"
    data = _text(row.get("data") if row.get("data") is not None else row.get("data_source")).strip()
    workspace_id = _text(row.get("workspace_id")).strip()
    if workspace_id:
        if not data:
            return None, "a workspace_id without the data folder naming where it is"
        folder = folders.get(data, data)
        if any(p in ("", ".", "..") for p in (*folder.split("/"), workspace_id)) or "/" in workspace_id:
            return None, f"workspace path {folder}/{workspace_id} leaves the workspace root"
        if not (root / folder / workspace_id).is_dir():
            return None, f"workspace missing: {folder}/{workspace_id} is not in RL/data.zip"
    else:
        folder, workspace_id = EMPTY_WORKSPACE
    input_seq = _text(row.get("input_seq")).strip() or next(
        m["content"] for m in reversed(prompt) if m["role"] == "user"
    )
    return {
        "prompt": prompt,
        "env_class": "deepanalyze",
        "reward_spec": {"method": spec["method"], "ground_truth": truth, "function": _text(spec.get("function"))},
        "data": folder,
        "workspace_id": workspace_id,
        "input_seq": input_seq,
        "provenance": "released",
    }, None


def unpack_workspaces(archive: Path, dest: Path) -> dict:
    """RL/data.zip -> dest/<data>/<workspace_id>/..., refusing members that would land outside dest. A single
    top-level `data/` folder is stripped (the official scripts read `RL/data/` after unzipping)."""
    logger.info(f"{archive}: sha256 {sha256_file(archive)}")
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(f"{archive}: not a readable zip archive ({e}); download it again") from None
    with zf:
        members = [m for m in zf.infolist() if not m.filename.startswith("__MACOSX/") and m.filename.strip("/")]
        names = [m.filename for m in members]
        tops = {n.split("/", 1)[0] for n in names}
        strip = "data/" if tops == {"data"} else ""
        files = 0
        for m in members:
            rel = m.filename[len(strip) :] if strip else m.filename
            parts = [p for p in rel.split("/") if p]
            if m.filename.startswith("/") or ".." in parts or not parts:
                if not parts and m.is_dir():
                    continue
                raise InputError(f"{archive}: member {m.filename!r} would be written outside the workspace root")
            if stat.S_ISLNK(m.external_attr >> 16):
                raise InputError(f"{archive}: member {m.filename!r} is a symbolic link (not extracted)")
            target = dest.joinpath(*parts)
            if m.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(m) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
                raise InputError(
                    f"{archive}: member {m.filename!r} cannot be extracted ({e}); download it again"
                ) from None
            files += 1
    (dest / EMPTY_WORKSPACE[0] / EMPTY_WORKSPACE[1]).mkdir(parents=True, exist_ok=True)
    folders = {p.name: sum(1 for q in p.iterdir() if q.is_dir()) for p in sorted(dest.iterdir()) if p.is_dir()}
    return {"files": files, "workspaces": {k: v for k, v in folders.items() if k != EMPTY_WORKSPACE[0]}}


def copy_workspaces(src: Path, dest: Path) -> dict:
    """An already unpacked RL/data/ folder -> dest, hard-linked where the file system allows (no second copy)."""

    def link(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dest, copy_function=link, dirs_exist_ok=True)
    (dest / EMPTY_WORKSPACE[0] / EMPTY_WORKSPACE[1]).mkdir(parents=True, exist_ok=True)
    folders = {p.name: sum(1 for q in p.iterdir() if q.is_dir()) for p in sorted(dest.iterdir()) if p.is_dir()}
    return {
        "files": sum(1 for p in dest.rglob("*") if p.is_file()),
        "workspaces": {k: v for k, v in folders.items() if k != EMPTY_WORKSPACE[0]},
    }
