"""A rule script runs by hand, outside Snakemake, on its job's inputs (darecipe.debug): the same output as the job."""

import subprocess
import sys

import yaml
from conftest import REPO, copy_run

from darecipe.config import load_schema, validate_config
from darecipe.debug import mock_snakemake


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


def test_config_files_merge_or_replace_as_in_snakemake(tmp_path, monkeypatch):
    """--configfile merges over config/config.yaml; --replace-workflow-config (the SLURM profile's way) uses the
    file alone, so a key it leaves out takes the schema's default, not the demo's value."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"stage1": {"max_length": 4096}}))
    monkeypatch.chdir(REPO)
    merged = mock_snakemake("results/data/stage1/train.jsonl", [str(overlay)])
    replaced = mock_snakemake("results/data/stage1/train.jsonl", [str(overlay)], replace_config=True)
    assert merged.params.max_tokens == replaced.params.max_tokens == 4096
    demo = float(yaml.safe_load((REPO / "config/config.yaml").read_text())["stage1"]["learning_rate"])
    defaults: dict = {}
    validate_config(defaults, load_schema(REPO / "config/schema.yaml"), "defaults")
    default = defaults["stage1"]["learning_rate"]
    assert demo != default
    assert merged.config["stage1"]["learning_rate"] == demo
    assert replaced.config["stage1"]["learning_rate"] == default
