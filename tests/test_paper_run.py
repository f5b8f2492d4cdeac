"""The paper run is the tested run: config/deepanalyze-8b.yaml plus config/test/paper-cpu.yaml (hardware, size,
endpoint and base-model keys only) runs to stage 3 through Snakemake, ms-swift, the sandbox and the judge, with the
teacher and the judge answered over HTTP by the project's test server (recorded teacher responses)."""

import json
import os

import pytest
import yaml
from conftest import REPO, copy_repo, discard, job_counts, snakemake

from darecipe import training
from darecipe.testserver import FakeOpenAI, recorded_reply

OVERLAY = REPO / "config/test/paper-cpu.yaml"
STAGES = ("stage1", "stage2", "stage3")

# Every key the overlay may set, and why changing it does not change the recipe.
ALLOWED = {
    "base_model.source": "the base model: a tiny random model instead of the 8B download",
    "base_model.path": "where the tiny model is built",
    "base_model.tiny.tokenizer": "the tiny model carries the paper model's tokenizer (stand-in)",
    "base_model.tiny.eos_bias": "the tiny random model ends its turns at once (short CPU rollouts)",
    "llm.base_url": "endpoint: where the teacher answers, not which teacher",
    "judge.base_url": "endpoint: where the judge answers, not which judge",
    "stage1_data.shards": "jobs per synthesised set, not records",
    "stage1_data.wikitq.limit": "record limit",
    "stage1_data.finqa.limit": "record limit",
    "stage1_data.tatqa.limit": "record limit",
    "stage1_data.tablegpt_tables": "record limit",
    "synthesis.sft_per_workspace": "record limit",
    "synthesis.rl_per_workspace": "record limit",
    "synthesis.sqlite_dirs.bird.databases": "record limit (which BIRD databases become workspaces)",
    "synthesis.sqlite_dirs.bird.path": "data location: a local copy instead of the download",
    "stage1_data.wikitq.tsv": "data location",
    "stage1_data.wikitq.root": "data location",
    "stage1_data.finqa.path": "data location",
    "stage1_data.tatqa.path": "data location",
    **{
        f"stage1_data.extra_sets.{name}.{k}": "data location: a local copy in the messages format"
        for name in ("SKGInstruct", "math", "code", "science", "instruction_following", "other")
        for k in ("path", "format")
    },
    **{
        f"{s}.{k}": "hardware"
        for s in STAGES
        for k in (
            "gpus",
            "torch_dtype",
            "deepspeed",
            "attn_impl",
            "use_liger_kernel",
            "use_vllm",
            "dataloader_num_workers",
        )
    },
    **{f"{s}.packing": "packing needs FlashAttention (a GPU)" for s in ("stage1", "stage2")},
    **{
        f"{s}.{k}": "size"
        for s in STAGES
        for k in ("per_device_train_batch_size", "gradient_accumulation_steps", "max_steps")
    },
}


