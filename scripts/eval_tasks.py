"""Rule eval_tasks: the fixed held-out lists -> results/eval/tasks.jsonl, checked disjoint from every training set.

A held-out task found in a training file (same id, or its normalised question inside a training prompt) stops the
rule with one line naming the training file and record: evaluation on it would measure memorisation."""

from pathlib import Path

from darecipe.evaluation import load_heldout, overlaps
from darecipe.io import InputError, Rejects, write_json, write_jsonl
from darecipe.runlog import run_script


def main(smk, log):
    rejects = Rejects()
    tasks, notes = load_heldout(smk.params.cfg, rejects)
    for n in notes:
        log(n)
    if rejects:
        log(f"rejected {len(rejects)} held-out records: {rejects.counts()}")
    records = [t.to_json() for t in tasks]
    training = [Path(p) for p in smk.input.training]
    found = overlaps(records, training)
    write_json(
        smk.output.check,
        {
            "tasks": len(records),
            "training_files": [str(p) for p in training],
            "overlaps": found,
            "notes": notes,
            "rejected": list(rejects),
        },
    )
    if found:
        raise InputError(f"held-out tasks overlap the training data ({len(found)} found), first: {found[0]}")
    by_source = {}
    for r in records:
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1
    write_jsonl(smk.output.tasks, records)
    log(f"{len(records)} held-out tasks {by_source}, disjoint from {len(training)} training files")


run_script(main, globals().get("snakemake"))
