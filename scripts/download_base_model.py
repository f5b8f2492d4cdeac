"""Rule download_base_model: the one place that fetches weights from a hub (never a training job); the log has the
revision it got and every file's sha256."""

from pathlib import Path

from darecipe.fetch import fetch_hub
from darecipe.io import atomic_dir
from darecipe.runlog import run_script


def main(smk, log):
    with atomic_dir(smk.output[0]) as tmp:
        fetch_hub(smk.params.hub_id, smk.params.revision, Path(tmp), repo_type="model")
    log(f"saved to {smk.output[0]}")


run_script(main, globals().get("snakemake"))
