import json
from pathlib import Path

import yaml
from conftest import REPO

from darecipe import training
from darecipe.config import load_schema, validate_config
from darecipe.swift_args import grpo_args, sft_args


def fake_save(output_dir, step, state_ok=True, weights=True):
    ckpt = output_dir / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    if weights:
        (ckpt / "model.safetensors").write_bytes(b"w")
    (ckpt / "optimizer.pt").write_bytes(b"o")
    if state_ok:
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    else:
        (ckpt / "trainer_state.json").write_text('{"global_st')  # killed mid-write
    return ckpt


def test_partial_saves_are_told_apart(tmp_path):
    fake_save(tmp_path, 10)
    fake_save(tmp_path, 20)
    fake_save(tmp_path, 30, state_ok=False)
    fake_save(tmp_path, 40, weights=False)
    complete, partial = training.saves(tmp_path)
    assert [training.step_of(p) for p in complete] == [10, 20]
    assert [training.step_of(p) for p in partial] == [30, 40]


def test_run_key_follows_parameters_data_and_base(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    data = tmp_path / "train.jsonl"
    data.write_text('{"a": 1}\n')
    key, _ = training.run_key("stage1", base, [data], {"learning_rate": 1e-5})
    assert training.run_key("stage1", base, [data], {"learning_rate": 1e-5})[0] == key
    assert training.run_key("stage1", base, [data], {"learning_rate": 2e-5})[0] != key
    data.write_text('{"a": 2}\n')
    assert training.run_key("stage1", base, [data], {"learning_rate": 1e-5})[0] != key


def test_export_keeps_the_model_and_drops_trainer_state(tmp_path):
    final = fake_save(tmp_path / "run", 7)
    (final / "config.json").write_text("{}")
    out = tmp_path / "checkpoints" / "stage1"
    training.export(final, out, {"global_step": 7, "run_key": "abc"})
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.json", "model.safetensors"]
    assert training.checkpoint_identity(out) == "run:abc"
    assert not list(out.parent.glob(".stage1.*"))  # nothing left beside it


def zero3_save(output_dir: Path, step: int, max_steps: int) -> Path:
    """A save as ms-swift writes it for the paper run (ZeRO-3 on 8 GPUs, 16-bit weights gathered on save), which
    no CPU run produces: sharded weights, DeepSpeed's global_step<N>/ shards and `latest`, one RNG state per rank."""
    ckpt = output_dir / f"checkpoint-{step}"
    (ckpt / f"global_step{step}").mkdir(parents=True)
    for rank in range(8):
        (ckpt / f"global_step{step}" / f"bf16_zero_pp_rank_{rank}_mp_rank_00_optim_states.pt").write_bytes(b"o" * 64)
        (ckpt / f"rng_state_{rank}.pth").write_bytes(b"r")
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        (ckpt / name).write_bytes(b"w" * 32)
    for name in ("model.safetensors.index.json", "config.json", "tokenizer.json", "generation_config.json"):
        (ckpt / name).write_text("{}")
    (ckpt / "latest").write_text(f"global_step{step}")
    (ckpt / "zero_to_fp32.py").write_text("# DeepSpeed's script")
    (ckpt / "scheduler.pt").write_bytes(b"s")
    (ckpt / "training_args.bin").write_bytes(b"a")
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": max_steps}))
    return ckpt


def test_a_finished_zero3_run_keeps_its_weights_and_drops_its_resume_state(tmp_path):
    output = tmp_path / "run" / "output"
    saved = [zero3_save(output, step, 3000) for step in (2000, 2500, 3000)]  # save_total_limit 3, as in the paper
    assert training.is_final_save(saved[-1]) and not training.is_final_save(saved[0])
    out = tmp_path / "checkpoints" / "stage1"
    training.export(saved[-1], out, {"global_step": 3000})
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "generation_config.json",
        "metrics.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
    ]
    shard = "model-00001-of-00002.safetensors"
    assert (out / shard).stat().st_ino == (saved[-1] / shard).stat().st_ino  # linked, not a second copy
    assert training.drop_resume_state(output) == 3 * (8 * 64 + 8 + 1 + len("global_stepNNNN"))
    for ckpt in saved:
        assert sorted(p.name for p in ckpt.iterdir()) == [
            "config.json",
            "generation_config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "tokenizer.json",
            "trainer_state.json",
            "training_args.bin",
            "zero_to_fp32.py",
        ]
    assert training.saves(output)[0] == saved  # still complete saves, the last one still final
    assert (out / shard).read_bytes() == b"w" * 32


