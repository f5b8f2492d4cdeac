"""skyrl-train's command line for stage 3, built from the same config as the ms-swift backend.

skyrl-train (Python 3.12, CUDA, vLLM, Ray: the cluster only) is configured by Hydra overrides; `darecipe.skyrl_main`
registers the `deepanalyze` environment and then runs skyrl-train's own entry point with them.
"""

from __future__ import annotations

from pathlib import Path


def skyrl_overrides(
    hp: dict, model: Path, train_files: list[Path], output_dir: Path, stop_token_ids: list[int], env: dict
) -> list[str]:
    """Hydra overrides for `python -m darecipe.skyrl_main` (docs/recipe.md §7's stage-3 values come from `hp`)."""
    prompts_per_step = hp["per_device_train_batch_size"] * hp["gradient_accumulation_steps"] * max(hp["gpus"], 1)
    prompts_per_step //= hp["num_generations"]
    files = ",".join(f"'{p}'" for p in train_files)
    return [
        f"data.train_data=[{files}]",
        f"trainer.policy.model.path={model}",
        f"trainer.export_path={output_dir}/export",
        f"trainer.ckpt_path={output_dir}/ckpt",
        "trainer.resume_mode=latest",
        f"trainer.ckpt_interval={hp['save_steps']}",
        "trainer.algorithm.advantage_estimator=grpo",
        f"trainer.algorithm.use_kl_loss={'true' if hp['beta'] > 0 else 'false'}",
        f"trainer.algorithm.kl_loss_coef={hp['beta']}",
        "trainer.strategy=fsdp2",
        "trainer.placement.colocate_all=true",
        f"trainer.placement.policy_num_gpus_per_node={max(hp['gpus'], 1)}",
        f"generator.num_inference_engines={max(hp['gpus'], 1)}",
        f"trainer.epochs={int(hp['num_train_epochs'])}",
        f"trainer.train_batch_size={prompts_per_step}",
        f"trainer.policy_mini_batch_size={prompts_per_step}",
        f"trainer.policy.optimizer_config.lr={hp['learning_rate']}",
        f"trainer.max_prompt_length={hp['max_length']}",
        f"trainer.seed={hp['seed']}",
        "generator.backend=vllm",
        "generator.batched=false",
        # every turn and observation in one assistant message, as the release trained (not one user turn each)
        "generator.use_conversation_multi_turn=false",
        "generator.async_engine=true",
        f"generator.n_samples_per_prompt={hp['num_generations']}",
        f"generator.max_turns={hp['max_turns']}",
        f"generator.max_input_length={hp['max_trajectory_length']}",
        f"generator.sampling_params.max_generate_length={hp['max_completion_length']}",
        f"generator.sampling_params.temperature={hp['temperature']}",
        f"generator.sampling_params.top_p={hp['top_p']}",
        f"+generator.sampling_params.stop_token_ids=[{','.join(map(str, stop_token_ids))}]",
        f"generator.gpu_memory_utilization={hp['vllm_gpu_memory_utilization']}",
        "environment.env_class=deepanalyze",
        f"+environment.skyrl_gym.deepanalyze.max_turns={hp['max_turns']}",
        f"+environment.skyrl_gym.deepanalyze.max_trajectory_length={hp['max_trajectory_length']}",
        f"+environment.skyrl_gym.deepanalyze.workspace_root={env['workspace_root']}",
        f"+environment.skyrl_gym.deepanalyze.sandbox.timeout_s={env['sandbox']['timeout_s']}",
        f"+environment.skyrl_gym.deepanalyze.sandbox.memory_mb={env['sandbox']['memory_mb']}",
        "trainer.logger=console",
    ]
