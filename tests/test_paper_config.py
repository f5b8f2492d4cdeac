"""The paper configuration on its own: the whole recipe's DAG at the paper's scale, no demo value leaking in; and the
paper run from the released data (config/deepanalyze-8b-released.yaml), with no synthesis at all."""

import yaml
from conftest import REPO, job_counts, snakemake

from darecipe.sets import CATEGORIES, STAGE1_SETS

PAPER = ("--configfile", "config/deepanalyze-8b.yaml")


def _dry(*configfiles: str) -> dict[str, int]:
    proc = snakemake(REPO, "-n", "stage3_checkpoint", *configfiles, "--replace-workflow-config", "--forceall")
    return job_counts(proc.stdout)


def test_paper_config_alone_builds_the_full_dag():
    counts = _dry(*PAPER)
    assert counts["download_base_model"] == 1 and "build_tiny_model" not in counts
    assert counts["stage1_synth"] == 7 * 64  # the 7 synthesised sets x stage1_data.shards
    # the raw sources of stage 1 and the BIRD databases, each fetched by its download rule
    assert counts["download_source"] == 6
    # SKGInstruct and the five AM-DeepSeek-R1-0528-Distilled subsets, not the demo's two example files
    assert counts["stage1_extra_set"] == 6
    assert (
        counts["synth_category"] == 12
        and counts["train_stage1"] == counts["train_stage2"] == counts["train_stage3"] == 1
    )


def test_synthesis_at_paper_scale_is_hundreds_of_jobs_listed_before_anything_runs():
    cfg = yaml.safe_load((REPO / "config/deepanalyze-8b.yaml").read_text())["synthesis"]
    counts = _dry(*PAPER)
    # 69 BIRD databases become workspaces by rule, next to the 4 shipped ones
    assert counts["synth_workspace"] == 4 + len(cfg["sqlite_dirs"]["bird"]["databases"])
    pairs = sum(
        len(v) - 1 + len(cfg["sqlite_dirs"]["bird"]["databases"]) if "bird:*" in v else len(v)
        for v in cfg["categories"].values()
    )
    per_pair = -(-(cfg["sft_per_workspace"] + cfg["rl_per_workspace"]) // cfg["tasks_per_job"])
    assert counts["synth_shard"] == pairs * per_pair >= 100
    assert pairs * cfg["sft_per_workspace"] >= 26_202  # trajectories asked, at least what the release kept


def test_the_released_data_paper_run_downloads_unpacks_and_trains_without_synthesis():
    counts = _dry(*PAPER, "config/deepanalyze-8b-released.yaml")
    assert counts["download_released"] == counts["unpack_released_workspaces"] == counts["released_rl_sets"] == 1
    assert counts["released_stage1_set"] == len(STAGE1_SETS) and counts["released_interaction"] == len(CATEGORIES)
    assert counts["train_stage1"] == counts["train_stage2"] == counts["train_stage3"] == 1
    assert not {"stage1_synth", "stage1_tasks", "synth_shard", "download_source", "stage1_extra_set"} & set(counts)
