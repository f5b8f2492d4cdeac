"""Rule synth_workspace: a named workspace built from the shipped data (CSV/XLSX variants generated), checked."""

from pathlib import Path

from darecipe.io import atomic_dir
from darecipe.runlog import run_script
from darecipe.synthesis import build_workspace


def main(smk, log):
    name = smk.wildcards.workspace
    with atomic_dir(smk.output[0]) as tmp:
        made = build_workspace(name, smk.params.files, Path(smk.params.data_root), Path(tmp))
    log(f"workspace {name}: {', '.join(p.name for p in made)}")


run_script(main, snakemake)  # noqa: F821
