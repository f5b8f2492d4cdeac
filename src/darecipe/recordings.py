"""Maintain the replay backend's recorded teacher responses (resources/recordings/*.jsonl).

When a rule on the replay backend meets requests without a recording, it writes them to
`<llm.cache_dir>/<set>/<shard>.missing.jsonl` (id, key, messages) and stops. Then:

  python -m darecipe.recordings show MISSING.jsonl
      print each missing request's id and prompt, to write the responses
  python -m darecipe.recordings add MISSING.jsonl RESPONSES.jsonl --to resources/recordings/<set>.jsonl
      RESPONSES.jsonl has lines {"id": ..., "response": ...}; appends {"id", "key", "response"} recordings
  python -m darecipe.recordings rekey MISSING.jsonl --to resources/recordings/<set>.jsonl
      after a prompt or sampling change: give the recordings with those ids the new keys
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .io import read_jsonl, write_jsonl


def _load(path: Path) -> list[dict]:
    return [rec for _, rec in read_jsonl(path)] if path.is_file() else []


def show(missing: Path) -> None:
    for rec in _load(missing):
        print(f"=== {rec['id']}  (key {rec['key'][:16]})")
        for m in rec["messages"]:
            print(f"--- {m['role']}\n{m['content']}")


def add(missing: Path, responses: Path, target: Path) -> int:
    keys = {rec["id"]: rec["key"] for rec in _load(missing)}
    existing = _load(target)
    have = {r["key"] for r in existing}
    new = []
    for rec in _load(responses):
        if rec["id"] not in keys:
            sys.exit(f"{responses}: id {rec['id']!r} is not among the missing requests in {missing}")
        if keys[rec["id"]] not in have:
            new.append({"id": rec["id"], "key": keys[rec["id"]], "response": rec["response"]})
    write_jsonl(target, existing + new)
    return len(new)


def rekey(missing: Path, target: Path) -> int:
    keys = {rec["id"]: rec["key"] for rec in _load(missing)}
    records = _load(target)
    n = 0
    for r in records:
        if r["id"] in keys and r["key"] != keys[r["id"]]:
            r["key"], n = keys[r["id"]], n + 1
    write_jsonl(target, records)
    return n


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m darecipe.recordings", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("show", help="print the missing requests")
    s.add_argument("missing", type=Path)
    a = sub.add_parser("add", help="turn written responses into recordings")
    a.add_argument("missing", type=Path)
    a.add_argument("responses", type=Path)
    a.add_argument("--to", type=Path, required=True)
    r = sub.add_parser("rekey", help="update the keys of existing recordings")
    r.add_argument("missing", type=Path)
    r.add_argument("--to", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "show":
        show(args.missing)
    elif args.cmd == "add":
        print(f"{add(args.missing, args.responses, args.to)} recordings added to {args.to}")
    else:
        print(f"{rekey(args.missing, args.to)} recordings re-keyed in {args.to}")


if __name__ == "__main__":
    main()
