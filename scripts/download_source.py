"""Rules download_source / download_released: one fetch (hub revision or URL) into the output folder, atomically;
the log lists the source, the resolved revision and every file's sha256."""

from pathlib import Path

from darecipe.fetch import fetch
from darecipe.io import atomic_dir
from darecipe.runlog import run_script


def main(smk, log):
    spec = dict(smk.params.spec)
    if spec.get("license"):
        log(f"licence: {spec['license']} (keep its notice when you redistribute what you build from it)")
    with atomic_dir(smk.output[0]) as tmp:
        sums = fetch(spec, Path(tmp))
    log(f"{len(sums)} files saved to {smk.output[0]}")


run_script(main, globals().get("snakemake"))
