"""Rule summary_llm: one teacher summary per sample through the LLM layer (cache first, retries, many requests in
flight, or as batch jobs with `llm.mode: batch`). A summary whose reply cannot be read, or whose key facts are not
quoted verbatim from the sample's results, is rejected with the reason and counted; a request left unanswered
(transport, limits, server) is reported missing instead (`llm.on_missing`) and asked again by a rerun."""

import dataclasses
from pathlib import Path

from darecipe.io import Rejects, read_jsonl, write_json, write_jsonl
from darecipe.llm import LLMRequest, LLMSettings, ResponseCache, report_missing, run_requests
from darecipe.prompts import load_template
from darecipe.runlog import run_script
from darecipe.serving import local_teacher
from darecipe.summary import SummaryError, check_quotes, parse_summary_reply, summary_messages, with_summary_record


def main(smk, log):
    samples = [rec for _, rec in read_jsonl(smk.input.samples)]
    tpl = load_template(smk.input.template)
    settings = dataclasses.replace(LLMSettings.from_config(smk.config["llm"]), max_in_flight=smk.params.max_in_flight)
    log(
        f"{len(samples)} samples to summarise, teacher {settings.model} ({settings.backend}), "
        f"{settings.max_in_flight} in flight"
    )
    cache = ResponseCache(Path(smk.config["llm"]["cache_dir"]) / "summary" / "summaries.jsonl")
    try:
        requests = [LLMRequest(s["id"], summary_messages(tpl, s)) for s in samples]
        with local_teacher(settings, Path(f"{smk.log[0]}.teacher"), serve=settings.mode == "online") as teacher:
            results, totals = run_requests(teacher, requests, cache, batch_ok=True)
    finally:
        cache.close()

    rejects, records, missing = Rejects(), [], []
    quotes = {"facts_checked": 0, "summaries_rejected": 0}
    for sample, res in zip(samples, results):
        if res.error and res.retryable:
            missing.append(res)
            continue
        try:
            if res.error:
                raise SummaryError(res.error)
            summary = parse_summary_reply(res.text)
            quotes["facts_checked"] += len(summary.key_facts)
            reason = check_quotes(summary, sample["results"], smk.params.min_quote_chars)
            if reason:
                quotes["summaries_rejected"] += reason.startswith("quote not in the results")
                raise SummaryError(reason)
        except SummaryError as e:
            rejects.add(f"summary of {sample['trace_id']} step {sample['step']}", sample["id"], str(e))
            continue
        records.append(with_summary_record(sample, summary))

    unanswered = report_missing({"summary": missing}, settings)
    write_jsonl(smk.output.rejects, rejects)
    write_jsonl(smk.output.records, records)
    write_json(
        smk.output.metrics,
        {
            "samples": len(samples),
            "records": len(records),
            "rejected": len(rejects),
            "reject_reasons": rejects.counts(),
            "missing": sum(unanswered.values()),
            "quotes": quotes,
            "llm": totals.as_dict(),
        },
    )
    log(f"{len(records)} summaries kept, {len(rejects)} rejected {rejects.counts()}")
    checked, failed = quotes["facts_checked"], quotes["summaries_rejected"]
    log(f"{checked} quoted facts checked; {failed} summaries quoted text not in the results")
    log(f"LLM totals (requests, cache hits, retries, failures, tokens, cost): {totals.as_dict()}")
    for r in rejects:
        log(f"  rejected {r['id']}: {r['reason']}")


run_script(main, globals().get("snakemake"))
