"""Run one training stage with ms-swift so that a killed job loses only the steps since its last save.

Each run trains in `results/runs/<stage>/<key>/` (not a Snakemake output, so Snakemake never deletes it);
`<key>` hashes everything that defines the run. A rerun with the same key resumes from the newest
complete save; a changed key starts fresh in a new directory. At the end the final HF checkpoint is
exported atomically into the stage's checkpoint directory with `metrics.json`.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .io import atomic_dir, sha256_file, write_json

logger = logging.getLogger(__name__)

# Trainer state and launcher files: needed to resume, not part of the exported model.
NOT_EXPORTED = {
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state.pth",
    "trainer_state.json",
    "training_args.bin",
    "zero_to_fp32.py",
    "latest",
}
NOT_EXPORTED_RE = re.compile(r"^(rng_state_\d+\.pth|global_step\d+)$")
# What only resuming needs (optimizer moments, DeepSpeed shards, RNG states): dropped once a run has finished,
# unless `runs.keep_resume_state` is set. trainer_state.json stays: it says the save is complete and final.
RESUME_ONLY = NOT_EXPORTED - {"trainer_state.json", "training_args.bin", "zero_to_fp32.py"}
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
LARGE_FILE = 64 << 20
SAMPLE = 16 << 20
# Files every checkpoint carries from its base: the tags' ids and the chat format (ms-swift model type/template).
CARRIED_FILES = ("tags.json", "chat_format.json")
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "MODELSCOPE_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def _file_digest(path: Path) -> str:
    size = path.stat().st_size
    if size <= LARGE_FILE:
        return sha256_file(path)
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(SAMPLE))
        f.seek(size - SAMPLE)
        h.update(f.read(SAMPLE))
    return h.hexdigest()


def checkpoint_identity(ckpt: Path) -> str:
    """A stable id for an HF directory: the run key it was exported from, else its files' digests."""
    metrics = ckpt / "metrics.json"
    if metrics.is_file():
        key = json.loads(metrics.read_text()).get("run_key")
        if key:
            return f"run:{key}"
    return f"files:{_tree_digest(ckpt)}"


def run_key(stage: str, base: Path, data: list[Path], params: dict) -> tuple[str, dict]:
    """Short hash of base checkpoint identity, data checksums and every training parameter."""
    desc = {
        "stage": stage,
        "base": checkpoint_identity(base),
        "data": {str(p): (sha256_file(p) if p.is_file() else _tree_digest(p)) for p in data},
        "params": params,
    }
    blob = json.dumps(desc, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12], desc


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(root)}:{_file_digest(p)}\n".encode())
    return h.hexdigest()


def is_complete_save(ckpt: Path) -> bool:
    """HF's Trainer writes trainer_state.json last; a save without a parseable one is partial."""
    m = CHECKPOINT_RE.match(ckpt.name)
    if not m or not ckpt.is_dir():
        return False
    try:
        state = json.loads((ckpt / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    has_weights = any(ckpt.glob("*.safetensors")) or any(ckpt.glob("*.safetensors.index.json"))
    return has_weights and state.get("global_step") == int(m.group(1))


def saves(output_dir: Path) -> tuple[list[Path], list[Path]]:
    """(complete saves, partial saves), each sorted by step."""
    found = sorted(
        (p for p in output_dir.glob("checkpoint-*") if CHECKPOINT_RE.match(p.name)),
        key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)),
    )
    complete = [p for p in found if is_complete_save(p)]
    return complete, [p for p in found if p not in complete]


def step_of(ckpt: Path) -> int:
    return int(CHECKPOINT_RE.match(ckpt.name).group(1))


class TrainingInterrupted(RuntimeError):
    """Training saved and stopped before its last step; the next attempt resumes from that save."""


