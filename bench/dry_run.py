"""Seconds of `snakemake -n stage3_checkpoint` (the whole DAG listed before anything runs) for the paper run from
the released data (config/deepanalyze-8b.yaml + config/deepanalyze-8b-released.yaml) and for the paper config with
stage-2/3 synthesis at the paper's scale (hundreds of synthesis jobs). Best of --repeat runs each, wall clock and
CPU; the last line printed is the figure. Target: each under 5 s.

    .venv/bin/python bench/dry_run.py [--repeat 3]
"""

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
CASES = {
    "released data (paper + released overlay)": ["config/deepanalyze-8b.yaml", "config/deepanalyze-8b-released.yaml"],
    "synthesis at paper scale (paper config)": ["config/deepanalyze-8b.yaml"],
}


def counts(stdout: str) -> dict[str, int]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats:"))
    out = {}
    for line in lines[start + 3 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        out[parts[0]] = int(parts[1])
    return out


def run(configfiles: list[str]) -> tuple[float, float, dict]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            str(SNAKEMAKE),
            "-n",
            "stage3_checkpoint",
            "--forceall",
            "--configfile",
            *configfiles,
            "--replace-workflow-config",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), counts(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    worst = 0.0
    for name, files in CASES.items():
        runs = [run(files) for _ in range(args.repeat)]
        wall, cpu, jobs = min(runs, key=lambda r: r[0])
        synth = sum(n for rule, n in jobs.items() if rule in ("synth_shard", "stage1_synth"))
        print(
            f"{name}: {sum(jobs.values())} jobs ({jobs.get('synth_shard', 0)} synth_shard, {synth} synthesis "
            f"jobs in all), {wall:.2f} s wall, {cpu:.2f} s CPU (best of {args.repeat})"
        )
        worst = max(worst, wall)
    print(f"dry run: {worst:.2f} s wall at most (target < 5 s)")


if __name__ == "__main__":
    main()
