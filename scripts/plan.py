"""Rule plan: print GPUs × hours and cost per training stage, and write results/plan.json."""

from darecipe.io import write_json
from darecipe.plan import plan, table
from darecipe.runlog import run_script


def main(smk, log):
    p = plan(smk.config)
    write_json(smk.params.out, p)
    print(table(p), flush=True)
    log(table(p))


run_script(main, globals().get("snakemake"))
