"""Rule stage1_extra_set: a set the user supplies as a file (SKG, general reasoning) -> checked records: ms-swift
`messages` records, or an upstream file (SKGInstruct, an AM-DeepSeek-R1-0528-Distilled subset) converted."""

import json
from pathlib import Path

from darecipe.io import InputError, Rejects, read_jsonl, write_json, write_jsonl
from darecipe.loaders import load_am_distilled, load_skginstruct, reservoir_sample
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


def _messages_records(path: Path, name: str, rejects: Rejects) -> list[dict]:
    records = []
    for where, rec in _records(path):
        reason = problem(rec)
        rid = str(rec.get("id", where)) if isinstance(rec, dict) else where
        if reason:
            rejects.add(where, rid, reason)
            continue
        records.append({"messages": rec["messages"], "id": rid, "source": rec.get("source", name)})
    return records


def main(smk, log):
    name, spec = smk.wildcards.set, smk.params.spec
    spec = spec if isinstance(spec, dict) else {"path": spec, "format": "messages", "limit": None, "seed": 0}
    path, rejects = Path(spec["path"]), Rejects()
    if spec["format"] == "skginstruct":
        records = load_skginstruct(path, rejects, spec["limit"], spec["seed"])
    elif spec["format"] == "am_distilled":
        records = load_am_distilled(path, rejects, spec["limit"], spec["seed"])
    else:
        records = _messages_records(path, name, rejects)
        if spec["limit"] is not None:
            records = reservoir_sample(records, spec["limit"], spec["seed"])
    for r in records:
        r.update(set=name, provenance="supplied")
    log(
        f"{name}: {spec['format']} file {path}"
        + (f", {spec['limit']} records sampled (seed {spec['seed']})" if spec["limit"] is not None else "")
    )
    write_set(records, smk.output.records)
    write_jsonl(smk.output.rejects, rejects)
    write_json(
        smk.output.metrics, {"records": len(records), "rejected": len(rejects), "reject_reasons": rejects.counts()}
    )
    log(f"{name}: {len(records)} records from {path}, {len(rejects)} rejected {rejects.counts()}")


run_script(main, globals().get("snakemake"))
