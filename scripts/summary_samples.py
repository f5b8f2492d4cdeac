"""Rule summary_samples: the configured trace files and the pipeline's own trajectories -> traces in multi-turn
form and per-step samples (one splitter, configured by tag family); unusable traces are rejects with the reason."""

from pathlib import Path

from darecipe.io import InputError, Rejects, read_jsonl, read_text, write_json, write_jsonl
from darecipe.runlog import run_script
from darecipe.summary import (
    TagFamily,
    TraceError,
    multiturn_record,
    samples_from_multiturn,
    trace_from_messages,
    traces_from_chat_text,
)


def read_traces(sources, pipeline_family, trajectories, families):
    """(trace or (id, error), where) for every configured trace file, then every pipeline trajectory."""
    for k, src in enumerate(sources):
        where = f"summary.traces[{k}]"
        if src["family"] not in families:
            raise InputError(f"{where}.family: unknown tag family {src['family']!r} (known: {', '.join(families)})")
        path = Path(src["path"])
        name = src.get("name") or path.stem
        if src["format"] == "chat_text":
            found = traces_from_chat_text(read_text(path), name, src["family"])
            if not found:
                raise InputError(f"{path}: no <|im_start|> blocks: not chat-template text ({where}.format)")
            yield from ((t, f"{path}: rollout {i + 1}") for i, t in enumerate(found))
        else:
            yield from _jsonl(path, name, src["family"])
    if pipeline_family:
        if pipeline_family not in families:
            raise InputError(f"summary.pipeline_trajectories: unknown tag family {pipeline_family!r}")
        for path in map(Path, trajectories):
            yield from _jsonl(path, path.name.removesuffix(".jsonl"), pipeline_family)


def _jsonl(path, name, family):
    for lineno, rec in read_jsonl(path):
        where = f"{path}:{lineno}"
        trace_id = str(rec.get("id") or f"{name}-{lineno}")
        try:
            yield trace_from_messages(rec, trace_id, name, family), where
        except TraceError as e:
            yield (trace_id, e), where


def main(smk, log):
    families = TagFamily.from_config(smk.params.families)
    traces = read_traces(smk.params.traces, smk.params.pipeline_family, smk.input.trajectories, families)
    rejects, multiturn, samples, seen = Rejects(), [], [], set()
    for item, where in traces:
        if isinstance(item, tuple):
            rejects.add(where, item[0], str(item[1]))
            continue
        if item.id in seen:
            rejects.add(where, item.id, "duplicate trace id: an earlier trace has the same id")
            continue
        seen.add(item.id)
        try:
            rec = multiturn_record(item, families[item.family])
        except TraceError as e:
            rejects.add(where, item.id, str(e))
            continue
        multiturn.append(rec)
        samples += samples_from_multiturn(rec, families[item.family])
    write_jsonl(smk.output.rejects, rejects)
    write_jsonl(smk.output.multiturn, multiturn)
    write_jsonl(smk.output.samples, samples)
    by_family = {f: sum(r["family"] == f for r in multiturn) for f in families}
    write_json(
        smk.output.metrics,
        {
            "traces": len(multiturn),
            "samples": len(samples),
            "rejected": len(rejects),
            "reject_reasons": rejects.counts(),
            "traces_by_family": by_family,
        },
    )
    log(f"{len(multiturn)} traces ({by_family}) -> {len(samples)} samples; {len(rejects)} rejected {rejects.counts()}")
    for r in rejects:
        log(f"  rejected {r['id']} ({r['where']}): {r['reason']}")


run_script(main, globals().get("snakemake"))
