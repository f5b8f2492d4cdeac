"""Rule train_stage3: multi-turn GRPO (`swift rlhf --rlhf_type grpo`) with real code execution."""

import json
from pathlib import Path

from darecipe import training
from darecipe.chat import read_format
from darecipe.judge import preflight
from darecipe.llm import LLMSettings
from darecipe.rollout import (
    EPISODE_ENV,
    JUDGE_ENV,
    ROLLOUT_LOG_ENV,
    SANDBOX_ENV,
    WORKSPACE_ROOT_ENV,
    summarise_rollouts,
)
from darecipe.runlog import run_script
from darecipe.sandbox import SandboxLimits, describe_isolation
from darecipe.stage3 import stage3_command
from darecipe.swift_args import grpo_args


def main(smk, log):
    log(describe_isolation(SandboxLimits(**smk.params.sandbox)))  # stops here if the jail cannot be built
    hp = dict(smk.params.hp)
    dataset = Path(smk.input.data)
    workspaces = Path(smk.input.workspaces).resolve()
    stage = training.Stage(
        name="stage3",
        command="rlhf",
        base=Path(smk.input.model),
        data=[dataset, Path(smk.input.workspaces)],
        params={**hp, "sandbox": dict(smk.params.sandbox), "judge": smk.params.judge_identity},
        out=Path(smk.output[0]),
        runs_root=Path(smk.params.runs_root),
        log=Path(smk.log[0]),
        keep_resume_state=smk.config["runs"]["keep_resume_state"],
    )
    jcfg = dict(smk.config["judge"])  # endpoint and concurrency come from the config; what matters is in params
    if jcfg["backend"] == "none":
        log(
            "stage3: judge.backend is none: the LLM-judge terms are dropped from the reward (qa: exact match only; "
            "datatask: code success rate; openresearch: code success rate and turns)"
        )
    else:
        settings = LLMSettings.from_config(jcfg)
        log(
            f"stage3: judge {settings.model} ({jcfg['backend']}, {settings.base_url or 'default endpoint'}) scores "
            "the answers; reward = docs/recipe.md §6 with the judge terms"
        )
        if jcfg["backend"] == "openai":
            preflight(settings)  # no key or no endpoint: stop here, before training, with one line

    def env_for(run_dir: Path) -> dict:
        run_dir = run_dir.resolve()
        return {
            WORKSPACE_ROOT_ENV: str(workspaces),
            SANDBOX_ENV: json.dumps(dict(smk.params.sandbox)),
            EPISODE_ENV: json.dumps({"max_trajectory_length": hp["max_trajectory_length"]}),
            ROLLOUT_LOG_ENV: str(run_dir / "rollouts.jsonl"),
            JUDGE_ENV: json.dumps({**jcfg, "cache": str(run_dir / "judge-cache.jsonl")}),
        }

    if hp["backend"] == "skyrl":
        tags = json.loads((stage.base / "tags.json").read_text())
        from transformers import AutoTokenizer

        stop_ids = [tags["</Code>"], AutoTokenizer.from_pretrained(stage.base).eos_token_id]
        env = {"workspace_root": str(workspaces), "sandbox": dict(smk.params.sandbox)}
        parquets = [Path(p) for p in smk.input.rl_sets]
        metrics = training.run_skyrl(
            stage,
            lambda out_dir: stage3_command(
                "skyrl", hp, stage.base, dataset, parquets, out_dir, stop_ids, env, read_format(stage.base)
            ),
            hp["gpus"],
            env_for,
        )
    else:
        metrics = training.run(
            stage,
            lambda out_dir: grpo_args(hp, stage.base, dataset, out_dir, read_format(stage.base)),
            nproc=max(1, hp["gpus"]),
            env_for=env_for,
            extra_metrics=lambda run_dir: {"rollouts": summarise_rollouts(run_dir / "rollouts.jsonl")},
        )
    rollouts = metrics.get("rollouts") or {}
    if rollouts:
        log(
            f"rollouts: {rollouts['total_rollouts']} scored; judge: {rollouts['judge_requests']} requests "
            f"({'off' if jcfg['backend'] == 'none' else jcfg['model']}; only rollouts past the format gates are judged)"
        )
    log(f"exported {smk.output[0]} at step {metrics['global_step']}")


run_script(main, globals().get("snakemake"))