def paper():
    cfg = yaml.safe_load((REPO / "config/deepanalyze-8b.yaml").read_text())
    return validate_config(cfg, load_schema(REPO / "config/schema.yaml"))


def paper_format(cfg):
    from darecipe.chat import resolve_format

    return resolve_format(cfg["base_model"], Path(cfg["base_model"]["path"]))


def flags(argv):
    """--key value pairs of an argv (value None for a flag followed by another flag)."""
    out = {}
    for i, a in enumerate(argv):
        if a.startswith("--"):
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            out[a] = None if nxt is None or nxt.startswith("--") else nxt
    return out


def test_paper_sft_commands_carry_recipe_values(tmp_path):
    cfg = paper()
    chat = paper_format(cfg)
    s1 = flags(sft_args(cfg["stage1"], tmp_path, [tmp_path / "d.jsonl"], tmp_path / "o", mask_execute=False, chat=chat))
    assert s1["--model_type"] == "qwen3" and s1["--template"] == "deepseek_r1"
    assert s1["--num_train_epochs"] == "3" and s1["--learning_rate"] == "5e-05"
    assert s1["--per_device_train_batch_size"] == "8" and s1["--gradient_accumulation_steps"] == "4"
    assert s1["--max_length"] == "8192" and s1["--packing"] == "true" and s1["--deepspeed"] == "zero3"
    assert s1["--attn_impl"] == "flash_attn" and s1["--use_liger_kernel"] == "true"
    assert s1["--torch_dtype"] == "bfloat16" and s1["--warmup_ratio"] == "0.05" and s1["--save_steps"] == "50"
    assert s1["--lr_scheduler_type"] == "cosine" and s1["--tuner_type"] == "full"
    assert "--loss_scale" not in s1
    s2 = flags(sft_args(cfg["stage2"], tmp_path, [tmp_path / "d.jsonl"], tmp_path / "o", mask_execute=True, chat=chat))
    assert s2["--learning_rate"] == "5e-06" and s2["--max_length"] == "32768"
    assert s2["--per_device_train_batch_size"] == "1" and s2["--gradient_accumulation_steps"] == "32"
    assert s2["--loss_scale"] == "default+deepanalyze"
    assert cfg["stage1"]["gpus"] == cfg["stage2"]["gpus"] == 8


def test_paper_grpo_command_carries_recipe_values(tmp_path):
    cfg = paper()
    g = flags(grpo_args(cfg["stage3"], tmp_path, tmp_path / "d.jsonl", tmp_path / "o", paper_format(cfg)))
    assert g["--template"] == "deepseek_r1"
    # a trajectory may grow to max_trajectory_length (prompt + turns + observations) before vLLM cuts it
    assert g["--vllm_max_model_len"] == "32768"
    assert g["--rlhf_type"] == "grpo" and g["--learning_rate"] == "5e-07"
    assert g["--num_generations"] == "5" and g["--max_turns"] == "30" and g["--beta"] == "0.0"
    assert g["--stop_words"] == "</Code>" and g["--multi_turn_scheduler"] == "deepanalyze"
    assert g["--use_vllm"] == "true" and g["--vllm_mode"] == "colocate"
    assert float(g["--temperature"]) > 0
    hp = cfg["stage3"]
    # 256 prompts × 5 rollouts per step across 8 GPUs.
    assert hp["per_device_train_batch_size"] * hp["gradient_accumulation_steps"] * hp["gpus"] == 256 * 5
    assert hp["max_length"] == 8000 and hp["max_trajectory_length"] == 32768


def test_launch_commands_single_process_one_node_and_multi_node(monkeypatch):
    import subprocess as sp

    from darecipe.training import launch_argv

    assert launch_argv("sft", ["--x"], 1, env={})[1:] == ["-m", "swift.cli.sft", "--x"]
    one_node = launch_argv("sft", ["--x"], 8, env={})
    assert "--standalone" in one_node and "--nproc_per_node=8" in one_node
    monkeypatch.setattr(sp, "run", lambda *a, **k: sp.CompletedProcess(a, 0, stdout="gpu-a01\ngpu-a02\n"))
    multi = launch_argv("rlhf", ["--x"], 16, env={"SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu-a[01-02]"})
    assert multi[:3] == ["srun", "--nodes=2", "--ntasks-per-node=1"]
    assert "--nnodes=2" in multi and "--nproc_per_node=8" in multi and "--rdzv_endpoint=gpu-a01:29500" in multi


def test_the_paper_config_drops_resume_state_of_finished_runs():
    assert paper()["runs"] == {"keep_resume_state": False}
