"""Acceptance (issue 18): every file or folder the config names is checked before any job runs, with one line naming
the key and the path; numbers that YAML 1.1 reads as strings (`1e-4`) are taken as numbers for every number-typed
key."""

import copy
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_repo, snakemake

from darecipe.config import ConfigError, _resolve, check_paths, load_schema, named_paths, validate_config

CASES = [
    (
        {"domain_lora": {"data": "nowhere/finance_qa.jsonl"}},
        "domain_lora.data: input file nowhere/finance_qa.jsonl does not exist",
    ),
    (
        {"summary": {"traces": [{"path": "nowhere/case.txt", "family": "search"}]}},
        "summary.traces[0].path: input file nowhere/case.txt does not exist",
    ),
    ({"summary": {"prompt": "config/prompts"}}, "summary.prompt: config/prompts is a directory, not a file"),
    (
        {"summary": {"base": "nowhere/model"}},
        "summary.base: nowhere/model is neither vocab, stage1, stage2, stage3 nor an HF",
    ),
    ({"eval": {"heldout": "nowhere/heldout.jsonl"}}, "eval.heldout: input file nowhere/heldout.jsonl does not exist"),
    (
        {"eval": {"file_tasks": "nowhere/file_tasks.jsonl"}},
        "eval.file_tasks: input file nowhere/file_tasks.jsonl does not exist",
    ),
    (
        {"eval": {"wikitq": {"tagged": "nowhere/x.tagged"}}},
        "eval.wikitq.tagged: input file nowhere/x.tagged does not exist",
    ),
    (
        {"eval": {"dabstep": {"context_dir": "nowhere/context"}}},
        "eval.dabstep.context_dir: directory nowhere/context does not exist",
    ),
    ({"eval": {"data_root": "README.md"}}, "eval.data_root: README.md is a file, not a directory"),
    (
        {"judge": {"prompts": {"qa": "config/prompts/judge_qa.v9.txt"}}},
        "judge.prompts.qa: input file config/prompts/judge_qa.v9.txt does not exist",
    ),
    (
        {"judge": {"backend": "replay", "recordings": "nowhere/recordings"}},
        "judge.recordings: directory nowhere/recordings does not exist",
    ),
    ({"stage1_data": {"cues": "empty.txt"}}, "stage1_data.cues: input file empty.txt is empty"),
    (
        {"stage1_data": {"extra_sets": {"math": {"path": "nowhere/math.jsonl", "format": "am_distilled"}}}},
        "stage1_data.extra_sets.math.path: input file nowhere/math.jsonl does not exist",
    ),
    (
        {"stage1_data": {"prompts": {"distill": "nowhere/distill.txt"}}},
        "stage1_data.prompts.distill: input file nowhere/distill.txt",
    ),
    (
        {"summary": {"traces": [{"path": "resources/data/search_r1_traces/case.txt", "family": "serch"}]}},
        "summary.traces[0].family: unknown tag family 'serch' (summary.tag_families has search, deepanalyze)",
    ),
    (
        {"summary": {"pipeline_trajectories": "deep_analyze"}},
        "summary.pipeline_trajectories: unknown tag family 'deep_analyze'",
    ),
    (
        {"summary": {"traces": [], "pipeline_trajectories": None}},
        "summary.traces is empty and summary.pipeline_trajectories is null",
    ),
    # a workspace file generated as a variant: the source, and a SQLite source's table, are required
    (
        {"synthesis": {"workspaces": {"w": [{"name": "x.csv"}]}}},
        "synthesis.workspaces.w.0: 'from' is a required property",
    ),
    (
        {"synthesis": {"workspaces": {"w": [{"name": "Invoice.csv", "from": "chinook/Chinook_Sqlite.sqlite"}]}}},
        "synthesis.workspaces.w.0: 'table' is a required property",
    ),
    (
        {
            "synthesis": {
                "workspaces": {
                    "w": [{"name": "Invoice.txt", "from": "chinook/Chinook_Sqlite.sqlite", "table": "Invoice"}]
                }
            }
        },
        "synthesis.workspaces.w.0.name: 'Invoice.txt' does not match",
    ),
    # a list where a mapping is expected, and the other way round
    ({"stage1": [{"learning_rate": 1.0e-4}]}, "stage1: [{'learning_rate': 0.0001}] is not of type 'object'"),
    (
        {"summary": {"traces": {"path": "case.txt", "family": "search"}}},
        "summary.traces: {'family': 'search', 'path': 'case.txt'} is not of type 'array'",
    ),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = copy_repo(tmp_path_factory.mktemp("paths"))
    (work / "empty.txt").write_text("")
    return work


def _one_error_line(workdir: Path, overlay_text: str) -> str:
    (workdir / "bad.yaml").write_text(overlay_text)
    proc = snakemake(workdir, "-n", "all", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr  # a dry run logs to stdout
    lines = [line for line in output.splitlines() if line.startswith("Configuration error:")]
    assert len(lines) == 1, output
    assert not (workdir / "results").exists() and not (workdir / "logs").exists()
    return lines[0]


@pytest.mark.parametrize("overlay,message", CASES, ids=[m.split(":")[0] for _, m in CASES])
def test_a_bad_path_is_one_line_before_any_job(workdir, overlay, message):
    line = _one_error_line(workdir, yaml.safe_dump(overlay))
    assert message in line
    assert "bad.yaml" in line


def test_numbers_written_the_yaml_1_1_way_reach_the_rules_as_numbers(workdir, tmp_path):
    """`1e-4` is a string to PyYAML (YAML 1.1 floats need a dot); the dry run takes it as the number, and a real rule
    (`plan`, which formats the numbers it is given) gets numbers."""
    overlay = (
        "stage1:\n  learning_rate: 1e-4\n  max_steps: 1e1\nsummary:\n  phases:\n"
        "    - {dataset: multiturn, learning_rate: 5e-6}\nplan:\n  price_per_gpu_hour: 3.5e1\n  hours: {stage1: 1e1}\n"
    )
    assert isinstance(yaml.safe_load(overlay)["stage1"]["learning_rate"], str)
    (workdir / "numbers.yaml").write_text(overlay)
    snakemake(workdir, "-n", "all", "--configfile", "numbers.yaml")
    line = _one_error_line(workdir, "stage1:\n  max_steps: 1.5e1\n  learning_rate: fast\n")
    assert "stage1.learning_rate: 'fast' is not of type 'number'" in line

    import json

    run = copy_repo(tmp_path)
    (run / "numbers.yaml").write_text(overlay)
    snakemake(run, "--cores", "1", "plan", "--configfile", "numbers.yaml")
    plan = json.loads((run / "results/plan.json").read_text())
    assert plan["price_per_gpu_hour"] == 35.0
    assert next(s for s in plan["stages"] if s["stage"] == "stage1")["hours"] == 10.0


def test_config_files_checked_by_hand_name_a_yaml_syntax_error(workdir):
    """Snakemake 9 says only "Config file is not valid JSON or YAML" (no file, no line); `python -m darecipe.config`
    runs the checks of a Snakemake run on the files and names file, line and column."""
    import subprocess
    import sys

    def check(*files):
        proc = subprocess.run(
            [sys.executable, "-m", "darecipe.config", *files], cwd=workdir, capture_output=True, text=True
        )
        return proc.returncode, (proc.stdout + proc.stderr).strip()

    (workdir / "broken.yaml").write_text("stage1:\n  learning_rate: 1e-4\nstage2: {max_steps: 3\n")
    (workdir / "empty.yaml").write_text("")
    (workdir / "missing.yaml").write_text("domain_lora: {data: nowhere/finance_qa.jsonl}\n")
    (workdir / "fine.yaml").write_text("stage1:\n  learning_rate: 1e-4\n")
    assert check("config/config.yaml", "broken.yaml") == (
        1,
        "Configuration error: broken.yaml:4:1: not valid YAML (expected ',' or '}', but got '<stream end>')",
    )
    assert check("config/config.yaml", "empty.yaml") == (
        1,
        "Configuration error: empty.yaml: must hold keys at the top level, not an empty file",
    )
    assert check("config/config.yaml", "missing.yaml") == (
        1,
        "Configuration error: config/config.yaml + missing.yaml: domain_lora.data: input file nowhere/finance_qa.jsonl does not exist",
    )
    assert check("config/config.yaml", "fine.yaml") == (0, "config/config.yaml + fine.yaml: no configuration error")


@pytest.fixture(scope="module")
def schema():
    return load_schema(REPO / "config/schema.yaml")


def _filled(schema, text: str = "{}") -> dict:
    return validate_config(yaml.safe_load(text), schema)


def _as_strings(value):
    """Every number of a config written as PyYAML hands over `1e-4`: a string."""
    if isinstance(value, dict):
        return {k: _as_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_strings(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:e}"
    return value


@pytest.mark.parametrize("config_file", ["config/config.yaml", "config/deepanalyze-8b.yaml"])
def test_every_number_typed_key_takes_a_number_written_as_a_string(schema, config_file):
    """Systematic: every number of the filled config (training stages, summary phases, plan tokens, limits...) is
    written back as an e-notation string, and validation gives the same numbers back."""
    filled = _filled(schema, (REPO / config_file).read_text())
    numbers = _as_strings(copy.deepcopy(filled))
    assert numbers != filled
    assert validate_config(numbers, schema) == filled


def test_numbers_as_strings_inside_lists_maps_and_one_of(schema):
    cfg = _filled(
        schema,
        """
stage1_data: {extra_sets: {math: {path: resources/examples/stage1/math.jsonl, limit: 1e3}}}
plan: {teacher: {tokens: {distill: [1e3, 5]}}}
llm: {limits: {requests_per_min: 3e3}, sampling: {temperature: 7e-1, max_tokens: 4e3, seed: 3}}
""",
    )
    assert cfg["stage1_data"]["extra_sets"]["math"]["limit"] == 1000
    assert cfg["plan"]["teacher"]["tokens"]["distill"] == [1000, 5]
    assert cfg["llm"]["limits"]["requests_per_min"] == 3000.0
    assert cfg["llm"]["sampling"] == {"temperature": 0.7, "max_tokens": 4000, "seed": 3}
    for bad, message in [
        ("stage1: {max_steps: 1.5e0}", "stage1.max_steps: '1.5e0' is not of type 'integer'"),
        ("stage1: {learning_rate: 1e-4x}", "stage1.learning_rate: '1e-4x' is not of type 'number'"),
        ("stage1: {learning_rate: -1e-4}", "stage1.learning_rate: -0.0001 is less than or equal"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
            _filled(schema, bad)


# Keys with a path default that check_paths handles in code (they depend on other settings) or that name outputs.
PATHS_IN_CODE = {"base_model.path", "llm.recordings", "judge.recordings", "data.released.download_dir", "llm.cache_dir"}


def test_every_key_whose_default_is_a_path_is_checked(schema):
    """Systematic: a schema key whose default names a file or folder of the repository (or a path under one) is
    marked `x-path` (checked before any job), or listed above as checked in code or as an output."""
    unmarked = []

    def walk(node, key):
        if not isinstance(node, dict):
            return
        node = _resolve(node, schema)
        default = node.get("default")
        if isinstance(default, str) and "/" in default and "x-path" not in node and key not in PATHS_IN_CODE:
            unmarked.append(key)
        for sub in (*node.get("allOf", ()), *node.get("oneOf", ())):
            walk(sub, key)
        for k, v in (node.get("properties") or {}).items():
            walk(v, f"{key}.{k}" if key else k)
        for child in ("additionalProperties", "items"):
            walk(node.get(child), f"{key}.*")

    walk(schema, "")
    assert unmarked == ["data.released.hub_id"]  # a hub repository id, not a path


def test_named_paths_cover_the_embedded_default(schema):
    cfg = _filled(schema, (REPO / "config/config.yaml").read_text())
    named = {key: (kind, path) for key, kind, path in named_paths(cfg, schema)}
    assert named["summary.traces[0].path"] == ("file", cfg["summary"]["traces"][0]["path"])
    assert named["domain_lora.data"] == ("file", cfg["domain_lora"]["data"])
    assert named["eval.dabstep.tasks"][0] == "file" and named["eval.data_root"] == ("dir", "resources/data")
    assert {k for k in named if k.startswith("stage1_data.prompts.")} == {
        f"stage1_data.prompts.{n}" for n in cfg["stage1_data"]["prompts"]
    }
    assert {k for k in named if k.startswith("judge.prompts.")} == {
        "judge.prompts.qa",
        "judge.prompts.datatask",
        "judge.prompts.openresearch",
    }
    assert "eval.dabstep.context_dir" not in named  # null: not set
    # every named path of the embedded default exists (run from the repository root, as Snakemake does)
    import os

    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        check_paths(cfg, schema)
    finally:
        os.chdir(cwd)
