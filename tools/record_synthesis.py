"""Turn the hand-written synthesis plans into replay recordings (a maintainer's tool, not part of the pipeline).

resources/recordings/sources/synthesis_plans.jsonl holds, per (category, workspace), what a careful teacher
answers as questioner (the tasks), as solver (each turn of the trajectory, up to its </Code>), and as inspector
(the verdict). The real rule needs the requests' keys, and a solver turn's request contains the real output of
the code run before it, so this tool runs the synthesis rules on the replay backend, answers whatever requests
they report missing from the plans, and repeats until nothing is missing.

    .venv/bin/python tools/record_synthesis.py
"""

import json
import subprocess
import sys
from pathlib import Path

from darecipe.io import write_jsonl
from darecipe.recordings import _load

ROOT = Path(__file__).resolve().parents[1]
PLANS = ROOT / "resources/recordings/sources/synthesis_plans.jsonl"
TARGET = ROOT / "resources/recordings/synthesis.jsonl"
CACHE = ROOT / "results/cache/llm/synthesis"


def answer(role: str, req: dict, plans: dict) -> str:
    if role == "questioner":
        return json.dumps(plans[req["id"]]["questioner"], ensure_ascii=False)
    plan = next(p for p in plans.values() if req["id"] in p[role])
    if role == "inspector":
        return json.dumps(plan["inspector"][req["id"]], ensure_ascii=False)
    turn = sum(m["role"] == "assistant" for m in req["messages"])
    return plan["solver"][req["id"]][turn]


def main() -> None:
    plans = {f"{p['category']}/{p['workspace']}": p for p in map(json.loads, PLANS.read_text().splitlines())}
    targets = [f"results/data/synthesis/{p['category']}.jsonl" for p in plans.values()]
    for _ in range(20):
        for missing in CACHE.rglob("*.missing.jsonl"):
            missing.unlink()
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "2", "--keep-going", *targets],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        found = sorted(CACHE.rglob("*.missing.jsonl"))
        if not found:
            print("all recorded" if proc.returncode == 0 else proc.stderr[-3000:])
            return
        recordings = _load(TARGET)
        for path in found:
            role = path.name.removesuffix(".missing.jsonl")
            for req in _load(path):
                recordings.append({"id": req["id"], "key": req["key"], "response": answer(role, req, plans)})
                print(f"recorded {role} {req['id']}")
        write_jsonl(TARGET, recordings)
    sys.exit("gave up after 20 rounds")


if __name__ == "__main__":
    main()
