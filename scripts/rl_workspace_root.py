"""Rule rl_workspace_root (data.source both): one workspace root whose <data>/ folders are links to this pipeline's
RL workspaces and to the released ones, so every RL row finds root/<data>/<workspace_id>/ (nothing is copied)."""

import os
from pathlib import Path

from darecipe.io import InputError, atomic_dir
from darecipe.runlog import run_script


def main(smk, log):
    seen = {}
    with atomic_dir(smk.output[0]) as tmp:
        for origin in (smk.input.own, smk.input.released):
            for folder in sorted(p for p in Path(origin).iterdir() if p.is_dir() and not p.name.startswith(".")):
                if folder.name in seen:
                    raise InputError(
                        f"workspace folder {folder.name!r} is in both {seen[folder.name]} and {origin}: "
                        "rename the synthesis workspace"
                    )
                seen[folder.name] = origin
                os.symlink(folder.resolve(), Path(tmp) / folder.name, target_is_directory=True)
    log(f"{len(seen)} workspace folders: {', '.join(f'{k} ({v})' for k, v in seen.items())}")


run_script(main, globals().get("snakemake"))
