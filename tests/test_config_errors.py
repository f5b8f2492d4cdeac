"""Acceptance: config errors stop before any job with one line naming the key or the file."""

import pytest
import yaml
from conftest import copy_repo, snakemake

CASES = [
    ({"stage2": {"lr": 0.1}}, "unknown key stage2.lr"),
    ({"stage1": {"learning_rate": "fast"}}, "stage1.learning_rate: 'fast' is not of type 'number'"),
    (
        {"stage1_data": {"file_tasks": "resources/seed/missing.jsonl"}},
        "stage1_data.file_tasks: input file resources/seed/missing.jsonl does not exist",
    ),
    ({"stage3": {"backend": "verl"}}, "stage3.backend: 'verl' is not one of ['swift', 'skyrl']"),
    (
        {"base_model": {"source": "local", "path": "nowhere/model"}},
        "base_model.path: nowhere/model is not an HF checkpoint",
    ),
    ({"sandbox": {"timeout_s": 0}}, "sandbox.timeout_s: 0 is less than or equal to the minimum of 0"),
    (
        {"synthesis": {"workspaces": {"simpson": ["nowhere/Simpson.csv"]}}},
        "synthesis.workspaces.simpson: input file resources/data/nowhere/Simpson.csv does not exist",
    ),
    (
        {"synthesis": {"categories": {"data_analysis": ["nope"]}}},
        "synthesis.categories.data_analysis: unknown workspace 'nope'",
    ),
    (
        {"synthesis": {"categories": {"data_analysis": ["bird:*"]}}},
        "synthesis.categories.data_analysis: 'bird:*' names no synthesis.sqlite_dirs entry",
    ),
    (
        {"synthesis": {"sqlite_dirs": {"bird": {"path": "resources/data/bird-not-here"}}}},
        "synthesis.sqlite_dirs.bird: resources/data/bird-not-here does not exist yet; list its databases",
    ),
    # set names come from the one registry (darecipe.sets)
    (
        {"stage1_data": {"extra_sets": {"maths": "resources/examples/stage1/math.jsonl"}}},
        "stage1_data.extra_sets: 'maths' is not one of ['SKGInstruct', 'math', 'code'",
    ),
    ({"data": {"source": "release"}}, "data.source: 'release' is not one of ['synthesised', 'released', 'both']"),
    (
        {"data": {"source": "released", "released": {"path": "nowhere/DataScience-Instruct-500K"}}},
        "data.released.path: directory nowhere/DataScience-Instruct-500K does not exist",
    ),
    ({"sources": {"wikitq": {"revision": "abc"}}}, "sources.wikitq: needs hub_id (with revision) or url"),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("cfg"))


@pytest.mark.parametrize("overlay,message", CASES, ids=[m.split(":")[0] for _, m in CASES])
def test_config_error_is_one_line_and_no_job_runs(workdir, overlay, message):
    bad = workdir / "bad.yaml"
    bad.write_text(yaml.safe_dump(overlay))
    proc = snakemake(workdir, "stage3_checkpoint", "--cores", "1", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Configuration error:")]
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert "bad.yaml" in lines[0]
    assert not (workdir / "results").exists() and not (workdir / "logs").exists()
