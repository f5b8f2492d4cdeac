"""Rule stage1_synth: one shard of one synthesised stage-1 set, made by its kind (darecipe.stage1.KINDS).

Requests go through the LLM layer (cache first, so a rerun after a kill repeats no completed request; online or,
with `llm.mode: batch`, as batch jobs); each reply is checked and becomes a record or a reject with the reason.
A request left unanswered (transport, limits, server) is no reject: the rule fails with the count
(`llm.on_missing`) and a rerun asks exactly those. Output order is the task order."""

import tempfile
from pathlib import Path

from darecipe.io import Rejects, read_jsonl, write_json, write_jsonl
from darecipe.llm import LLMRequest, LLMSettings, ResponseCache, report_missing, run_requests, sort_failure
from darecipe.loaders import TaskRecord
from darecipe.mix import set_records
from darecipe.prompts import load_template
from darecipe.runlog import run_script
from darecipe.sandbox import SandboxLimits, describe_isolation
from darecipe.serving import local_teacher
from darecipe.sets import STAGE1_SETS, SYNTHESIS_KINDS
from darecipe.stage1 import KINDS, Request, SynthContext, kind_tasks, read_cues


def main(smk, log):
    p = smk.params
    set_name, shard, n_shards = smk.wildcards.set, int(smk.wildcards.shard), p.shards
    kind, needs = KINDS[p.kind], SYNTHESIS_KINDS[p.kind]
    tasks = kind_tasks(p.kind, set_name, [TaskRecord.from_json(rec) for _, rec in read_jsonl(smk.input.tasks)])
    mine = [t for i, t in enumerate(tasks) if i % n_shards == shard]
    settings = LLMSettings.from_config(smk.config["llm"])
    limits = SandboxLimits(**p.sandbox) if needs.needs_sandbox else None
    if limits:
        log(describe_isolation(limits))  # first: how the teacher's code will be isolated, or that it cannot be
    log(
        f"{set_name} ({p.kind}) shard {shard}/{n_shards}: {len(mine)} tasks, teacher {settings.model} "
        f"({settings.backend}, {settings.mode})"
    )

    rejects = Rejects()
    where = f"{set_name} shard {shard}"
    with tempfile.TemporaryDirectory(prefix="stage1-") as tmp:
        ctx = SynthContext(
            template=load_template(smk.input.template),
            set_name=set_name,
            data_root=Path(p.data_root),
            workdir=Path(tmp),
            rel_tol=p.rel_tol,
            seed=p.seed,
            n_cues=p.n_cues,
            cues=read_cues(smk.input.cues) if needs.needs_cues else [],
            refines={r["id"]: r for r in set_records(smk.input.refines)} if STAGE1_SETS[set_name].refines else None,
            limits=limits,
        )
        jobs: list[Request] = []  # in task order
        for t in mine:
            req = kind.prepare(t, ctx)
            if isinstance(req, str):
                rejects.add(where, t.id, req)
            else:
                jobs.append(req)

        cache = ResponseCache(Path(smk.config["llm"]["cache_dir"]) / set_name / f"{shard}.jsonl")
        serve = settings.mode == "online"  # in batch mode a local teacher runs as `vllm run-batch` instead
        try:
            with local_teacher(settings, Path(f"{smk.log[0]}.teacher"), serve=serve) as teacher:
                results, totals = run_requests(
                    teacher, [LLMRequest(r.task.id, r.messages) for r in jobs], cache, batch_ok=True
                )
        finally:
            cache.close()

        records, missing = [], []
        for req, res in zip(jobs, results):
            t = req.task
            if res.error:
                sort_failure(res, where, t.id, missing, rejects)
                continue
            user, reply, reason = kind.accept(res.text, req, ctx)
            if reason:
                rejects.add(where, t.id, reason)
                continue
            rec = {
                "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}],
                "id": t.id,
                "source": t.source,
                "set": set_name,
            }
            if "cues" in req.extra:
                rec["cues"] = req.extra["cues"]
            records.append(rec)

    unanswered = report_missing({"teacher": missing}, settings)
    write_jsonl(smk.output.rejects, rejects)
    write_jsonl(smk.output.shard, records)
    metrics = {
        "set": set_name,
        "shard": shard,
        "tasks": len(mine),
        "records": len(records),
        "rejected": len(rejects),
        "reject_reasons": rejects.counts(),
        "missing": sum(unanswered.values()),
        "llm": totals.as_dict(),
    }
    write_json(smk.output.metrics, metrics)
    log(f"{len(records)} records, {len(rejects)} rejected {rejects.counts()}")
    log(
        f"LLM: {totals.requests_sent} requests sent online, {totals.batch_requests} in {totals.batches} batch(es), "
        f"{totals.from_cache} from cache, {totals.retries} retries, {totals.rate_limited} answered 429, "
        f"{totals.failed} failed ({totals.missing} unanswered), {totals.prompt_tokens} prompt + "
        f"{totals.completion_tokens} completion tokens, ${totals.cost_usd:.4f}"
    )
    for r in rejects:
        log(f"  rejected {r['id']}: {r['reason']}")


run_script(main, globals().get("snakemake"))
