"""Rule synth_workspace: a named workspace built from the shipped data (CSV/XLSX variants generated), or one
database of a folder of SQLite files (BIRD / Spider layout), checked."""

from pathlib import Path

from darecipe.io import atomic_dir
from darecipe.loaders import database_workspace_files
from darecipe.runlog import run_script
from darecipe.synthesis import build_workspace


def main(smk, log):
    name, spec = smk.wildcards.workspace, smk.params.spec
    root = Path(spec["root"])
    files, repair = list(spec["files"]), ()
    if spec["database"]:
        files = database_workspace_files(root, spec["database"], spec["descriptions"])
        repair = tuple(files[1:])  # BIRD's column descriptions: documentation, some with stray non-UTF-8 bytes
    with atomic_dir(smk.output[0]) as tmp:
        made = build_workspace(name, files, root, Path(tmp), repair)
    log(f"workspace {name}: {', '.join(p.name for p in made)}")


run_script(main, globals().get("snakemake"))
