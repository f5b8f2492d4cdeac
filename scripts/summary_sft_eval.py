"""Rule summary_sft_eval: the final summary-module checkpoint on the validation sets. (a) full context -> summary
and reasoning (summary-prefix val): is the generated summary well formed, are its quotes in the results, does the
answer match; (b) summary -> reasoning / answer (summary-only val): does the answer match. Greedy decoding."""

import json
from pathlib import Path

import pyarrow.parquet as pq

from darecipe.agent import HFGenerator
from darecipe.chat import messages_ids
from darecipe.io import read_jsonl, write_json, write_text
from darecipe.runlog import run_script
from darecipe.summary import TagFamily, aggregate, score_output

TASKS = {
    "full_context_to_summary": ("summary_prefix", True),
    "summary_to_answer": ("summary_only", False),
}


def fmt(v):
    return "–" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def table(report, stats):
    lines = [
        "| task | val samples | answer match | summary well formed | summary quotes valid | generated tokens |",
        "|---|---|---|---|---|---|",
    ]
    for task, m in report["tasks"].items():
        lines.append(
            f"| {task} | {m['samples']} | {fmt(m['answer_match_rate'])} ({m['answer_samples']}) | "
            f"{fmt(m['summary_parsed_rate'])} | {fmt(m['summary_quote_valid_rate'])} | "
            f"{fmt(m['generated_tokens_mean'])} |"
        )
    lines += ["", "| set | records | mean prompt tokens | mean target tokens |", "|---|---|---|---|"]
    for name, s in stats["sets"].items():
        lines.append(f"| {name} | {s['records']} | {fmt(s['prompt_tokens_mean'])} | {fmt(s['target_tokens_mean'])} |")
    return "\n".join(lines) + "\n"


def main(smk, log):
    cfg = smk.params.eval
    families = TagFamily.from_config(smk.params.families)
    samples = {rec["id"]: rec for _, rec in read_jsonl(smk.input.records)}
    generator = HFGenerator(smk.input.model, cfg["max_new_tokens"], stop_at_code=False)
    report = {"model": str(smk.input.model), "max_new_tokens": cfg["max_new_tokens"], "tasks": {}}
    for task, (set_name, with_summary) in TASKS.items():
        val = pq.read_table(getattr(smk.input, set_name)).to_pylist()
        outputs = generator.generate([messages_ids(generator.tok, row["messages"][:-1]) for row in val])
        rows, lengths = [], []
        for row, (text, n_new) in zip(val, outputs):
            rec = samples[row["id"]]
            lengths.append(n_new)
            rows.append(
                {
                    **score_output(
                        rec, families[rec["family"]], text, with_summary, cfg["rel_tol"], smk.params.min_quote_chars
                    ),
                    "generated": text,
                }
            )
        metrics = aggregate(rows, lengths)
        report["tasks"][task] = {**metrics, "outputs": rows}
        log(f"{task}: {json.dumps(metrics)}")
    stats = json.loads(Path(smk.input.stats).read_text(encoding="utf-8"))
    report["reference"] = {"prompt_token_reduction": stats["prompt_token_reduction"]}
    write_json(smk.output.json, report)
    write_text(smk.output.md, "# Summary-enhanced SFT: validation\n\n" + table(report, stats))


run_script(main, globals().get("snakemake"))
