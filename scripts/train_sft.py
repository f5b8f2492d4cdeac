"""Rules train_stage1 / train_stage2: `swift sft` in a resumable run directory, then an atomic export."""

from pathlib import Path

from darecipe import training
from darecipe.chat import read_format
from darecipe.io import InputError
from darecipe.runlog import run_script
from darecipe.swift_args import sft_args


def main(smk, log):
    hp = dict(smk.params.hp)
    data = [Path(p) for p in smk.input.data if Path(p).stat().st_size > 0]  # empty categories add nothing
    if not data:
        raise InputError(f"{smk.params.stage}: every training file is empty: {', '.join(smk.input.data)}")
    log(f"{smk.params.stage}: training files: {', '.join(str(p) for p in data)}")
    stage = training.Stage(
        name=smk.params.stage,
        command="sft",
        base=Path(smk.input.model),
        data=data,
        params=hp,
        out=Path(smk.output[0]),
        runs_root=Path(smk.params.runs_root),
        log=Path(smk.log[0]),
        keep_resume_state=smk.config["runs"]["keep_resume_state"],
    )
    chat = read_format(stage.base)
    metrics = training.run(
        stage,
        lambda out_dir: sft_args(hp, stage.base, data, out_dir, mask_execute=smk.params.mask_execute, chat=chat),
        nproc=max(1, hp["gpus"]),
    )
    log(f"exported {smk.output[0]} at step {metrics['global_step']}")


run_script(main, globals().get("snakemake"))
