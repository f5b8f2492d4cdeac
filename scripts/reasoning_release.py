"""Rule reasoning_release: the stage-1 sets under the released names, `<set>_<record count>.json` (docs/recipe.md §3)."""

from pathlib import Path

from darecipe.io import atomic_dir
from darecipe.mix import read_set, write_json_array
from darecipe.runlog import run_script


def main(smk, log):
    with atomic_dir(smk.output[0]) as tmp:
        for path in map(Path, smk.input.sets):
            n = read_set(path).num_rows
            write_json_array(path, Path(tmp) / f"{path.stem}_{n}.json")
            log(f"{path.stem}_{n}.json")


run_script(main, globals().get("snakemake"))
