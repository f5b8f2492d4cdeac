"""The stage-3 training command for either backend, from one config (tested against golden files)."""

from __future__ import annotations

import sys
from pathlib import Path

from .chat import ChatFormat
from .skyrl_args import skyrl_overrides
from .swift_args import grpo_args
from .training import launch_argv


def stage3_command(
    backend: str,
    hp: dict,
    model: Path,
    dataset: Path,
    rl_parquets: list[Path],
    output_dir: Path,
    stop_token_ids: list[int],
    env: dict,
    chat: ChatFormat,
) -> list[str]:
    if backend == "swift":
        return launch_argv("rlhf", grpo_args(hp, model, dataset, output_dir, chat), max(1, hp["gpus"]), env={})
    if backend == "skyrl":
        return [
            sys.executable,
            "-m",
            "darecipe.skyrl_main",
            *skyrl_overrides(hp, model, rl_parquets, output_dir, stop_token_ids, env),
        ]
    raise ValueError(f"unknown stage-3 backend {backend!r}")
