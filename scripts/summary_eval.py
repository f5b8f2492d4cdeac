"""Rule summary_sft_eval: the final summary-module checkpoint on the validation sets. (a) full context -> summary
and reasoning (summary-prefix val): is the generated summary well formed, are its quotes in the results, does the
answer match; (b) summary -> reasoning / answer (summary-only val): does the answer match. Greedy decoding."""

import json
from pathlib import Path

import pyarrow.parquet as pq

from darecipe.io import read_jsonl, write_json, write_text
from darecipe.runlog import run_script
from darecipe.summary import TagFamily, aggregate, score_output

TASKS = {
    "full_context_to_summary": ("summary_prefix", True),
    "summary_to_answer": ("summary_only", False),
}


class Generator:
    def __init__(self, model_dir, max_new_tokens):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch, self.max_new_tokens = torch, max_new_tokens
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto").to(self.device).eval()

    def __call__(self, messages):
        """Greedy continuation after the chat prompt, as trained (no empty think block); (text, new tokens)."""
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        text = text.replace("<think>\n\n</think>\n\n", "")
        ids = self.torch.tensor([self.tok.encode(text, add_special_tokens=False)], device=self.device)
        with self.torch.no_grad():
            gen = self.model.generate(ids, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      eos_token_id=self.tok.eos_token_id, pad_token_id=self.tok.pad_token_id)  # fmt: skip
        new = gen[0, ids.shape[1] :].tolist()
        if new and new[-1] == self.tok.eos_token_id:
            new = new[:-1]
        return self.tok.decode(new, skip_special_tokens=False), len(new)


def fmt(v):
    return "–" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def table(report, stats):
    lines = ["| task | val samples | answer match | summary well formed | summary quotes valid | generated tokens |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for task, m in report["tasks"].items():
        lines.append(f"| {task} | {m['samples']} | {fmt(m['answer_match_rate'])} ({m['answer_samples']}) | "
                     f"{fmt(m['summary_parsed_rate'])} | {fmt(m['summary_quote_valid_rate'])} | "
                     f"{fmt(m['generated_tokens_mean'])} |")  # fmt: skip
    lines += ["", "| set | records | mean prompt tokens | mean target tokens |", "|---|---|---|---|"]
    for name, s in stats["sets"].items():
        lines.append(f"| {name} | {s['records']} | {fmt(s['prompt_tokens_mean'])} | {fmt(s['target_tokens_mean'])} |")
    return "\n".join(lines) + "\n"


def main(smk, log):
    cfg = smk.params.eval
    families = TagFamily.from_config(smk.params.families)
    samples = {rec["id"]: rec for _, rec in read_jsonl(smk.input.records)}
    generate = Generator(smk.input.model, cfg["max_new_tokens"])
    report = {"model": str(smk.input.model), "max_new_tokens": cfg["max_new_tokens"], "tasks": {}}
    for task, (set_name, with_summary) in TASKS.items():
        rows, lengths = [], []
        for row in pq.read_table(getattr(smk.input, set_name)).to_pylist():
            rec = samples[row["id"]]
            text, n_new = generate(row["messages"][:-1])
            lengths.append(n_new)
            rows.append({**score_output(rec, families[rec["family"]], text, with_summary, cfg["rel_tol"],
                                        smk.params.min_quote_chars), "generated": text})  # fmt: skip
        metrics = aggregate(rows, lengths)
        report["tasks"][task] = {**metrics, "outputs": rows}
        log(f"{task}: {json.dumps(metrics)}")
    stats = json.loads(Path(smk.input.stats).read_text(encoding="utf-8"))
    report["reference"] = {"prompt_token_reduction": stats["prompt_token_reduction"]}
    write_json(smk.output.json, report)
    write_text(smk.output.md, "# Summary-enhanced SFT: validation\n\n" + table(report, stats))


run_script(main, snakemake)  # noqa: F821
