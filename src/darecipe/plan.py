"""What the configured run will cost before it starts: GPU-hours per training stage, and the teacher's requests,
tokens and dollars per synthesis rule (plus the stage-3 judge), as tables and as JSON.

Teacher requests are counted from the config: stage-1 tasks from the configured source files (with their limits;
a file not on disk yet falls back to the released set's count, docs/recipe.md#3-stage-1-data-single-abilities), synthesis from categories × workspaces ×
tasks per workspace, the judge from the RL tasks × rollouts. Tokens per request are the `plan.teacher` assumptions
(measured on the demo's recorded teacher, rounded up for paper-size tables); prices are `llm.price` / `judge.price`.
"""

from __future__ import annotations

import json
from pathlib import Path

from .sets import RELEASED_RL_TASKS


def _count_rows(path: str, kind: str) -> int | None:
    p = Path(path)
    if not p.is_file():
        return None
    if kind == "tsv":
        with open(p, encoding="utf-8", errors="replace") as f:
            return max(0, sum(1 for _ in f) - 1)
    if kind == "jsonl":
        with open(p, encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if line.strip())
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return len(data) if isinstance(data, list) else None


def _limited(n: int | None, limit: int | None) -> int | None:
    return n if n is None or limit is None else min(n, limit)


def _file_task_kinds(path: str) -> dict[str, int] | None:
    p = Path(path)
    if not p.is_file():
        return None
    counts: dict[str, int] = {}
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            kind = json.loads(line).get("kind")
        except ValueError:
            continue
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def stage1_counts(config: dict) -> dict[str, tuple[int, str, str]]:
    """Per synthesised stage-1 set (darecipe.sets): (tasks, where the number comes from, its kind)."""
    from .sets import STAGE1_SETS, SYNTHESISED_SETS

    d = config["stage1_data"]
    parts = [
        _limited(_count_rows(d["wikitq"]["tsv"], "tsv"), d["wikitq"]["limit"]),
        _limited(_count_rows(d["finqa"]["path"], "json"), d["finqa"]["limit"]),
        _limited(_count_rows(d["tatqa"]["path"], "json"), d["tatqa"]["limit"]),
    ]
    file_kinds = _file_task_kinds(d["file_tasks"])
    out = {}
    for name in SYNTHESISED_SETS:
        kind = STAGE1_SETS[name].kind
        if kind in ("distill", "refine"):
            n = (sum(parts), "source files") if None not in parts else None
        elif kind == "tablegpt":
            n = (d["tablegpt_tables"], "config") if d["tablegpt_tables"] is not None else None
        else:
            n = (file_kinds.get(name, 0), "source files") if file_kinds is not None else None
        out[name] = (*(n or (STAGE1_SETS[name].released, "released set")), kind)
    return out


def teacher_plan(config: dict) -> dict:
    t = config["plan"]["teacher"]
    tok = t["tokens"]
    rows = []

    def add(rule, records, source, kind, per_record=1):
        prompt, completion = tok[kind]
        requests = records * per_record
        rows.append(
            {
                "rule": rule,
                "records": records,
                "from": source,
                "requests": requests,
                "prompt_tokens": requests * prompt,
                "completion_tokens": requests * completion,
            }
        )

    source = config["data"]["source"]
    rl_tasks, rl_from = 0, []
    if source in ("synthesised", "both"):  # the released data needs no teacher: only this pipeline's own data does
        for name, (n, src, kind) in stage1_counts(config).items():
            add(f"stage1_synth: {name}", n, src, kind)  # one request per task (a file task's code runs after it)
        from .synthesis_plan import jobs, requests

        syn = config["synthesis"]
        planned = jobs(syn)
        trajectories = sum(j.n_sft for j in planned)
        rl_tasks += sum(j.n_rl for j in planned)
        rl_from.append("config")
        asks = sum(len(requests(j, syn.get("tasks_per_request"))) for j in planned)
        add("synth_shard: questioner", asks, "config", "questioner")
        add("synth_shard: solver", trajectories, "config", "solver", t["solver_turns"])
        add("synth_shard: inspector", trajectories, "config", "inspector")
    if source in ("released", "both"):
        rl_tasks += RELEASED_RL_TASKS
        rl_from.append("release")
    llm = config["llm"]
    price = llm.get("price", {})
    for r in rows:
        r["cost_usd"] = _cost(r, price)
    judge = config["judge"]
    if judge["backend"] != "none":
        s3 = config["stage3"]
        rollouts = round(rl_tasks * s3["num_generations"] * s3["num_train_epochs"])
        prompt, completion = tok["judge"]
        r = {
            "rule": "train_stage3: judge",
            "records": rl_tasks,
            "from": " + ".join(rl_from),
            "requests": rollouts,
            "prompt_tokens": rollouts * prompt,
            "completion_tokens": rollouts * completion,
        }
        r["cost_usd"] = _cost(r, judge.get("price", {}))
        rows.append(r)
    keys = ("requests", "prompt_tokens", "completion_tokens", "cost_usd")
    total = {k: sum(r[k] for r in rows) for k in keys}
    return {"model": llm["model"], "backend": llm["backend"], "rules": rows, "total": total}


