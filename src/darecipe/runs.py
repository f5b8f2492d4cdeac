"""Training run directories (`results/runs/<stage>/<key>/`): which are current, which are stale.

python -m darecipe.runs list            # every run, its size, and whether a current checkpoint comes from it
python -m darecipe.runs clean --yes     # delete the stale ones (nothing is deleted without --yes)
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def runs(runs_root: Path, checkpoints: Path) -> list[dict]:
    current = set()
    for metrics in checkpoints.glob("*/metrics.json"):
        key = json.loads(metrics.read_text()).get("run_key")
        if key:
            current.add((metrics.parent.name, key))
    out = []
    for run in sorted(p for p in runs_root.glob("*/*") if p.is_dir()):
        stage, key = run.parent.name, run.name
        out.append(
            {"stage": stage, "key": key, "path": str(run), "bytes": _size(run), "current": (stage, key) in current}
        )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m darecipe.runs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("command", choices=["list", "clean"])
    ap.add_argument("--runs", type=Path, default=Path("results/runs"))
    ap.add_argument("--checkpoints", type=Path, default=Path("results/checkpoints"))
    ap.add_argument("--yes", action="store_true", help="really delete the stale runs")
    args = ap.parse_args(argv)
    found = runs(args.runs, args.checkpoints)
    for r in found:
        print(f"{'current' if r['current'] else 'stale  '}  {r['bytes'] / 1e6:10.1f} MB  {r['path']}")
    stale = [r for r in found if not r["current"]]
    if args.command == "clean":
        if not args.yes:
            print(f"{len(stale)} stale run(s); add --yes to delete them")
            return
        for r in stale:
            shutil.rmtree(r["path"])
        print(f"deleted {len(stale)} stale run(s), {sum(r['bytes'] for r in stale) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