@dataclass
class Stage:
    name: str  # stage1 | stage2 | stage3 | …
    command: str  # swift sub-command module: "sft" or "rlhf"
    base: Path
    data: list[Path]
    params: dict
    out: Path
    runs_root: Path
    log: Path
    keep_resume_state: bool = False  # keep optimizer/scheduler/RNG state of a finished run's saves


def _set_pdeathsig() -> None:
    # If the wrapper is killed (SIGKILL included), the trainer dies with it instead of writing on.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def launch_argv(command: str, args: list[str], nproc: int, env: dict | None = None) -> list[str]:
    """The trainer's command: one process, torchrun on this node, or (in a multi-node SLURM job whose rule has
    `mpi: srun`) one torchrun per node started by srun, meeting at the first node."""
    env = os.environ if env is None else env
    module = f"swift.cli.{command}"
    nodes = int(env.get("SLURM_JOB_NUM_NODES", "1") or 1)
    if nodes > 1:
        head = subprocess.run(
            ["scontrol", "show", "hostnames", env["SLURM_JOB_NODELIST"]], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        return [
            "srun",
            f"--nodes={nodes}",
            "--ntasks-per-node=1",
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nnodes={nodes}",
            f"--nproc_per_node={max(1, nproc // nodes)}",
            "--rdzv_backend=c10d",
            f"--rdzv_endpoint={head}:29500",
            "-m",
            module,
            *args,
        ]
    if nproc > 1:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            module,
            *args,
        ]
    return [sys.executable, "-m", module, *args]


def prepare_run(stage: Stage) -> tuple[str, Path, Path]:
    """(run key, run directory, trainer output directory): the directory of this exact run, created, with run.json
    describing what the key hashes."""
    key, desc = run_key(stage.name, stage.base, stage.data, stage.params)
    run_dir = stage.runs_root / stage.name / key
    output_dir = run_dir / "output"
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "run.json", desc)
    return key, run_dir, output_dir


def run(stage: Stage, args_for, nproc: int, env_for=None, extra_metrics=None) -> dict:
    """Train (fresh or resumed), export, and return the metrics written beside the checkpoint."""
    key, run_dir, output_dir = prepare_run(stage)
    complete, partial = saves(output_dir)
    if complete and is_final_save(complete[-1]):
        # This exact run already trained to its last step (its export was deleted, or the job died after
        # training): export it again instead of launching the trainer on a finished (maybe pruned) save.
        logger.info(f"{stage.name}: run {run_dir} already finished at step {step_of(complete[-1])}; exporting it")
        return finish(
            stage,
            key,
            run_dir,
            output_dir,
            complete[-1],
            resumed_step=step_of(complete[-1]),
            start=None,
            extra_metrics=extra_metrics,
        )
    args = args_for(output_dir)
    resumed_step = None
    if complete:
        resume = complete[-1]
        resumed_step = step_of(resume)
        logger.info(
            f"{stage.name}: resumed from step {step_of(resume)} ({resume}) in run {run_dir}: same run key {key}"
        )
        args += ["--resume_from_checkpoint", str(resume)]
    else:
        why = "no earlier run with this key" if not partial else "earlier saves are all incomplete"
        logger.info(f"{stage.name}: started fresh in run {run_dir} ({why})")
    for p in partial:
        logger.info(f"{stage.name}: ignoring incomplete save {p} (killed while it was written)")
        shutil.rmtree(p, ignore_errors=True)
    argv = launch_argv(stage.command, args, nproc)
    env = {**os.environ, **OFFLINE_ENV, **(env_for(run_dir) if env_for else {})}
    if nproc > 1:
        env["NPROC_PER_NODE"] = str(nproc)
    (run_dir / "command.sh").write_text(" ".join(_shquote(a) for a in argv) + "\n")
    logger.info(f"{stage.name}: {' '.join(_shquote(a) for a in argv)}")
    start = time.time()
    rc = _supervise(argv, env, stage.log)
    if rc != 0:
        raise RuntimeError(f"{stage.name}: ms-swift exited with status {rc}; see {stage.log}")
    complete, _ = saves(output_dir)
    if not complete:
        raise RuntimeError(f"{stage.name}: training finished but left no complete save in {output_dir}")
    final = complete[-1]
    state = json.loads((final / "trainer_state.json").read_text())
    if state.get("max_steps") and state.get("global_step", 0) < state["max_steps"]:
        # A signal (SLURM's warning before the time limit, preemption) made the trainer save and stop early.
        raise TrainingInterrupted(
            f"{stage.name}: stopped on a signal after saving step {state['global_step']} of {state['max_steps']}; "
            f"run it again (the SLURM profile's retries resubmit) to resume from {final}"
        )
    return finish(stage, key, run_dir, output_dir, final, resumed_step, start, extra_metrics)


