"""The stage-3 commands rendered from config/deepanalyze-8b.yaml carry every stage-3 value of docs/recipe.md §7
(golden files; regenerate with DARECIPE_UPDATE_GOLDEN=1 after a deliberate change)."""

import os
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from darecipe.chat import resolve_format
from darecipe.config import load_schema, validate_config
from darecipe.stage3 import stage3_command

GOLDEN = Path(__file__).with_name("golden")
# </Code> and EOS on DeepSeek-R1-0528-Qwen3-8B's vocabulary (the release's own values; the pipeline reads them from
# tags.json and the tokenizer)
STOP_IDS = [151676, 151645]


def render(backend: str) -> str:
    cfg = validate_config(
        yaml.safe_load((REPO / "config/deepanalyze-8b.yaml").read_text()), load_schema(REPO / "config/schema.yaml")
    )
    argv = stage3_command(
        backend,
        {**cfg["stage3"], "backend": backend},
        Path("MODEL"),
        Path("DATA.jsonl"),
        [Path("qa.parquet"), Path("datatask.parquet"), Path("research.parquet")],
        Path("OUT"),
        STOP_IDS,
        {"workspace_root": "WORKSPACES", "sandbox": cfg["sandbox"]},
        resolve_format(cfg["base_model"], Path(cfg["base_model"]["path"])),
    )
    from darecipe.swift_args import PLUGIN

    return "\n".join(["PYTHON", *(a.replace(str(PLUGIN.parent), "SRC") for a in argv[1:])]) + "\n"


@pytest.mark.parametrize("backend", ["swift", "skyrl"])
def test_command_matches_golden_file(backend):
    got = render(backend)
    path = GOLDEN / f"stage3_{backend}_paper.txt"
    if os.environ.get("DARECIPE_UPDATE_GOLDEN"):
        path.write_text(got)
    assert got == path.read_text()


def test_swift_command_carries_recipe_values():
    lines = render("swift").splitlines()
    args = dict(zip(lines, lines[1:]))
    assert args["--learning_rate"] == "5e-07" and args["--num_generations"] == "5" and args["--max_turns"] == "30"
    assert args["--beta"] == "0.0" and args["--max_length"] == "8000" and float(args["--temperature"]) > 0
    assert args["--stop_words"] == "</Code>" and args["--use_vllm"] == "true" and args["--num_train_epochs"] == "1"
    assert "--nproc_per_node=8" in lines


def test_skyrl_command_carries_recipe_values():
    over = dict(line.split("=", 1) for line in render("skyrl").splitlines()[3:])
    assert over["trainer.policy.optimizer_config.lr"] == "5e-07"
    assert over["generator.n_samples_per_prompt"] == "5" and over["generator.max_turns"] == "30"
    assert over["trainer.train_batch_size"] == over["trainer.policy_mini_batch_size"] == "256"
    assert over["trainer.algorithm.use_kl_loss"] == "false" and over["trainer.strategy"] == "fsdp2"
    assert over["generator.max_input_length"] == "32768" and over["trainer.max_prompt_length"] == "8000"
    assert over["generator.backend"] == "vllm" and float(over["generator.sampling_params.temperature"]) > 0
    assert over["+generator.sampling_params.stop_token_ids"] == "[151676,151645]"
    assert over["environment.env_class"] == "deepanalyze" and over["trainer.epochs"] == "1"
