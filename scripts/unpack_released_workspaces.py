"""Rule unpack_released_workspaces: RL/data.zip of the release -> results/data/released/rl/workspaces/<data>/
<workspace_id>/ (the layout the RL rows name), refusing members that would land outside it. A local copy that
was already unzipped (RL/data/) is linked in instead of copied."""

from pathlib import Path

from darecipe.io import InputError, atomic_dir
from darecipe.released import check_layout, copy_workspaces, unpack_workspaces
from darecipe.runlog import run_script


def main(smk, log):
    root = Path(smk.params.root)
    check_layout(root)
    archive, unpacked = root / "RL" / "data.zip", root / "RL" / "data"
    with atomic_dir(smk.output[0]) as tmp:
        if archive.is_file():
            stats = unpack_workspaces(archive, Path(tmp))
        elif unpacked.is_dir():
            log(f"{archive} absent; using the unpacked {unpacked}")
            stats = copy_workspaces(unpacked, Path(tmp))
        else:
            raise InputError(f"{archive}: missing (the RL workspaces of the release; nor is {unpacked} there)")
    log(f"{stats['files']} files; workspaces per folder: {stats['workspaces']}")


run_script(main, globals().get("snakemake"))
