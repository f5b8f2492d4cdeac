"""The paper configuration on its own: the whole recipe's DAG at the paper's scale, no demo value leaking in."""

from conftest import REPO, job_counts, snakemake


def test_paper_config_alone_builds_the_full_dag():
    proc = snakemake(REPO, "-n", "stage3_checkpoint", "--configfile", "config/deepanalyze-8b.yaml",
                     "--replace-workflow-config", "--forceall")  # fmt: skip
    counts = job_counts(proc.stdout)
    assert counts["download_base_model"] == 1 and "build_tiny_model" not in counts
    assert counts["stage1_distill"] == counts["stage1_refine"] == 64  # stage1_data.shards
    assert counts["synth_category"] == 12 and "stage1_extra_set" not in counts  # no demo example sets
    assert counts["train_stage1"] == counts["train_stage2"] == counts["train_stage3"] == 1