def leaf_keys(d: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in d.items():
        path = f"{prefix}{k}"
        keys |= leaf_keys(v, path + ".") if isinstance(v, dict) and v else {path}
    return keys


def test_the_overlay_changes_only_hardware_and_size_keys():
    overlay = yaml.safe_load(OVERLAY.read_text())
    extra = sorted(leaf_keys(overlay) - set(ALLOWED))
    assert not extra, f"{OVERLAY.name} changes recipe keys: {extra}"
    paper = yaml.safe_load((REPO / "config/deepanalyze-8b.yaml").read_text())
    assert paper["judge"]["backend"] == "openai"
    # every supplied set the paper names gets a local copy (a missing one would leave the paper's download in place)
    assert set(overlay["stage1_data"]["extra_sets"]) == set(paper["stage1_data"]["extra_sets"])
    assert paper["stage1_data"].get("mix", {}).get("ratios") is None  # every stage-1 record kept


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    work = copy_repo(tmp_path_factory.mktemp("paper"))
    with FakeOpenAI(reply=recorded_reply(str(REPO / "resources/recordings"))) as server:
        endpoints = work / "endpoints.yaml"
        endpoints.write_text(
            yaml.safe_dump({"llm": {"base_url": server.base_url}, "judge": {"base_url": server.base_url}})
        )
        assert leaf_keys(yaml.safe_load(endpoints.read_text())) <= set(ALLOWED)
        args = [
            "--replace-workflow-config",
            "--configfile",
            "config/deepanalyze-8b.yaml",
            "config/test/paper-cpu.yaml",
            str(endpoints),
        ]
        os.environ.setdefault("OPENAI_API_KEY", "sk-test-not-a-real-key")
        dry = snakemake(work, "-n", "stage3_checkpoint", *args)
        run = snakemake(work, "--cores", "2", "stage3_checkpoint", *args, timeout=2400)
        bodies = list(server.bodies)
    yield {"dir": work, "dry": dry.stdout, "run": run.stdout + run.stderr, "bodies": bodies}
    discard(work)


def test_the_paper_config_runs_to_stage3(paper_run):
    work = paper_run["dir"]
    counts = job_counts(paper_run["dry"])
    assert counts["train_stage3"] == 1 and counts["stage1_synth"] == 7 * 2
    assert not [rule for rule in counts if rule.startswith("download")]  # everything is local
    for stage in STAGES:
        assert (work / f"results/checkpoints/{stage}/config.json").is_file()


def test_finished_paper_runs_keep_their_saves_weights_not_their_resume_state(paper_run):
    work = paper_run["dir"]
    for stage in STAGES:
        (output,) = (work / "results/runs" / stage).glob("*/output")
        saved, partial = training.saves(output)
        assert saved and not partial, stage
        for ckpt in saved:
            assert not list(ckpt.glob("optimizer.pt")) and not list(ckpt.glob("rng_state*.pth")), ckpt
        exported = work / f"results/checkpoints/{stage}/model.safetensors"
        assert exported.stat().st_ino == (saved[-1] / "model.safetensors").stat().st_ino, stage
        assert "of optimizer/scheduler/RNG state" in (work / f"logs/train_{stage}.log").read_text(), stage


def test_the_paper_template_and_tags(paper_run):
    work = paper_run["dir"]
    fmt = json.loads((work / "results/checkpoints/stage3/chat_format.json").read_text())
    assert (fmt["model_type"], fmt["template"], fmt["chat_template"]) == ("qwen3", "deepseek_r1", "own")
    tags = json.loads((work / "results/checkpoints/vocab/tags.json").read_text())
    assert tags["<Analyze>"] == 151671 and tags["</Code>"] == 151676  # the ids the release reports
    for stage in STAGES:
        command = next((work / "results/runs" / stage).glob("*/command.sh")).read_text()
        assert "--template deepseek_r1" in command and "--model_type qwen3" in command
        if stage != "stage3":
            assert "--save_total_limit 3" in command and "--dataset_num_proc 8" in command


def test_every_stage1_record_is_kept(paper_run):
    work = paper_run["dir"]
    stats = json.loads((work / "results/data/stage1/stats.json").read_text())
    released = sum(len(json.loads(p.read_text())) for p in (work / "results/data/reasoning").glob("*.json"))
    assert stats["records"] + stats["dropped_over_length"] == released > 0
    assert stats["ratios"] is None


def test_stage3_runs_with_the_papers_turns_lengths_and_judge(paper_run):
    work = paper_run["dir"]
    log = (work / "logs/train_stage3.log").read_text()
    assert "judge gpt-4.1 (openai" in log  # on, with the paper's judge model
    assert any(
        m["content"].startswith("Reply with the JSON") for b in paper_run["bodies"] for m in b.get("messages", [])
    )
    command = next((work / "results/runs/stage3").glob("*/command.sh")).read_text()
    for flag in (
        "--max_turns 30",
        "--num_generations 5",
        "--max_completion_length 8192",
        "--temperature 1.0",
        "--beta 0.0",
        "--max_length 8000",
        "--learning_rate 5e-07",
    ):
        assert flag in command, flag
    rollouts = [json.loads(line) for line in next((work / "results/runs/stage3").glob("*/rollouts.jsonl")).open()]
    assert len(rollouts) == 5
    # the random model ends every turn at once: no code, so each turn gets the failed observation and the
    # episode goes on to the paper's 30 turns; without <Analyze>/<Answer> the format gate gives -1
    assert all(r["num_turns"] == 30 and r["no_code_turns"] == 29 and r["reward"] == -1.0 for r in rollouts)
    assert all(r["judge_identity"]["model"] == "gpt-4.1" for r in rollouts)
