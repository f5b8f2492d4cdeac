"""Rule released_interaction: interation/<category>_<N>.json of the release (sic) -> results/data/released/
interaction/<category>.jsonl (+ rejects and metrics): every trajectory checked (schema, tags balanced and ordered,
every <Code> followed by its <Execute>, one final <Answer>), the count checked against N."""

from pathlib import Path

from darecipe.io import write_json, write_jsonl
from darecipe.released import interaction_file, released_records
from darecipe.runlog import run_script


def main(smk, log):
    category = smk.wildcards.category
    path, expected = interaction_file(Path(smk.params.root), category)
    records, rejects, read = released_records(path, category, expected, "category", True, smk.params.strict)
    write_jsonl(smk.output.records, records)
    write_jsonl(smk.output.rejects, rejects)
    write_json(
        smk.output.metrics,
        {
            "category": f"released:{category}",
            "file": str(path),
            "read": read,
            "accepted": len(records),
            "rejected": len(rejects),
            "reject_reasons": rejects.counts(),
        },
    )
    log(
        f"released {category}: {len(records)} of {read} trajectories from {path}, {len(rejects)} rejected "
        f"{rejects.counts()}"
    )
    for r in rejects[:50]:
        log(f"  rejected {r['id']} ({r['where']}): {r['reason']}")


run_script(main, globals().get("snakemake"))
