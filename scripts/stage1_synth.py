"""Rules stage1_distill / stage1_refine / stage1_tablegpt / stage1_file: one shard of teacher synthesis.

Requests go through the LLM layer (cache first, so a rerun after a kill repeats no completed request; online or,
with `llm.mode: batch`, as batch jobs); each reply is checked and becomes a record or a reject with the reason.
A request left unanswered (transport, limits, server) is no reject: the rule fails with the count
(`llm.on_missing`) and a rerun asks exactly those. Output order is the task order."""

import tempfile
from pathlib import Path

from darecipe.io import read_jsonl, write_json, write_jsonl
from darecipe.llm import LLMRequest, LLMSettings, ResponseCache, report_missing, run_requests
from darecipe.loaders import Rejects, TaskRecord, materialise_files
from darecipe.mix import set_records
from darecipe.runlog import run_script
from darecipe.sandbox import SandboxLimits, describe_isolation
from darecipe.serving import local_teacher
from darecipe.stage1 import (
    check_reasoning,
    distill_messages,
    file_messages,
    file_prompt,
    load_template,
    read_cues,
    refine_messages,
    run_file_reply,
    sample_cues,
    student_prompt,
    tablegpt_messages,
)


def main(smk, log):
    p = smk.params
    shard, n_shards = int(smk.wildcards.shard), p.shards
    tasks = [TaskRecord.from_json(rec) for _, rec in read_jsonl(smk.input.tasks)]
    if p.kind == "file":
        tasks = [t for t in tasks if t.kind == p.set]
    mine = [t for i, t in enumerate(tasks) if i % n_shards == shard]
    tpl = load_template(smk.input.template)
    data_root = Path(p.data_root)
    settings = LLMSettings.from_config(smk.config["llm"])
    limits = SandboxLimits(**p.sandbox) if p.kind == "file" else None
    if limits:
        log(describe_isolation(limits))  # first: how the teacher's code will be isolated, or that it cannot be
    log(f"{p.set} shard {shard}/{n_shards}: {len(mine)} tasks, teacher {settings.model} ({settings.backend}, "
        f"{settings.mode})")  # fmt: skip

    rejects = Rejects()
    jobs = []  # (task, request, extra) in task order
    with tempfile.TemporaryDirectory(prefix="stage1-") as tmp:
        if p.kind == "refine":
            distilled = {r["id"]: r for r in set_records(smk.input.distilled)}
            cues = read_cues(smk.input.cues)
            for t in mine:
                if t.id not in distilled:
                    rejects.add(f"task {t.id}", t.id, "no distilled reasoning to refine (its distillation was rejected)")
                    continue
                chosen = sample_cues(cues, t.id, p.n_cues, p.seed)
                reasoning = distilled[t.id]["messages"][-1]["content"]
                jobs.append((t, refine_messages(tpl, t, reasoning, chosen), {"cues": chosen}))
        elif p.kind == "file":
            for t in mine:
                files = materialise_files(t.files, data_root, Path(tmp) / "prompt" / t.id)
                prompt = file_prompt(t, files)
                jobs.append((t, file_messages(tpl, t, prompt), {"prompt": prompt}))
        else:
            build = distill_messages if p.kind == "distill" else tablegpt_messages
            jobs = [(t, build(tpl, t), {}) for t in mine]

        cache = ResponseCache(Path(smk.config["llm"]["cache_dir"]) / p.set / f"{shard}.jsonl")
        serve = settings.mode == "online"  # in batch mode a local teacher runs as `vllm run-batch` instead
        try:
            with local_teacher(settings, Path(f"{smk.log[0]}.teacher"), log, serve=serve) as teacher:
                results, totals = run_requests(teacher, [LLMRequest(t.id, m) for t, m, _ in jobs], cache, log=log,
                                               batch_ok=True)  # fmt: skip
        finally:
            cache.close()

        records, missing = [], []
        for (t, _, extra), res in zip(jobs, results):
            where = f"{p.set} shard {shard}"
            if res.error:
                if res.retryable:
                    missing.append(res)
                else:
                    rejects.add(where, t.id, res.error)
                continue
            if p.kind == "file":
                run = run_file_reply(res.text, t, data_root, Path(tempfile.mkdtemp(dir=tmp)), limits)
                reason, reply, user = run.reason, run.text, extra["prompt"]
            else:
                mode = "contains" if p.kind == "tablegpt" else "match"
                reason = check_reasoning(res.text, t, extra.get("cues", ()), mode=mode, rel_tol=p.rel_tol)
                reply, user = res.text.strip(), student_prompt(t)
            if reason:
                rejects.add(where, t.id, reason)
                continue
            rec = {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}],
                   "id": t.id, "source": t.source, "set": p.set}  # fmt: skip
            if "cues" in extra:
                rec["cues"] = extra["cues"]
            records.append(rec)

    unanswered = report_missing({"teacher": missing}, settings, log)
    write_jsonl(smk.output.rejects, rejects)
    write_jsonl(smk.output.shard, records)
    metrics = {"set": p.set, "shard": shard, "tasks": len(mine), "records": len(records), "rejected": len(rejects),
               "reject_reasons": rejects.counts(), "missing": sum(unanswered.values()), "llm": totals.as_dict()}  # fmt: skip
    write_json(smk.output.metrics, metrics)
    log(f"{len(records)} records, {len(rejects)} rejected {rejects.counts()}")
    log(f"LLM: {totals.requests_sent} requests sent online, {totals.batch_requests} in {totals.batches} batch(es), "
        f"{totals.from_cache} from cache, {totals.retries} retries, {totals.rate_limited} answered 429, "
        f"{totals.failed} failed ({totals.missing} unanswered), {totals.prompt_tokens} prompt + "
        f"{totals.completion_tokens} completion tokens, ${totals.cost_usd:.4f}")  # fmt: skip
    for r in rejects:
        log(f"  rejected {r['id']}: {r['reason']}")


run_script(main, snakemake)  # noqa: F821
