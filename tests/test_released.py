"""The released DataScience-Instruct-500K as training data: reading and validation of each stage's files, and the
pipeline run on a copy in the released layout (misspelled names, data.zip without research/mondial_geo) to stage 3
with no teacher request."""

import json
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import copy_repo, job_counts, snakemake
from released_fixture import MISSING, PER_FILE, build_released

from darecipe.io import InputError
from darecipe.released import (
    check_layout,
    interaction_file,
    normalise_rl_row,
    reasoning_file,
    released_records,
    rl_file,
    to_messages,
    unpack_workspaces,
)
from darecipe.sets import CATEGORIES, STAGE1_SETS, released_total
from darecipe.testserver import FakeOpenAI


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return build_released(tmp_path_factory.mktemp("release") / "DataScience-Instruct-500K")


def test_the_registry_knows_the_release_counts():
    assert released_total() == {"stage1": 421_060, "stage2": 26_202}  # docs/recipe.md §3, §4
    assert len(STAGE1_SETS) == 13 and len(CATEGORIES) == 12


def test_files_are_found_under_the_release_spellings(release):
    assert reasoning_file(release, "file_csv") == (release / "reasoning" / f"file_csv_{PER_FILE}.json", PER_FILE)
    assert interaction_file(release, "data_pipeline")[0].parent.name == "interation"
    assert rl_file(release, "research").name == "reseach.parquet"


def test_a_datasets_arrow_export_is_refused_with_the_reason(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "data-00000-of-00001.arrow").write_bytes(b"")
    with pytest.raises(InputError, match="one split whose records do not say their stage"):
        check_layout(tmp_path)


def test_ms_swift_record_formats_become_messages():
    assert to_messages({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}) == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
    ]
    assert to_messages({"query": "q", "response": "a", "history": [["q0", "a0"]]})[0] == {
        "role": "user",
        "content": "q0",
    }
    assert to_messages({"instruction": "do", "input": "x", "output": "y"})[0]["content"] == "do\n\nx"
    assert to_messages({"text": "x"}).startswith("no messages")
    assert "unknown role" in to_messages({"messages": [{"role": "narrator", "content": "x"}]})


def _write(path: Path, records) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def test_bad_records_are_rejects_naming_the_record(tmp_path):
    good = {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "<Analyze>a</Analyze><Answer>1</Answer>"},
        ]
    }
    unbalanced = {
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<Analyze>a<Answer>1</Answer>"}]
    }
    no_user = {"messages": [{"role": "assistant", "content": "a"}]}
    path = _write(tmp_path / "math_3.json", [good, unbalanced, no_user])
    records, rejects, read = released_records(path, "math", 3, "set", False, True)
    assert read == 3 and [r["provenance"] for r in records] == ["released"]
    assert [(r["where"], r["reason"].split(":")[0]) for r in rejects] == [
        (f"{path}:record 1", "malformed tags"),
        (f"{path}:record 2", "no user message"),
    ]


def test_stage2_trajectories_need_their_tags(tmp_path):
    no_execute = {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "<Analyze>a</Analyze><Code>x</Code><Answer>1</Answer>"},
        ]
    }
    plain = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "just text"}]}
    path = _write(tmp_path / "data_cleaning_2.json", [no_execute, plain])
    records, rejects, _ = released_records(path, "data_cleaning", 2, "category", True, True)
    assert not records
    assert "<Code> block not followed by <Execute>" in rejects[0]["reason"]
    assert "0 <Answer> blocks" in rejects[1]["reason"]


def test_a_count_that_differs_from_the_file_name_stops_or_warns(tmp_path, caplog):
    rec = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    path = _write(tmp_path / "code_20000.json", [rec])
    with pytest.raises(InputError, match=r"code_20000.json: 1 records, the file name says 20000"):
        released_records(path, "code", 20000, "set", False, True)
    with caplog.at_level("WARNING"):
        records, _, _ = released_records(path, "code", 20000, "set", False, False)
    assert len(records) == 1 and "code_20000.json: 1 records, the file name says 20000" in caplog.text


def test_rl_rows_need_their_workspace_and_a_known_method(tmp_path):
    (tmp_path / "files" / "f1").mkdir(parents=True)
    row = {
        "prompt": [{"role": "user", "content": "# Instruction\nsum"}],
        "reward_spec": {"method": "datatask", "ground_truth": "6", "function": ["llm_as_judgement_accuracy"]},
        "data": "files",
        "workspace_id": "f1",
        "input_seq": "sum",
    }
    norm, reason = normalise_rl_row(row, tmp_path, {})
    assert reason is None and norm["reward_spec"]["function"] == "llm_as_judgement_accuracy"
    assert (
        normalise_rl_row({**row, "workspace_id": "f2"}, tmp_path, {})[1]
        == "workspace missing: files/f2 is not in RL/data.zip"
    )
    assert normalise_rl_row({**row, "data": "research"}, tmp_path, {"research": "files"})[0]["data"] == "files"
    assert "leaves the workspace root" in normalise_rl_row({**row, "workspace_id": ".."}, tmp_path, {})[1]
    assert "is not one of" in normalise_rl_row({**row, "reward_spec": {"method": "guess"}}, tmp_path, {})[1]
    assert (
        normalise_rl_row({**row, "reward_spec": {"method": "qa"}}, tmp_path, {})[1]
        == "a qa task without reward_spec.ground_truth"
    )
    assert normalise_rl_row({**row, "workspace_id": ""}, tmp_path, {})[0]["data"] == "_no_workspace"


