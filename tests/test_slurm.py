"""The demo DAG through a real single-node SLURM cluster (slurmctld + slurmd from Debian's slurm-wlm, set up by
tests/slurm/setup_local_slurm.sh; needs root and apt, as on CI). Run alone with: pytest tests/test_slurm.py

1. A run is interrupted with SIGINT after some jobs finished; the same command then completes the DAG and runs no
   finished job again.
2. Every job went through sbatch; the GPU rules asked for partition a100 and --gpus=a100:1; the checkpoints have
   the same shapes as those of the local run."""

import json
import re
import signal
import subprocess
import time

import pytest
from conftest import BIN, REPO, copy_repo, discard

COMMAND = [
    str(BIN / "snakemake"),
    "stage3_checkpoint",
    "--profile",
    "profiles/slurm",
    "--profile",
    "tests/slurm/profile",
]
GPU_RULES = {"train_stage1", "train_stage2", "train_stage3"}


@pytest.fixture(scope="module")
def cluster():
    proc = subprocess.run(["bash", str(REPO / "tests/slurm/setup_local_slurm.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"could not start the local SLURM cluster (needs root and apt): {proc.stderr.strip()}")


def jobs_of(log: str) -> dict[str, dict]:
    """Snakemake job id -> rule, output, SLURM job id (if submitted), finished, from a run's output."""
    jobs: dict[str, dict] = {}
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule )", log):
        head = re.search(r"^(local)?rule (\w+):", block, re.M)
        jid = re.search(r"^\s+jobid: (\d+)", block, re.M)
        if head and jid:
            out = re.search(r"^\s+output: (.*)$", block, re.M)
            jobs[jid.group(1)] = {
                "rule": head.group(2),
                "local": bool(head.group(1)),
                "output": out.group(1) if out else "",
            }
    for jid, sid in re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log):
        jobs.setdefault(jid, {})["slurm"] = sid
    for jid in re.findall(r"Finished jobid: (\d+)", log):
        jobs.setdefault(jid, {})["finished"] = True
    return jobs


@pytest.fixture(scope="module")
def slurm_runs(cluster, tmp_path_factory):
    work = copy_repo(tmp_path_factory.mktemp("slurm"))
    first = subprocess.Popen(COMMAND, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, deadline = [], time.time() + 900
    for line in first.stdout:
        lines.append(line)
        if sum("Finished jobid" in x for x in lines) >= 8 or time.time() > deadline:
            break
    first.send_signal(signal.SIGINT)  # Snakemake cancels its SLURM jobs (scancel) and stops
    try:
        rest, _ = first.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        first.send_signal(signal.SIGINT)  # a second SIGINT, as the plugin's docs advise, ends a hung wait
        rest, _ = first.communicate(timeout=60)
    interrupted = "".join(lines) + (rest or "")
    subprocess.run([str(BIN / "snakemake"), "--unlock"], cwd=work, capture_output=True)
    second = subprocess.run(COMMAND, cwd=work, capture_output=True, text=True, timeout=1800)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    yield {"dir": work, "first": interrupted, "second": second.stdout + second.stderr}
    discard(work)


def test_interrupted_run_completes_without_rerunning_finished_jobs(slurm_runs):
    first, second = jobs_of(slurm_runs["first"]), jobs_of(slurm_runs["second"])
    done_first = {j["output"] for j in first.values() if j.get("finished") and j.get("output")}
    assert len(done_first) >= 5, slurm_runs["first"][-2000:]
    again = {j["output"] for j in second.values() if j.get("output")} & done_first
    assert not again, f"finished before the interrupt and run again: {sorted(again)}"
    assert "59 of 59 steps" in slurm_runs["second"] or "(100%) done" in slurm_runs["second"]


def test_every_job_went_through_sbatch_and_gpu_rules_asked_for_a100(slurm_runs):
    for run in ("first", "second"):
        for jid, job in jobs_of(slurm_runs[run]).items():
            if job.get("finished") and not job.get("local"):
                assert "slurm" in job, f"{run} run: job {jid} ({job.get('rule')}) finished without sbatch"
    gpu_jobs = [j for j in jobs_of(slurm_runs["second"]).values() if j.get("rule") in GPU_RULES]
    assert {j["rule"] for j in gpu_jobs} == GPU_RULES
    for job in gpu_jobs:
        info = subprocess.run(["scontrol", "show", "job", "-o", job["slurm"]], capture_output=True, text=True).stdout
        assert "Partition=a100" in info, info
        assert re.search(r"TresPerJob=\S*gres(/|:)gpu:a100:1", info), info


def test_checkpoints_have_the_local_run_shapes(slurm_runs, demo_run):
    for stage in ("vocab", "stage1", "stage2", "stage3"):
        a = json.loads((slurm_runs["dir"] / f"results/checkpoints/{stage}/config.json").read_text())
        b = json.loads((demo_run["dir"] / f"results/checkpoints/{stage}/config.json").read_text())
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "head_dim"):
            assert a[key] == b[key], (stage, key)


def test_the_literal_command_finds_the_profile_after_setup(tmp_path):
    """`make slurm-profile`, then `snakemake --profile slurm -n stage3_checkpoint` from the repo shows each GPU
    rule's SLURM resources (no cluster needed for a dry run)."""
    import os

    home = tmp_path / "home"
    subprocess.run(
        ["make", "-s", "slurm-profile", f"SNAKEMAKE_PROFILES={home}/.config/snakemake"],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--profile", "slurm", "-n", "stage3_checkpoint", "--forceall"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for rule in GPU_RULES:
        block = proc.stdout.split(f"rule {rule}:", 1)[1].split("\n\n", 1)[0]
        resources = re.search(r"resources: (.*)", block).group(1)
        for item in ("slurm_partition=a100", "gpu=8", "gpu_model=a100", "cpus_per_gpu=8"):
            assert item in resources, (rule, resources)


def test_no_gpu_job_of_the_paper_run_lands_on_the_cpu_partition():
    """Every job of `all` under the SLURM profile that asks for GPUs (training, summary phases, domain LoRA,
    evaluation with its vLLM server) goes to the GPU partition with a GPU model and CPUs per GPU."""
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--profile", "profiles/slurm", "-n", "all", "--forceall"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    gpu_rules = set()
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule )", proc.stdout):
        head = re.search(r"^rule (\w+):", block, re.M)
        res = re.search(r"resources: (.*)", block)
        gpu = re.search(r"\bgpu=(\d+)", res.group(1)) if res else None
        if head and gpu and int(gpu.group(1)) > 0:
            gpu_rules.add(head.group(1))
            for item in ("slurm_partition=a100", "gpu_model=a100", "cpus_per_gpu=8"):
                assert item in res.group(1), (head.group(1), res.group(1))
    assert {
        "train_stage1",
        "train_stage2",
        "train_stage3",
        "train_summary_phase",
        "train_domain_lora",
        "eval_model",
        "summary_sft_eval",
    } <= gpu_rules
