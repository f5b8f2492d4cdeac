"""What the teacher costs at paper scale, and how long it takes: API online, API batch, or a local vLLM teacher.

Requests per step come from the recipe's data sizes (docs/recipe.md §3-§5) divided by an acceptance rate (rejected
replies were paid for too). Tokens per request and solver turns are the `plan.teacher` assumptions that
`make plan` uses for the configured run (`tools/teacher_sizes.py` measures the real requests on the shipped data);
prices are `llm.price`. Every figure is in the config or a flag: `python -m darecipe.teacher_plan --help`.

Time, online: the slowest of the provider's token limit, its request limit and the client's concurrency
(requests x latency / in flight). Batch: the one-shot steps (stage 1) at the batch price, each wave within the
24 h window; the multi-turn steps stay online. Local: prefill and decode throughput of the GPUs (vLLM's prefix
cache spares most of the solver's re-sent history, `--prefix-hit`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from .sets import RELEASED_RL_TASKS

# Share of requests whose reply is kept (assumptions): the gold answer must match, the cues must appear, the
# row count must be stated, the file task's output must show the answer; the inspector's verdict.
ACCEPT = {"distill": 0.80, "refine": 0.85, "tablegpt": 0.90, "file": 0.70, "inspector": 0.60}
TASKS_PER_QUESTIONER_CALL = 30  # 20 trajectory tasks + 10 RL tasks


@dataclass(frozen=True)
class Step:
    name: str
    requests: int
    prompt: int  # mean prompt tokens per request
    reply: int  # mean reply tokens per request
    batchable: bool  # one-shot (batch mode) or multi-turn (online)

    @property
    def prompt_tokens(self) -> float:
        return self.requests * self.prompt

    @property
    def reply_tokens(self) -> float:
        return self.requests * self.reply


def paper_steps(teacher: dict) -> list[Step]:
    """The paper run's teacher requests, with `plan.teacher`'s tokens per request and solver turns. Each stage-1
    task is one request in this pipeline (the file task's code runs after the reply)."""
    tok = teacher["tokens"]
    trajectories = 26_202 / ACCEPT["inspector"]  # stage-2 records kept (docs/recipe.md §4)
    rl_tasks = RELEASED_RL_TASKS  # docs/recipe.md §5

    def step(name, requests, batchable, kind=None):
        prompt, reply = tok[kind or name]
        return Step(name, round(requests), prompt, reply, batchable)

    return [
        step("distill", 39_301 / ACCEPT["distill"], True),  # docs/recipe.md §3
        step("refine", 39_301 / ACCEPT["refine"], True),
        step("tablegpt", 29_448 / ACCEPT["tablegpt"], True),
        step("file", 13_023 / ACCEPT["file"], True),
        step("questioner", (trajectories + rl_tasks) / TASKS_PER_QUESTIONER_CALL, False),
        step("solver", trajectories * teacher["solver_turns"], False),
        step("inspector", trajectories, False),
    ]


@dataclass(frozen=True)
class Prices:
    input_per_mtok: float
    output_per_mtok: float
    batch_factor: float = 0.5


def api_cost(steps: list[Step], p: Prices, batch: bool) -> float:
    usd = 0.0
    for s in steps:
        cost = (s.prompt_tokens * p.input_per_mtok + s.reply_tokens * p.output_per_mtok) / 1e6
        usd += cost * (p.batch_factor if batch and s.batchable else 1.0)
    return usd


def online_hours(steps: list[Step], tpm: float, rpm: float, in_flight: int, latency_s: float) -> float:
    requests = sum(s.requests for s in steps)
    tokens = sum(s.prompt_tokens + s.reply_tokens for s in steps)
    return max(tokens / tpm, requests / rpm, requests * latency_s / in_flight / 60) / 60


def local_hours(steps: list[Step], prefill_tps: float, decode_tps: float, prefix_hit: float) -> float:
    """Node-hours: prompts prefilled (the solver's history mostly from the prefix cache), replies decoded."""
    prefill = sum(s.prompt_tokens * ((1 - prefix_hit) if s.name == "solver" else 1.0) for s in steps)
    return (prefill / prefill_tps + sum(s.reply_tokens for s in steps) / decode_tps) / 3600


def load_config(path: str | Path) -> dict:
    """A config file with the schema's defaults filled in."""
    import yaml

    from .config import load_schema, validate_config

    cfg = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return validate_config(cfg, load_schema(Path(__file__).resolve().parents[2] / "config/schema.yaml"), str(path))


def report(a) -> str:
    cfg = load_config(a.config)
    steps = paper_steps(cfg["plan"]["teacher"])
    price = cfg["llm"]["price"]
    prices = Prices(price["input_per_mtok"], price["output_per_mtok"], price["batch_factor"])
    rows = [f"{'step':<11} {'requests':>9} {'prompt tok':>11} {'reply tok':>10} {'M in':>8} {'M out':>7} {'mode':>7}"]
    for s in steps:
        rows.append(
            f"{s.name:<11} {s.requests:>9,} {s.prompt:>11,} {s.reply:>10,} {s.prompt_tokens / 1e6:>8,.1f} "
            f"{s.reply_tokens / 1e6:>7,.1f} {'batch' if s.batchable else 'online':>7}"
        )
    n = sum(s.requests for s in steps)
    m_in, m_out = sum(s.prompt_tokens for s in steps) / 1e6, sum(s.reply_tokens for s in steps) / 1e6
    rows.append(f"{'total':<11} {n:>9,} {'':>11} {'':>10} {m_in:>8,.1f} {m_out:>7,.1f}")
    online = online_hours(steps, a.tpm, a.rpm, a.in_flight, a.latency)
    multi = [s for s in steps if not s.batchable]
    node_h = local_hours(steps, a.prefill_tps, a.decode_tps, a.prefix_hit)
    rows += [
        "",
        f"teacher {cfg['llm']['model']} at ${prices.input_per_mtok:g} / ${prices.output_per_mtok:g} per million "
        f"prompt / reply tokens (llm.price); tokens per request and solver turns: plan.teacher ({a.config})",
        f"API online: ${api_cost(steps, prices, False):,.0f}; {online:,.1f} h at {a.tpm:,.0f} tokens/min, "
        f"{a.rpm:,.0f} requests/min, {a.in_flight} in flight x {a.latency:g} s",
        f"API batch:  ${api_cost(steps, prices, True):,.0f} (stage 1 at x{prices.batch_factor:g}); stage 1 within 24 h "
        f"per wave, the multi-turn steps online: {online_hours(multi, a.tpm, a.rpm, a.in_flight, a.latency):,.1f} h",
        f"local vLLM: {node_h:,.1f} h of one {a.gpus}-GPU node = {node_h * a.gpus:,.0f} GPU-hours = "
        f"${node_h * a.gpus * a.gpu_hour:,.0f} at ${a.gpu_hour:g}/GPU-hour (prefill {a.prefill_tps:,.0f} and decode "
        f"{a.decode_tps:,.0f} tokens/s per node, {a.prefix_hit:.0%} of the solver's prompts from the prefix cache)",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="config/deepanalyze-8b.yaml", help="prices (llm.price) and plan.teacher")
    ap.add_argument("--tpm", type=float, default=2_000_000, help="the account's tokens per minute")
    ap.add_argument("--rpm", type=float, default=10_000, help="the account's requests per minute")
    ap.add_argument("--in-flight", type=int, default=1024, help="requests in flight over all jobs")
    ap.add_argument("--latency", type=float, default=20.0, help="seconds per request")
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--prefill-tps", type=float, default=40_000, help="prompt tokens/s of one node")
    ap.add_argument("--decode-tps", type=float, default=4_000, help="reply tokens/s of one node")
    ap.add_argument("--prefix-hit", type=float, default=0.8, help="share of solver prompt tokens from the prefix cache")
    ap.add_argument("--gpu-hour", type=float, default=2.0, help="USD per GPU-hour")
    print(report(ap.parse_args(argv)))


if __name__ == "__main__":
    main()