def is_final_save(ckpt: Path) -> bool:
    state = json.loads((ckpt / "trainer_state.json").read_text())
    return bool(state.get("max_steps")) and state.get("global_step", 0) >= state["max_steps"]


def finish(stage: Stage, key: str, run_dir: Path, output_dir: Path, final: Path, resumed_step, start, extra_metrics):
    """Export the final save with its metrics, then drop what only resuming needed (unless kept)."""
    metrics = collect_metrics(output_dir, final)
    metrics.update(
        stage=stage.name,
        run_key=key,
        run_dir=str(run_dir),
        resumed_from_step=resumed_step,
        wall_seconds_this_attempt=None if start is None else round(time.time() - start, 2),
    )
    if extra_metrics:
        metrics.update(extra_metrics(run_dir))
    export(final, stage.out, metrics, extra_files=carried(stage.base))
    if not stage.keep_resume_state:
        freed = drop_resume_state(output_dir)
        if freed:
            logger.info(
                f"{stage.name}: finished; dropped {freed / 2**20:.0f} MiB of optimizer/scheduler/RNG state from "
                f"{output_dir} (runs.keep_resume_state: true keeps it)"
            )
    return metrics


def drop_resume_state(output_dir: Path) -> int:
    """Delete the resume-only files of every complete save of a finished run; the weights stay. Returns bytes freed."""
    freed = 0
    for ckpt in saves(output_dir)[0]:
        for p in list(ckpt.iterdir()):
            if p.name in RESUME_ONLY or NOT_EXPORTED_RE.match(p.name):
                if p.is_dir() and not p.is_symlink():
                    freed += sum(q.stat().st_size for q in p.rglob("*") if q.is_file())
                    shutil.rmtree(p)
                else:
                    freed += p.lstat().st_size
                    p.unlink()
    return freed


def run_skyrl(stage: Stage, argv_for, gpus: int, env_for) -> dict:
    """The skyrl-train backend (cluster only): Ray is started inside the job's allocation and stopped after;
    skyrl-train resumes from its own latest checkpoint (`trainer.resume_mode=latest`) in the run directory."""
    key, run_dir, output_dir = prepare_run(stage)
    existing = sorted(output_dir.glob("ckpt/global_step_*"))
    logger.info(
        f"{stage.name}: {'resuming from ' + existing[-1].name if existing else 'started fresh'} in run {run_dir} "
        f"(skyrl-train, run key {key})"
    )
    env = {**os.environ, **OFFLINE_ENV, **env_for(run_dir)}
    argv = argv_for(output_dir)
    (run_dir / "command.sh").write_text(" ".join(_shquote(a) for a in argv) + "\n")
    start = time.time()
    ray = ["ray", "start", "--head", f"--num-gpus={gpus}", "--disable-usage-stats"]
    if subprocess.run(ray, env=env).returncode != 0:
        raise RuntimeError(f"{stage.name}: `ray start` failed inside the job")
    try:
        rc = _supervise(argv, env, stage.log)
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env)
    if rc != 0:
        raise RuntimeError(f"{stage.name}: skyrl-train exited with status {rc}; see {stage.log}")
    exports = sorted((p.parent for p in (output_dir / "export").rglob("config.json")), key=lambda p: p.stat().st_mtime)
    if not exports:
        raise RuntimeError(f"{stage.name}: skyrl-train left no HF export under {output_dir / 'export'}")
    metrics = {
        "stage": stage.name,
        "run_key": key,
        "run_dir": str(run_dir),
        "backend": "skyrl",
        "wall_seconds_this_attempt": round(time.time() - start, 2),
        "final_checkpoint": str(exports[-1]),
    }
    export(exports[-1], stage.out, metrics, extra_files=carried(stage.base))
    return metrics


