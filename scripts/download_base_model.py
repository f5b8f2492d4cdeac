"""Rule download_base_model: the one place that fetches weights from a hub (never a training job)."""

from darecipe.io import atomic_dir
from darecipe.runlog import run_script


def main(smk, log):
    from huggingface_hub import snapshot_download

    log(f"downloading {smk.params.hub_id} (revision {smk.params.revision or 'default branch'})")
    with atomic_dir(smk.output[0]) as tmp:
        snapshot_download(repo_id=smk.params.hub_id, revision=smk.params.revision, local_dir=str(tmp))
    log(f"saved to {smk.output[0]}")


run_script(main, snakemake)  # noqa: F821
