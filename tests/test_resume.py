"""A training stage killed at any moment resumes from its last complete save; a changed stage starts fresh.
Real ms-swift on the tiny model (CPU, fixed seed)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import REPO
from safetensors.torch import load_file

HP = {
    "gpus": 0,
    "num_train_epochs": 1,
    "max_steps": 6,
    "learning_rate": 1e-3,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "max_length": 512,
    "warmup_ratio": 0.0,
    "lr_scheduler_type": "constant",
    "save_steps": 2,
    "save_total_limit": None,
    "torch_dtype": "float32",
    "deepspeed": None,
    "attn_impl": None,
    "use_liger_kernel": False,
    "gradient_checkpointing": False,
    "seed": 42,
    "dataloader_num_workers": 0,
    "dataset_num_proc": 1,
    "extra_args": [],
    "packing": False,
}

DRIVER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from darecipe import training
    from darecipe.chat import read_format
    from darecipe.swift_args import sft_args
    a = json.loads(sys.argv[1])
    hp, base, data = a["hp"], Path(a["base"]), [Path(a["data"])]
    stage = training.Stage("stage1", "sft", base, data, hp, Path(a["out"]), Path(a["runs"]), Path(a["log"]),
                           keep_resume_state=a.get("keep", False))
    import logging
    logging.getLogger("darecipe").addHandler(logging.FileHandler(a["log"] + ".head", mode="a"))
    logging.getLogger("darecipe").setLevel(logging.INFO)
    training.run(stage, lambda o: sft_args(hp, base, data, o, mask_execute=True, chat=read_format(base)), 1)
""")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    lines = []
    for name in ("SKGInstruct", "math"):
        lines += (REPO / f"resources/examples/stage1/{name}.jsonl").read_text().splitlines()
    path.write_text("\n".join(lines * 2) + "\n")  # 12 records: 6 steps of 2
    return path


def start(tmp, base, data, hp, name, **extra):
    tmp.mkdir(parents=True, exist_ok=True)
    args = {
        **extra,
        "hp": hp,
        "base": str(base),
        "data": str(data),
        "out": str(tmp / name / "ckpt"),
        "runs": str(tmp / "runs"),
        "log": str(tmp / f"{name}.log"),
    }
    return subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(args)], env={**os.environ})


def finish(proc):
    assert proc.wait(timeout=600) == 0


