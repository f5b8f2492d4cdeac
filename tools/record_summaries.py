"""Turn the hand-written summaries into replay recordings (a maintainer's tool, not part of the pipeline).

resources/recordings/sources/summary_plans.jsonl holds, per sample id (`<trace id>#<step>`), the summary a careful
teacher writes: the question, the reasoning so far, and key facts copied exactly from that sample's results. This
tool builds the samples with the real rule (`summary_samples`, which needs the stage-2 trajectories), renders each
sample's real summary request with the configured prompt, model and sampling, and writes
resources/recordings/summary.jsonl keyed by those requests. It stops if a sample has no plan, or if a plan quotes
text that is not in its sample's results.

    .venv/bin/python tools/record_summaries.py [--workdir DIR]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

from darecipe.config import load_schema, validate_config
from darecipe.io import read_jsonl, write_jsonl
from darecipe.llm import request_key
from darecipe.prompts import load_template
from darecipe.summary import Summary, check_quotes, summary_messages

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=ROOT, help="a copy of the repository to run the rules in")
    work = ap.parse_args().workdir.resolve()
    config = yaml.safe_load((work / "config/config.yaml").read_text())
    validate_config(config, load_schema(work / "config/schema.yaml"))
    samples_path = work / "results/summary/samples.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", str(samples_path.relative_to(work))],
        cwd=work,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(proc.stderr[-3000:])
    plans = {
        rec["id"]: rec["summary"] for _, rec in read_jsonl(work / "resources/recordings/sources/summary_plans.jsonl")
    }
    tpl = load_template(work / config["summary"]["prompt"])
    llm = config["llm"]
    recordings = []
    for _, sample in read_jsonl(samples_path):
        plan = plans.get(sample["id"])
        if plan is None:
            print(json.dumps(summary_messages(tpl, sample)[0]["content"], ensure_ascii=False)[:3000])
            sys.exit(f"no plan for sample {sample['id']!r}: write its summary in summary_plans.jsonl (request above)")
        reason = check_quotes(Summary(**plan), sample["results"], config["summary"]["min_quote_chars"])
        if reason:
            sys.exit(f"plan {sample['id']!r}: {reason}")
        key = request_key(llm["model"], llm["sampling"], summary_messages(tpl, sample))
        recordings.append({"id": sample["id"], "key": key, "response": json.dumps(plan, ensure_ascii=False)})
    target = work / "resources/recordings/summary.jsonl"
    write_jsonl(target, recordings)
    print(f"{len(recordings)} summary recordings written to {target}")


if __name__ == "__main__":
    main()
