"""GPU-hours and cost of each training stage from the config, as a table and as JSON."""

from __future__ import annotations


def plan(config: dict) -> dict:
    price = config["plan"]["price_per_gpu_hour"]
    rows = []
    for stage in ("stage1", "stage2", "stage3"):
        gpus, hours = config[stage]["gpus"], config["plan"]["hours"][stage]
        gpu_hours = gpus * hours
        rows.append({"stage": stage, "gpus": gpus, "hours": hours, "gpu_hours": gpu_hours, "cost_usd": gpu_hours * price})
    total = {"gpu_hours": sum(r["gpu_hours"] for r in rows), "hours": sum(r["hours"] for r in rows),
             "cost_usd": sum(r["cost_usd"] for r in rows)}  # fmt: skip
    return {"price_per_gpu_hour": price, "stages": rows, "total": total}


def table(p: dict) -> str:
    lines = [f"{'stage':<8} {'GPUs':>5} {'hours':>7} {'GPU-hours':>10} {'cost (USD)':>12}"]
    for r in p["stages"]:
        lines.append(f"{r['stage']:<8} {r['gpus']:>5} {r['hours']:>7g} {r['gpu_hours']:>10g} {r['cost_usd']:>12,.0f}")
    t = p["total"]
    lines.append(f"{'total':<8} {'':>5} {t['hours']:>7g} {t['gpu_hours']:>10g} {t['cost_usd']:>12,.0f}")
    lines.append(f"at ${p['price_per_gpu_hour']:g} per GPU-hour (plan.price_per_gpu_hour)")
    return "\n".join(lines)
