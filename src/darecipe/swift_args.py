"""ms-swift command lines for the three training stages, built from config values (pure, tested).

Flag names are ms-swift 4.6's (`--tuner_type`, not 3.x's `--train_type`). The model type and template come from
the base checkpoint's chat format (`darecipe.chat`), never from a constant: DeepSeek-R1-0528-Qwen3-8B is a `qwen3`
model with the `deepseek_r1` template, SmolLM2 a `llama` model with `chatml`.
"""

from __future__ import annotations

from pathlib import Path

from .chat import ChatFormat

PLUGIN = Path(__file__).with_name("swift_plugin.py")

COMMON_FIXED = [
    # DeepAnalyze generates with an empty response prefix (no empty <think> block in front of every turn),
    # so training must not insert Qwen3's empty think block either: the model sees the same context in both.
    "--response_prefix",
    "",
    "--add_non_thinking_prefix",
    "false",
    "--tuner_type",
    "full",
    "--check_model",
    "false",
    "--report_to",
    "none",
    "--logging_steps",
    "1",
    "--eval_strategy",
    "no",
    "--split_dataset_ratio",
    "0",
    "--add_version",
    "false",
    "--save_only_model",
    "false",
    # SIGTERM / SIGINT / SIGUSR1 / SIGUSR2 (SLURM's warning before the time limit): save at the end of the step, stop.
    "--callbacks",
    "graceful_exit",
]


def _training_args(hp: dict) -> list[str]:
    args = [
        "--num_train_epochs",
        str(hp["num_train_epochs"]),
        "--max_steps",
        str(hp["max_steps"]),
        "--learning_rate",
        str(hp["learning_rate"]),
        "--per_device_train_batch_size",
        str(hp["per_device_train_batch_size"]),
        "--gradient_accumulation_steps",
        str(hp["gradient_accumulation_steps"]),
        "--max_length",
        str(hp["max_length"]),
        "--warmup_ratio",
        str(hp["warmup_ratio"]),
        "--lr_scheduler_type",
        hp["lr_scheduler_type"],
        "--save_steps",
        str(hp["save_steps"]),
        "--save_strategy",
        "steps",
        "--torch_dtype",
        hp["torch_dtype"],
        "--seed",
        str(hp["seed"]),
        "--data_seed",
        str(hp["seed"]),
        "--dataloader_num_workers",
        str(hp["dataloader_num_workers"]),
        "--dataset_num_proc",
        str(hp["dataset_num_proc"]),
        "--gradient_checkpointing",
        str(hp["gradient_checkpointing"]).lower(),
    ]
    if hp.get("save_total_limit"):
        args += ["--save_total_limit", str(hp["save_total_limit"])]
    if hp.get("deepspeed"):
        args += ["--deepspeed", hp["deepspeed"]]
    if hp.get("attn_impl"):
        args += ["--attn_impl", hp["attn_impl"]]
    if hp.get("use_liger_kernel"):
        args += ["--use_liger_kernel", "true"]
    return args


def _fixed(hp: dict, chat: ChatFormat) -> list[str]:
    """The fixed flags, with LoRA in place of full fine-tuning when the stage has a `lora_rank` (domain LoRA)."""
    fixed = chat.swift_args() + COMMON_FIXED
    if "lora_rank" not in hp:
        return fixed
    fixed[fixed.index("--tuner_type") + 1] = "lora"
    fixed += [
        "--lora_rank",
        str(hp["lora_rank"]),
        "--lora_alpha",
        str(hp["lora_alpha"]),
        "--lora_dropout",
        str(hp["lora_dropout"]),
        "--target_modules",
        *hp["target_modules"],
    ]
    if hp["modules_to_save"]:
        fixed += ["--modules_to_save", *hp["modules_to_save"]]
    return fixed


def sft_args(
    hp: dict, model: Path, datasets: list[Path], output_dir: Path, mask_execute: bool, chat: ChatFormat
) -> list[str]:
    """`swift sft` arguments. `mask_execute` adds the loss-scale plugin (stage 2)."""
    args = ["--model", str(model), "--dataset", *map(str, datasets), "--output_dir", str(output_dir)]
    args += _fixed(hp, chat) + _training_args(hp)
    if hp.get("packing"):
        args += ["--packing", "true"]
    if mask_execute:
        args += ["--external_plugins", str(PLUGIN), "--loss_scale", "default+deepanalyze"]
    return args + list(hp.get("extra_args", []))


def grpo_args(hp: dict, model: Path, dataset: Path, output_dir: Path, chat: ChatFormat) -> list[str]:
    """`swift rlhf --rlhf_type grpo` arguments: multi-turn, stop at </Code>, reward at the end."""
    args = ["--rlhf_type", "grpo", "--model", str(model), "--dataset", str(dataset), "--output_dir", str(output_dir)]
    args += chat.swift_args() + COMMON_FIXED + _training_args(hp)
    args += [
        "--external_plugins",
        str(PLUGIN),
        "--reward_funcs",
        "deepanalyze_reward",
        "--multi_turn_scheduler",
        "deepanalyze",
        "--max_turns",
        str(hp["max_turns"]),
        "--stop_words",
        "</Code>",
        "--num_generations",
        str(hp["num_generations"]),
        "--max_completion_length",
        str(hp["max_completion_length"]),
        "--temperature",
        str(hp["temperature"]),
        "--top_p",
        str(hp["top_p"]),
        "--beta",
        str(hp["beta"]),
        "--log_completions",
        "true",
        "--use_vllm",
        str(hp["use_vllm"]).lower(),
    ]
    if hp["use_vllm"]:
        args += [
            "--vllm_mode",
            hp["vllm_mode"],
            "--vllm_gpu_memory_utilization",
            str(hp["vllm_gpu_memory_utilization"]),
            # prompt + every turn + every observation of one trajectory: the episode ends (reward 0) only there
            "--vllm_max_model_len",
            str(hp["max_trajectory_length"]),
        ]
    return args + list(hp.get("extra_args", []))


def export_args(adapter: Path, base: Path, output_dir: Path) -> list[str]:
    """`swift export` arguments merging LoRA adapters into their base (the model type and template come from the
    adapter's own args.json, written by the training run)."""
    return ["--adapters", str(adapter), "--model", str(base), "--merge_lora", "true", "--output_dir", str(output_dir)]
