"""Rule synth_category: the synthesis shards of one category -> results/data/synthesis/<category>.{jsonl, rl.jsonl,
rejects.jsonl, metrics.json} (shards in plan order; counts and teacher usage summed)."""

import json
from pathlib import Path

from darecipe.io import read_jsonl, write_json, write_jsonl
from darecipe.runlog import run_script


def _sum(into: dict, add: dict) -> None:
    for k, v in add.items():
        if isinstance(v, dict):
            _sum(into.setdefault(k, {}), v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            into[k] = into.get(k, 0) + v


def main(smk, log):
    category = smk.wildcards.category
    for key in ("sft", "rl", "rejects"):
        n = write_jsonl(getattr(smk.output, key), (rec for path in smk.input[key] for _, rec in read_jsonl(path)))
        log(f"{key}: {n} records from {len(smk.input[key])} shards")
    totals: dict = {}
    for path in smk.input.metrics:
        m = json.loads(Path(path).read_text())
        _sum(totals, {k: v for k, v in m.items() if k not in ("batch",)})
    metrics = {
        "category": category,
        "shards": len(smk.input.metrics),
        **{k: v for k, v in totals.items() if k not in ("category", "workspace")},
    }
    for key, empty in (
        ("tasks", 0),
        ("trajectories", 0),
        ("accepted", 0),
        ("rl_tasks", 0),
        ("rejected", 0),
        ("reject_reasons", {}),
        ("llm", {}),
    ):
        metrics.setdefault(key, empty)
    write_json(smk.output.metrics, metrics)
    log(
        f"{category}: {metrics.get('accepted', 0)} trajectories accepted, {metrics.get('rl_tasks', 0)} RL tasks, "
        f"{metrics.get('rejected', 0)} rejected {metrics['reject_reasons']}"
    )


run_script(main, globals().get("snakemake"))