def wait_for_save(runs: Path, step: int, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if list(runs.glob(f"stage1/*/output/checkpoint-{step}/trainer_state.json")):
            return
        assert proc.poll() is None, "training ended before its first save"
        time.sleep(0.05)
    raise AssertionError("no save appeared")


def kill_after_first_save(tmp, base, data, hp, name):
    """Start a run and SIGKILL its wrapper as soon as save 2 is complete (the trainer dies with it)."""
    proc = start(tmp, base, data, hp, name)
    wait_for_save(tmp / "runs", 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1)


def weights(ckpt: Path):
    return load_file(ckpt / "model.safetensors")


def test_kill_after_a_save_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_vocab, data):
    finish(start(tmp_path / "a", tiny_vocab, data, HP, "full"))
    reference = weights(tmp_path / "a" / "full" / "ckpt")

    b = tmp_path / "b"
    kill_after_first_save(b, tiny_vocab, data, HP, "killed")  # the trainer dies with its wrapper (PR_SET_PDEATHSIG)
    finish(start(b, tiny_vocab, data, HP, "resumed"))
    head = (b / "resumed.log.head").read_text()
    resumed_from = int(head.split("resumed from step ")[1].split()[0])
    assert resumed_from >= 2
    metrics = json.loads((b / "resumed" / "ckpt" / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == resumed_from and metrics["global_step"] == HP["max_steps"]
    state = json.loads((Path(metrics["final_checkpoint"]) / "trainer_state.json").read_text())
    assert state["global_step"] == HP["max_steps"]  # the same number of optimizer steps in all
    got = weights(b / "resumed" / "ckpt")
    # Stated tolerance: float32 CPU training; equal up to rounding.
    for name, tensor in reference.items():
        assert (got[name] - tensor).abs().max().item() < 1e-5, name


def test_a_finished_run_keeps_weights_drops_resume_state_and_is_exported_again_without_training(
    tmp_path, tiny_vocab, data
):
    finish(start(tmp_path, tiny_vocab, data, HP, "first"))
    (run,) = (tmp_path / "runs" / "stage1").iterdir()
    saved = sorted(run.glob("output/checkpoint-*"), key=training_step)
    assert [training_step(c) for c in saved] == [2, 4, 6]  # save_steps 2 of 6, no save limit
    for ckpt in saved:
        assert (ckpt / "model.safetensors").is_file() and (ckpt / "trainer_state.json").is_file()
        assert not any((ckpt / n).exists() for n in ("optimizer.pt", "scheduler.pt", "rng_state.pth")), ckpt
    assert "dropped" in (tmp_path / "first.log.head").read_text()
    exported = tmp_path / "first" / "ckpt"
    # the export shares the final save's file (a hard link), it is not a second copy
    assert (exported / "model.safetensors").stat().st_ino == (saved[-1] / "model.safetensors").stat().st_ino
    reference = weights(exported)
    subprocess.run(["rm", "-rf", str(exported)], check=True)
    launched = (run / "command.sh").stat().st_mtime_ns
    finish(start(tmp_path, tiny_vocab, data, HP, "again"))
    assert "already finished at step 6; exporting it" in (tmp_path / "again.log.head").read_text()
    assert (run / "command.sh").stat().st_mtime_ns == launched  # the trainer was not started again
    got = weights(tmp_path / "again" / "ckpt")
    assert all(got[k].equal(v) for k, v in reference.items())
    metrics = json.loads((tmp_path / "again" / "ckpt" / "metrics.json").read_text())
    assert metrics["global_step"] == 6 and metrics["wall_seconds_this_attempt"] is None


def test_keep_resume_state_keeps_the_optimizer_of_a_finished_run(tmp_path, tiny_vocab, data):
    finish(start(tmp_path, tiny_vocab, data, {**HP, "max_steps": 2}, "kept", keep=True))
    (ckpt,) = (tmp_path / "runs" / "stage1").glob("*/output/checkpoint-2")
    assert (ckpt / "optimizer.pt").is_file() and (ckpt / "scheduler.pt").is_file()


def training_step(ckpt: Path) -> int:
    return int(ckpt.name.split("-")[1])


def test_a_partial_save_is_ignored(tmp_path, tiny_vocab, data):
    kill_after_first_save(tmp_path, tiny_vocab, data, HP, "first")
    (run,) = (tmp_path / "runs" / "stage1").iterdir()
    out = run / "output"
    for ckpt in out.glob("checkpoint-*"):
        if ckpt.name != "checkpoint-2":
            subprocess.run(["rm", "-rf", str(ckpt)], check=True)
    # What a kill in the middle of writing save 4 leaves: the weights written, the trainer state cut short.
    partial = out / "checkpoint-4"
    subprocess.run(["cp", "-r", str(out / "checkpoint-2"), str(partial)], check=True)
    (partial / "trainer_state.json").write_text('{"global_step": 4, "log_hist')
    finish(start(tmp_path, tiny_vocab, data, HP, "second"))
    head = (tmp_path / "second.log.head").read_text()
    assert "resumed from step 2" in head and "ignoring incomplete save" in head and "checkpoint-4" in head


def test_a_changed_learning_rate_starts_fresh(tmp_path, tiny_vocab, data):
    kill_after_first_save(tmp_path, tiny_vocab, data, HP, "first")
    old = {p.name for p in (tmp_path / "runs" / "stage1").iterdir()}
    finish(start(tmp_path, tiny_vocab, data, {**HP, "learning_rate": 5e-4}, "changed"))
    head = (tmp_path / "changed.log.head").read_text()
    assert "started fresh" in head and "resumed" not in head
    new = {p.name for p in (tmp_path / "runs" / "stage1").iterdir()} - old
    assert len(new) == 1 and not any(o in head for o in old)


GRPO_DRIVER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from darecipe import training
    from darecipe.chat import read_format
    from darecipe.swift_args import grpo_args
    a = json.loads(sys.argv[1])
    hp, base, data = a["hp"], Path(a["base"]), Path(a["data"])
    stage = training.Stage("stage3", "rlhf", base, [data], hp, Path(a["out"]), Path(a["runs"]), Path(a["log"]))
    import logging
    logging.getLogger("darecipe").addHandler(logging.FileHandler(a["log"] + ".head", mode="a"))
    logging.getLogger("darecipe").setLevel(logging.INFO)
    training.run(stage, lambda o: grpo_args(hp, base, data, o, read_format(base)), 1, env_for=lambda r: a["env"])
""")


def test_grpo_stage_resumes_from_its_last_save(tmp_path, tiny_vocab):
    ws = tmp_path / "workspaces" / "demo" / "t1"
    ws.mkdir(parents=True)
    (ws / "t.csv").write_text("a\n1\n3\n")
    rows = [
        {
            "messages": [{"role": "user", "content": f"Sum column a of t.csv ({i})."}],
            "method": "qa",
            "ground_truth": "4",
            "data": "demo",
            "workspace_id": "t1",
            "task": "sum",
        }
        for i in range(8)
    ]
    data = tmp_path / "rl.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    hp = {
        **HP,
        "max_steps": 3,
        "save_steps": 1,
        "per_device_train_batch_size": 2,
        "backend": "swift",
        "num_generations": 2,
        "max_turns": 2,
        "max_completion_length": 16,
        "max_trajectory_length": 1024,
        "temperature": 1.0,
        "top_p": 1.0,
        "beta": 0.0,
        "use_vllm": False,
        "vllm_mode": "colocate",
        "vllm_gpu_memory_utilization": 0.5,
    }
    env = {
        "DARECIPE_WORKSPACE_ROOT": str(tmp_path / "workspaces"),
        "DARECIPE_ROLLOUT_LOG": str(tmp_path / "rollouts.jsonl"),
    }

    def launch(name):
        args = {
            "hp": hp,
            "base": str(tiny_vocab),
            "data": str(data),
            "out": str(tmp_path / name),
            "runs": str(tmp_path / "runs"),
            "log": str(tmp_path / f"{name}.log"),
            "env": env,
        }
        return subprocess.Popen([sys.executable, "-c", GRPO_DRIVER, json.dumps(args)])

    proc = launch("killed")
    deadline = time.time() + 300
    while not list((tmp_path / "runs").glob("stage3/*/output/checkpoint-1/trainer_state.json")):
        assert proc.poll() is None and time.time() < deadline, "GRPO ended or stalled before its first save"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1)
    finish(launch("resumed"))
    head = (tmp_path / "resumed.log.head").read_text()
    assert "stage3: resumed from step" in head
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert metrics["global_step"] == 3 and metrics["resumed_from_step"] >= 1