def _supervise(argv: list[str], env: dict, log_path: Path) -> int:
    """Run the trainer with output appended to the rule's log; forward termination signals to it."""
    with open(log_path, "a", encoding="utf-8") as logf:
        proc = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT, preexec_fn=_set_pdeathsig)

        def forward(signum, _frame):
            proc.send_signal(signum)

        old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
        try:
            return proc.wait()
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def _shquote(a: str) -> str:
    import shlex

    return shlex.quote(a)


def carried(base: Path) -> list[Path]:
    return [base / name for name in CARRIED_FILES]


def export(final: Path, out: Path, metrics: dict, extra_files: list[Path] = ()) -> None:
    """Put the model files of `final` into `out` atomically (linked or copied beside, then renamed)."""
    with atomic_dir(out) as tmp:
        for p in final.iterdir():
            if p.name in NOT_EXPORTED or NOT_EXPORTED_RE.match(p.name):
                continue
            if p.is_dir():
                shutil.copytree(p, tmp / p.name, copy_function=_link_or_copy)
            else:
                _link_or_copy(p, tmp / p.name)
        for extra in extra_files:
            if extra.is_file() and not (tmp / extra.name).exists():
                shutil.copy2(extra, tmp / extra.name)
        write_json(tmp / "metrics.json", metrics)


def _link_or_copy(src, dst) -> None:
    """A hard link where the file system allows one (an 8B export is 16 GB; the run's save is never written again
    once it is final), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def read_log_history(output_dir: Path) -> list[dict]:
    path = output_dir / "logging.jsonl"
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def _dataset_tokens(history: list[dict]) -> dict | None:
    """ms-swift logs the train set's token lengths as "mean±std, min=…, max=…, size=N"."""
    for row in reversed(history):
        m = re.match(r"([\d.]+)±([\d.]+), min=([\d.]+), max=([\d.]+), size=(\d+)", str(row.get("train_dataset", "")))
        if m:
            mean, _, lo, hi, size = map(float, m.groups())
            return {"records": int(size), "mean": mean, "min": int(lo), "max": int(hi), "total": round(mean * size)}
    return None


def collect_metrics(output_dir: Path, final: Path) -> dict:
    state = json.loads((final / "trainer_state.json").read_text())
    steps = [h for h in state.get("log_history", []) if "loss" in h and "step" in h]
    logged = read_log_history(output_dir)
    summary = next((h for h in reversed(logged) if "train_runtime" in h), {})
    curve_keys = (
        "loss",
        "learning_rate",
        "grad_norm",
        "token_acc",
        "reward",
        "reward_std",
        "num_turns",
        "completions/mean_length",
        "frac_reward_zero_std",
    )
    curve = [{"step": h["step"], **{k: h[k] for k in curve_keys if k in h}} for h in steps]
    tokens = _dataset_tokens(logged)
    epochs = state.get("epoch") or 0
    return {
        "global_step": state.get("global_step"),
        "max_steps": state.get("max_steps"),
        "epoch": epochs,
        "train_set_tokens": tokens,
        "tokens_trained_approx": round(tokens["total"] * epochs) if tokens else None,
        "train_runtime_s": summary.get("train_runtime"),
        "curve": curve,
        "final_checkpoint": str(final),
    }
