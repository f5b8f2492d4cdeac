"""The one-screen summary printed at the end of `make demo`: what was built, how training went, the evaluation.

python -m darecipe.demo_report [--root .]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CHECKPOINTS = {
    **{n: f"results/checkpoints/{n}" for n in ("vocab", "stage1", "stage2", "stage3", "domain_lora", "domain_merged")},
    **{f"summary phase{i}": f"results/summary/checkpoints/phase{i}" for i in (1, 2, 3)},
}


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _lines(path: Path) -> int | None:
    try:
        return sum(1 for line in path.read_text().splitlines() if line.strip())
    except OSError:
        return None


def _num(v, pct: bool = False) -> str:
    if v is None:
        return "—"
    return f"{100 * v:.0f} %" if pct else f"{v:.2f}"


def stage3_table(per_step: list[dict], k: int = 2) -> list[str]:
    """Stage 3 per step: reward mean and spread, the share of rollouts that ran code; then the mean reward of the
    first `k` steps next to the last `k` (no target: a few CPU steps show the signal, not a trend to trust)."""
    if not per_step:
        return []
    out = [
        "Stage 3 (GRPO) per step",
        "| step | rollouts | reward mean | reward std | ran code | code success | gated |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in per_step:
        out.append(
            f"| {s['step']} | {s['rollouts']} | {_num(s['reward_mean'])} | {_num(s['reward_std'])} | "
            f"{_num(s.get('code_share'), True)} | {_num(s.get('code_success_rate'), True)} | "
            f"{_num(s.get('gate_share'), True)} |"
        )
    k = min(k, len(per_step) // 2) or 1
    first = [s["reward_mean"] for s in per_step[:k] if s["reward_mean"] is not None]
    last = [s["reward_mean"] for s in per_step[-k:] if s["reward_mean"] is not None]
    if first and last:
        out.append(
            f"mean reward, first {k} step(s): {sum(first) / len(first):.3f}; last {k} step(s): {sum(last) / len(last):.3f}"
        )
    return out


def screen(root: Path) -> str:
    out = ["DeepAnalyze recipe: embedded default finished", ""]
    stats = _json(root / "results/data/stage1/stats.json") or {}
    interaction = sum(
        _lines(p) or 0
        for p in (root / "results/data/synthesis").glob("*.jsonl")
        if not p.name.endswith((".rl.jsonl", ".rejects.jsonl"))
    )
    rl = _lines(root / "results/data/rl/swift_train.jsonl")
    out.append(
        f"Data        stage-1 mix {stats.get('records', '?')} records ({stats.get('tokens', {}).get('total', '?')} tokens)"
        f" | stage-2 trajectories {interaction} | stage-3 RL tasks {rl if rl is not None else '?'}"
    )
    out.append("Checkpoints (HF directories; trained ones have metrics.json)")
    for name, rel in CHECKPOINTS.items():
        m = _json(root / rel / "metrics.json")
        if m is None:
            out.append(f"  {name:<15} {rel}/" if (root / rel).is_dir() else f"  {name:<15} (not built)")
            continue
        curve = m.get("curve") or []
        loss = next((c["loss"] for c in reversed(curve) if "loss" in c), None)
        extra = f", final loss {loss:.3f}" if loss is not None else ""
        if name == "stage3" and m.get("rollouts"):
            last = m["rollouts"]["per_step"][-1] if m["rollouts"]["per_step"] else {}
            extra += f", last reward {last.get('reward_mean')}"
        if name == "domain_merged":
            extra = " (LoRA merged into stage 3)"
        out.append(f"  {name:<15} step {m.get('global_step', '?')}{extra}")
    stage3 = _json(root / "results/checkpoints/stage3/metrics.json") or {}
    out += stage3_table((stage3.get("rollouts") or {}).get("per_step", []))
    summary = root / "results/eval/summary.md"
    if summary.is_file():
        # the tables and notes; the heading and the scoring footnote stay in the file
        kept = [line for line in summary.read_text().strip().splitlines()[2:] if not line.startswith("Accuracy:")]
        out += ["", "Held-out evaluation (results/eval/summary.md)", *"\n".join(kept).strip().splitlines()]
    out += [
        "",
        "SmolLM2-135M, minutes of CPU: the table shows what each stage changed, not the paper's numbers (docs/embedded-default.md).",
        "Report with plots: snakemake --report results/report.html  (or: make report)",
        "Logs: logs/   Benchmarks: benchmarks/   Resumable run directories: results/runs/",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."), help="the pipeline's working directory")
    print(screen(ap.parse_args(argv).root))


if __name__ == "__main__":
    main()
