"""The embedded default, run for real from a clean copy of the repository (Snakemake + ms-swift on CPU)."""

import json
import shutil

import pytest
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from darecipe.tags import TAGS

from conftest import job_counts, snakemake

pytestmark = pytest.mark.pipeline

EVERY_JOB = {
    "build_tiny_model", "extend_vocab", "seed_stage1", "seed_interaction", "seed_rl", "stage3_dataset",
    "train_stage1", "train_stage2", "train_stage3", "stage3_checkpoint",
}  # fmt: skip


def test_fresh_dry_run_lists_every_job(demo_run):
    assert set(job_counts(demo_run["fresh_dry_run"])) == EVERY_JOB


def test_stage3_checkpoint_loads_and_encodes_each_tag_as_one_token(demo_run):
    ckpt = demo_run["dir"] / "results/checkpoints/stage3"
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    tok = AutoTokenizer.from_pretrained(ckpt)
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    for tag in TAGS:
        ids = tok.encode(tag, add_special_tokens=False)
        assert len(ids) == 1, tag
        assert tok.decode(ids, skip_special_tokens=False) == tag


def test_every_checkpoint_has_metrics(demo_run):
    for stage in ("stage1", "stage2", "stage3"):
        metrics = json.loads((demo_run["dir"] / f"results/checkpoints/{stage}/metrics.json").read_text())
        assert metrics["global_step"] >= 1
        assert len(metrics["curve"]) == metrics["global_step"]
        assert all("loss" in point for point in metrics["curve"])
        assert metrics["run_key"] and metrics["wall_seconds_this_attempt"] > 0
    stage3 = json.loads((demo_run["dir"] / "results/checkpoints/stage3/metrics.json").read_text())
    per_step = stage3["rollouts"]["per_step"]
    assert [s["step"] for s in per_step] == list(range(1, stage3["global_step"] + 1))
    assert all(s["rollouts"] > 0 and s["reward_mean"] is not None for s in per_step)


def test_training_logs_say_fresh_or_resumed_first(demo_run):
    for rule in ("train_stage1", "train_stage2", "train_stage3"):
        head = "\n".join((demo_run["dir"] / f"logs/{rule}.log").read_text().splitlines()[:3])
        assert "started fresh" in head or "resumed from step" in head


def test_nothing_to_do_after_the_run(demo_run):
    proc = snakemake(demo_run["dir"], "-n", "stage3_checkpoint")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_stage2_lr_reruns_exactly_stage2_and_after(demo_run, tmp_path):
    work = demo_run["dir"]
    cfg = yaml.safe_load((work / "config/config.yaml").read_text())
    cfg["stage2"]["learning_rate"] = cfg["stage2"]["learning_rate"] * 2
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "-n", "stage3_checkpoint", "--configfile", str(changed))
    assert set(job_counts(proc.stdout)) == {"train_stage2", "train_stage3", "stage3_checkpoint"}
    assert "params have changed since last execution" in proc.stdout


def test_changing_the_seed_interaction_data_reruns_its_consumers(demo_run, tmp_path):
    work = demo_run["dir"]
    seed = work / "resources/seed/interaction.jsonl"
    backup = tmp_path / "interaction.jsonl"
    shutil.copy2(seed, backup)
    try:
        seed.write_text(seed.read_text().replace("Analyze which teaching method", "Analyse which teaching method"))
        proc = snakemake(work, "-n", "stage3_checkpoint")
        assert set(job_counts(proc.stdout)) == {"seed_interaction", "train_stage2", "train_stage3", "stage3_checkpoint"}
    finally:
        shutil.copy2(backup, seed)