def test_an_archive_member_outside_the_root_stops_the_unpacking(tmp_path):
    arc = tmp_path / "data.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("data/files/f1/a.csv", "x\n1\n")
        zf.writestr("../../evil.txt", "x")
    with pytest.raises(InputError, match="would be written outside"):
        unpack_workspaces(arc, tmp_path / "out")
    assert not (tmp_path.parent / "evil.txt").exists()


def test_the_released_layout_trains_to_stage3_with_no_teacher_request(release, scratch):
    """Acceptance: stage 1/2/3 train on released records, the missing workspace's rows are counted rejects naming
    the rows, and no request reaches the teacher (a real endpoint here, counting what it receives)."""
    work = copy_repo(scratch / "released-run")
    with FakeOpenAI() as teacher:
        overlay = work / "released.yaml"
        overlay.write_text(
            json.dumps(
                {
                    "data": {"source": "released", "released": {"path": str(release)}},
                    "llm": {
                        "backend": "openai",
                        "model": "teacher",
                        "base_url": teacher.base_url,
                        "api_key_env": "DARECIPE_TEST_KEY",
                    },
                    "stage1_data": {"mix": {"ratios": None}},
                    # the released layout is under test, not learning: two optimizer steps per training stage
                    **{stage: {"max_steps": 2, "save_steps": 2} for stage in ("stage1", "stage2", "stage3")},
                }
            )
        )
        dry = snakemake(work, "-n", "stage3_checkpoint", "--configfile", "config/config.yaml", str(overlay))
        counts = job_counts(dry.stdout)
        assert counts["released_stage1_set"] == 13 and counts["released_interaction"] == 12
        assert counts["unpack_released_workspaces"] == counts["released_rl_sets"] == 1
        assert not {"stage1_synth", "synth_shard", "synth_category", "stage1_extra_set"} & set(counts)
        snakemake(work, "--cores", "2", "stage3_checkpoint", "--configfile", "config/config.yaml", str(overlay))
        assert teacher.requests == 0

    stage1 = [json.loads(line) for line in (work / "results/data/stage1/train.jsonl").read_text().splitlines()]
    assert len(stage1) == 13 * PER_FILE and {r["provenance"] for r in stage1} == {"released"}
    stage2 = [json.loads(line) for line in (work / "results/data/stage2/train.jsonl").read_text().splitlines()]
    assert len(stage2) == 12 * PER_FILE and {r["provenance"] for r in stage2} == {"released"}
    rl = [json.loads(line) for line in (work / "results/data/rl/swift_train.jsonl").read_text().splitlines()]
    assert len(rl) == 5 and {(r["data"], r["workspace_id"]) for r in rl} >= {("research", "european_football_2")}
    assert pq.read_table(work / "results/data/released/rl/research.parquet").num_rows == 1

    rejects = [json.loads(line) for line in (work / "results/data/released/rl/rejects.jsonl").read_text().splitlines()]
    assert [(r["where"].rsplit("/", 1)[-1], r["id"]) for r in rejects] == [
        ("reseach.parquet:row 1", "mondial_geo"),
        ("reseach.parquet:row 2", "mondial_geo"),
    ]
    assert all(r["reason"] == f"workspace missing: {'/'.join(MISSING)} is not in RL/data.zip" for r in rejects)
    metrics = json.loads((work / "results/data/released/rl/metrics.json").read_text())
    assert metrics["rejected"] == 2 and metrics["sets"]["research"] == {
        "file": str(release / "RL/reseach.parquet"),
        "read": 3,
        "tasks": 1,
    }
    log = (work / "logs/released_rl_sets.log").read_text()
    assert "reseach.parquet:row 1 (mondial_geo): workspace missing" in log

    for stage in ("stage1", "stage2", "stage3"):
        m = json.loads((work / f"results/checkpoints/{stage}/metrics.json").read_text())
        assert m["global_step"] >= 1, stage
    assert not (work / "results/data/synthesis").exists() and not (work / "results/cache").exists()


def test_both_concatenates_released_and_own_sets_per_stage_with_provenance(release, scratch):
    work = copy_repo(scratch / "both-run")
    overlay = work / "both.yaml"
    overlay.write_text(json.dumps({"data": {"source": "both", "released": {"path": str(release)}}}))
    args = ("--configfile", "config/config.yaml", str(overlay))
    # stage 1: the mix takes this pipeline's sets and the released ones (names in the dry run's job listing)
    dry = snakemake(work, "-n", "-F", "results/data/stage1/train.jsonl", *args).stdout
    mix_inputs = next(b for b in dry.split("\n\n") if "rule stage1_mix:" in b)
    assert "results/data/stage1/sets/TableQA_distillation.arrow" in mix_inputs
    assert "results/data/stage1/released/TableQA_distillation.arrow" in mix_inputs
    # stages 2 and 3, run: one file each with both origins, and one workspace root for every RL row
    targets = ["results/data/stage2/train.jsonl", "results/data/rl/swift_train.jsonl", "results/data/rl/workspace_root"]
    snakemake(work, "--cores", "2", *targets, *args)

    def provenance(path):
        out = {}
        for line in (work / path).read_text().splitlines():
            p = json.loads(line)["provenance"]
            out[p] = out.get(p, 0) + 1
        return out

    stage2 = provenance(targets[0])
    assert stage2["released"] == 12 * PER_FILE and stage2["synthesised"] > 0
    assert set(provenance(targets[1])) == {"released", "synthesised"}
    root = work / targets[2]
    for line in (work / targets[1]).read_text().splitlines():
        row = json.loads(line)
        assert (root / row["data"] / row["workspace_id"]).is_dir(), row