def _cost(row: dict, price: dict) -> float:
    return (
        row["prompt_tokens"] * price.get("input_per_mtok", 0)
        + row["completion_tokens"] * price.get("output_per_mtok", 0)
    ) / 1e6


def plan(config: dict) -> dict:
    price = config["plan"]["price_per_gpu_hour"]
    rows = []
    for stage in ("stage1", "stage2", "stage3"):
        gpus, hours = config[stage]["gpus"], config["plan"]["hours"][stage]
        gpu_hours = gpus * hours
        rows.append(
            {"stage": stage, "gpus": gpus, "hours": hours, "gpu_hours": gpu_hours, "cost_usd": gpu_hours * price}
        )
    total = {
        "gpu_hours": sum(r["gpu_hours"] for r in rows),
        "hours": sum(r["hours"] for r in rows),
        "cost_usd": sum(r["cost_usd"] for r in rows),
    }
    out = {"price_per_gpu_hour": price, "stages": rows, "total": total}
    if "teacher" in config.get("plan", {}):
        out["teacher"] = teacher_plan(config)
    return out


def table(p: dict) -> str:
    lines = [f"{'stage':<8} {'GPUs':>5} {'hours':>7} {'GPU-hours':>10} {'cost (USD)':>12}"]
    for r in p["stages"]:
        lines.append(f"{r['stage']:<8} {r['gpus']:>5} {r['hours']:>7g} {r['gpu_hours']:>10g} {r['cost_usd']:>12,.0f}")
    t = p["total"]
    lines.append(f"{'total':<8} {'':>5} {t['hours']:>7g} {t['gpu_hours']:>10g} {t['cost_usd']:>12,.0f}")
    lines.append(f"at ${p['price_per_gpu_hour']:g} per GPU-hour (plan.price_per_gpu_hour)")
    if "teacher" in p:
        tp = p["teacher"]
        lines += [
            "",
            f"teacher {tp['model']} ({tp['backend']}); tokens per request: plan.teacher.tokens",
            f"{'rule':<36} {'records':>9} {'from':<14} {'requests':>10} {'tokens in':>13} {'tokens out':>12} {'cost (USD)':>11}",
        ]
        for r in tp["rules"]:
            lines.append(
                f"{r['rule']:<36} {r['records']:>9,} {r['from']:<14} {r['requests']:>10,} "
                f"{r['prompt_tokens']:>13,} {r['completion_tokens']:>12,} {r['cost_usd']:>11,.0f}"
            )
        t = tp["total"]
        lines.append(
            f"{'total':<36} {'':>9} {'':<14} {t['requests']:>10,} {t['prompt_tokens']:>13,} "
            f"{t['completion_tokens']:>12,} {t['cost_usd']:>11,.0f}"
        )
        lines.append("prices: llm.price / judge.price (USD per million tokens)")
    return "\n".join(lines)
