"""Rule report_plots: the figures of `snakemake --report` (PNG, one per question a user asks of a run)."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from darecipe.io import atomic_path  # noqa: E402
from darecipe.runlog import run_script  # noqa: E402


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


# metrics files named after their output rather than their rule
RULE_OF = {"samples": "summary_samples", "with_summary": "summary_llm"}


def _rule(path, m) -> str:
    stem = Path(path).name.removesuffix(".metrics.json")
    return m.get("category") or m.get("set") or RULE_OF.get(stem, stem)


def _load(path):
    return json.loads(Path(path).read_text())


def _hbar(ax, counts: dict, title: str, xlabel: str):
    names = list(counts)
    ax.barh(names or ["(none)"], [counts[n] for n in names] or [0], color="#4c72b0")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    for i, n in enumerate(names):
        ax.text(counts[n], i, f" {counts[n]:g}", va="center", fontsize=8)


def stage1_mix(stats, out):
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    _hbar(axes[0], stats["by_set"], "Stage-1 mix by source set", "records")
    _hbar(axes[1], stats["by_role"], "Stage-1 mix by role", "records")
    fig.suptitle(
        f"{stats['records']} records, {stats['tokens']['total']} tokens; "
        f"{stats['dropped_over_length']} dropped over {stats['max_tokens']} tokens"
    )
    _save(fig, out)


def token_lengths(token_files, out):
    sets = [
        (
            ("released:" if Path(p).parent.name == "released" else "") + Path(p).name.removesuffix(".tokens.parquet"),
            pl.read_parquet(p)["n_tokens"].to_list(),
        )
        for p in token_files
    ]
    cols = 3
    rows = max(1, (len(sets) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.6 * rows), squeeze=False)
    for ax, (name, lengths) in zip(axes.flat, sets):
        ax.hist(lengths or [0], bins=min(30, max(5, len(lengths))), color="#55a868")
        ax.set_title(f"{name} (n={len(lengths)})", fontsize=9)
        ax.set_xlabel("tokens", fontsize=8)
    for ax in list(axes.flat)[len(sets) :]:
        ax.axis("off")
    fig.suptitle("Token length per stage-1 set (real tokenizer)")
    fig.tight_layout()
    _save(fig, out)


def rejects(metric_files, out):
    counts = {}
    for p in metric_files:
        m = _load(p)
        rule = _rule(p, m)
        for reason, n in (m.get("reject_reasons") or {}).items():
            counts[f"{rule}: {reason[:50]}"] = counts.get(f"{rule}: {reason[:50]}", 0) + n
    fig, ax = plt.subplots(figsize=(10, 0.4 * max(4, len(counts)) + 1))
    if counts:
        _hbar(ax, dict(sorted(counts.items())), "Rejected records by rule and reason", "records")
    else:
        ax.text(0.5, 0.5, "no record was rejected", ha="center", va="center")
        ax.set_title("Rejected records by rule and reason")
        ax.axis("off")
    _save(fig, out)


def training_loss(metric_files, out):
    fig, ax = plt.subplots(figsize=(9, 4))
    for p in metric_files:
        m = _load(p)
        pts = [(c["step"], c["loss"]) for c in m.get("curve", []) if "loss" in c]
        if pts:
            ax.plot(*zip(*pts), marker=".", label=f"{m['stage']} ({m['global_step']} steps)")
    ax.set_xlabel("optimizer step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("training loss")
    ax.set_title("Training loss per step (SFT stages)")
    ax.legend()
    _save(fig, out)


def stage3_reward(metrics, out):
    per_step = (metrics.get("rollouts") or {}).get("per_step", [])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    steps = [s["step"] for s in per_step]
    mean = [s["reward_mean"] for s in per_step]
    std = [s["reward_std"] or 0 for s in per_step]
    axes[0].errorbar(steps, mean, yerr=std, marker="o", capsize=4)
    axes[0].set_title("Stage-3 reward per step (mean ± std over rollouts)")
    axes[0].set_xlabel("step")
    terms = sorted({k for s in per_step for k in (s.get("terms") or {})})
    for t in terms:
        axes[1].plot(steps, [(s.get("terms") or {}).get(t) for s in per_step], marker=".", label=t)
    axes[1].plot(steps, [s.get("gate_share") for s in per_step], "k--", label="format-gate share")
    axes[1].plot(steps, [s.get("code_share") for s in per_step], "g:", marker="s", label="share that ran code")
    axes[1].set_title("Reward terms per step")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_xlabel("step")
    axes[1].legend(fontsize=8)
    _save(fig, out)


def eval_stages(summary, out):
    stages = list(summary)
    keys = [
        ("accuracy", "accuracy"),
        ("completion_rate", "completion"),
        ("format_validity", "format valid"),
        ("code_success_rate", "code success"),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(keys)
    for i, (k, label) in enumerate(keys):
        axes[0].bar(
            [x + i * width for x in range(len(stages))], [summary[s].get(k) or 0 for s in stages], width, label=label
        )
    axes[0].set_xticks([x + 0.4 - width / 2 for x in range(len(stages))], stages)
    axes[0].set_ylim(0, 1)
    axes[0].set_title(f"Held-out evaluation ({summary[stages[0]]['tasks']} tasks)" if stages else "no stages")
    axes[0].legend(fontsize=8)
    axes[1].bar(stages, [summary[s].get("avg_rounds") or 0 for s in stages], color="#c44e52")
    axes[1].set_title("Average rounds per task")
    _save(fig, out)


def llm_usage(metric_files, out):
    calls, tokens, cost = {}, {}, {}
    for p in metric_files:
        m = _load(p)
        llm = m.get("llm") or {}
        roles = llm if all(isinstance(v, dict) for v in llm.values()) else {"": llm}
        rule = _rule(p, m)
        n = sum(t.get("responses", 0) + t.get("from_cache", 0) for t in roles.values() if t)
        if not n:
            continue  # a category with no workspace in this configuration
        calls[rule] = n
        tokens[rule] = sum(t.get("prompt_tokens", 0) + t.get("completion_tokens", 0) for t in roles.values() if t)
        cost[rule] = round(sum(t.get("cost_usd", 0.0) for t in roles.values() if t), 4)
    fig, axes = plt.subplots(1, 3, figsize=(14, 0.35 * max(6, len(calls)) + 1.5), sharey=True)
    _hbar(axes[0], calls, "LLM calls (answered or cached)", "requests")
    _hbar(axes[1], tokens, "Tokens (prompt + completion)", "tokens")
    _hbar(axes[2], cost, "Cost", "USD")
    fig.suptitle("Teacher LLM use per synthesis rule (all roles; the demo's replay backend reports no tokens)")
    fig.tight_layout()
    _save(fig, out)


def main(smk, log):
    i, o = smk.input, smk.output
    stage1_mix(_load(i.stage1_stats), o.stage1_mix)
    token_lengths(i.token_files, o.token_lengths)
    rejects(i.set_metrics + i.synthesis_metrics + i.summary_metrics, o.rejects)
    training_loss([Path(d) / "metrics.json" for d in i.sft_models], o.training_loss)
    stage3_reward(_load(Path(i.stage3) / "metrics.json"), o.stage3_reward)
    eval_stages(_load(i.eval_summary), o.eval_stages)
    llm_usage(i.set_metrics + i.synthesis_metrics + i.summary_metrics, o.llm_usage)
    log(f"wrote {len(o)} figures")


run_script(main, globals().get("snakemake"))
