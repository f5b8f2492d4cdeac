"""A rule script runs by hand, outside Snakemake, on its job's inputs (darecipe.debug): the same output as the job."""

import subprocess
import sys

from conftest import copy_run


def run_by_hand(work, script, *args):
    return subprocess.run(
        [sys.executable, f"scripts/{script}", *args], cwd=work, capture_output=True, text=True, timeout=600
    )


def test_script_by_hand_remakes_the_jobs_output(demo_run, tmp_path):
    work = copy_run(demo_run["dir"], tmp_path / "run")
    # one rule without wildcards, one whose wildcards come from the target path
    for script, target in [
        ("stage1_mix.py", "results/data/stage1/train.jsonl"),
        ("stage1_synth.py", "results/data/stage1/shards/TableGPT/1.jsonl"),
    ]:
        made_by_snakemake = (work / target).read_bytes()
        (work / target).unlink()
        proc = run_by_hand(work, script, target)
        assert proc.returncode == 0, proc.stderr
        assert (work / target).read_bytes() == made_by_snakemake
        assert "records" in proc.stderr  # the rule's log, echoed


def test_script_by_hand_says_what_is_wrong(demo_run, tmp_path):
    work = copy_run(demo_run["dir"], tmp_path / "run")
    wrong_script = run_by_hand(work, "stage1_synth.py", "results/data/stage1/train.jsonl")
    assert wrong_script.returncode == 1
    assert wrong_script.stderr.strip() == (
        "error: results/data/stage1/train.jsonl is made by rule stage1_mix, whose script is "
        "../scripts/stage1_mix.py, not stage1_synth.py"
    )
    no_rule = run_by_hand(work, "stage1_mix.py", "results/nothing.txt")
    assert no_rule.stderr.strip() == "error: results/nothing.txt: no rule of Snakefile makes this file"
    (work / "results/data/stage1/sets/math.arrow").unlink()
    missing = run_by_hand(work, "stage1_mix.py", "results/data/stage1/train.jsonl")
    assert missing.returncode == 1
    assert "rule stage1_mix needs 1 input file(s) that do not exist yet, first results/data/stage1/sets/math.arrow" in (
        missing.stderr
    )
