"""Rule stage1_extra_set: a set the user supplies as a file (SKG, general reasoning) -> checked records."""

import json
from pathlib import Path

from darecipe.io import InputError, read_jsonl, write_json, write_jsonl
from darecipe.loaders import Rejects
from darecipe.mix import write_set
from darecipe.runlog import run_script


def _records(path: Path):
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{path}:{getattr(e, 'lineno', 1)}: not a readable JSON array ({e})") from None
        if not isinstance(data, list):
            raise InputError(f"{path}:1: expected a JSON array of records")
        yield from ((f"{path}:record {i}", rec) for i, rec in enumerate(data))
    else:
        yield from ((f"{path}:{lineno}", rec) for lineno, rec in read_jsonl(path))


def problem(rec) -> str | None:
    msgs = rec.get("messages") if isinstance(rec, dict) else None
    if not isinstance(msgs, list) or not msgs:
        return "no messages"
    for m in msgs:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            return "a message without a valid role"
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            return f"an empty {m.get('role')} message"
    if msgs[-1]["role"] != "assistant" or not any(m["role"] == "user" for m in msgs):
        return "needs a user message and must end with an assistant message"
    return None


def main(smk, log):
    name, path = smk.wildcards.set, Path(smk.input[0])
    records, rejects = [], Rejects()
    for where, rec in _records(path):
        reason = problem(rec)
        rid = str(rec.get("id", where)) if isinstance(rec, dict) else where
        if reason:
            rejects.add(where, rid, reason)
            continue
        records.append({"messages": rec["messages"], "id": rid, "source": rec.get("source", name), "set": name})
    write_set(records, smk.output.records)
    write_jsonl(smk.output.rejects, rejects)
    write_json(smk.output.metrics, {"records": len(records), "rejected": len(rejects), "reject_reasons": rejects.counts()})
    log(f"{name}: {len(records)} records from {path}, {len(rejects)} rejected {rejects.counts()}")


run_script(main, snakemake)  # noqa: F821
