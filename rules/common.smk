import json
import os
import sys
from pathlib import Path

# The project package, importable even where only Snakemake itself was installed.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from darecipe.config import ConfigError, check_paths, load_schema, validate_config
from darecipe.synthesis import CATEGORY_GOALS, RL_SET_OF
from darecipe.stage1 import SET_ROLES as STAGE1_SET_ROLES


def _config_sources():
    return " + ".join(dict.fromkeys(str(f) for f in workflow.configfiles)) or "config"


try:
    validate_config(config, load_schema(workflow.source_path("../config/schema.yaml")), _config_sources())
    check_paths(config, _config_sources())
except ConfigError as e:
    raise WorkflowError(f"Configuration error: {e}") from None


RUNS_ROOT = "results/runs"

# Scripts import the project package from src/ even inside a `--sdm conda` environment, which carries only
# third-party dependencies; jobs inherit this environment (locally and through SLURM's --export=ALL).
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (str(Path(workflow.basedir) / "src"), os.environ.get("PYTHONPATH")) if p)
)

# Training jobs use the cluster environment (DeepSpeed, FlashAttention, Liger, vLLM) only when a stage asks
# for one of those; the embedded default and plain single-GPU runs use the lighter one.
CLUSTER_KEYS = ("deepspeed", "attn_impl", "use_liger_kernel", "use_vllm")
TRAIN_ENV = (
    "../envs/train-cluster.yaml"
    if any(config[s].get(k) for s in ("stage1", "stage2", "stage3") for k in CLUSTER_KEYS)
    or any(p.get(k) for p in config["summary"]["phases"] for k in CLUSTER_KEYS)
    else "../envs/train.yaml"
)
STAGE3_ENV = "../envs/skyrl.yaml" if config["stage3"]["backend"] == "skyrl" else TRAIN_ENV


INTERACTION_CATEGORIES = tuple(CATEGORY_GOALS)


wildcard_constraints:
    category="|".join(INTERACTION_CATEGORIES),
    workspace="[A-Za-z0-9_.-]+",
    shard=r"\d+",


def get_base_model():
    """The base checkpoint directory: built (tiny), downloaded (hub) or given (local)."""
    return config["base_model"]["path"]


def get_category_workspaces(category):
    names = config["synthesis"]["categories"].get(category, [])
    return [f"results/data/synthesis/workspaces/{name}" for name in names]


def get_all_workspaces():
    names = sorted({n for names in config["synthesis"]["categories"].values() for n in names})
    return [f"results/data/synthesis/workspaces/{name}" for name in names]


def get_interaction_sets():
    """Stage-2 inputs: the accepted trajectories of every category (empty categories give empty files)."""
    return [f"results/data/synthesis/{category}.jsonl" for category in INTERACTION_CATEGORIES]


def get_rl_sets():
    return [f"results/data/rl/{name}.parquet" for name in dict.fromkeys(RL_SET_OF.values())]


def canonical(value):
    """A params value with dict keys sorted at every level. Snakemake compares params by their text, so
    reordering keys in a YAML file (or defaults filled in another order) must not look like a change."""
    return json.loads(json.dumps(value, sort_keys=True))


def training_params(stage):
    """Every hyper-parameter of a stage, as one params value: a change reruns that stage and all after it."""
    return canonical(config[stage])


# Stage-1 synthesis: one job per (set, shard); the shard count is in the config, so a dry run shows every job.
SYNTHESISED_SETS = (
    "TableQA_distillation",
    "TableQA_refinement",
    "TableGPT",
    "file_database",
    "file_csv",
    "file_xlsx",
    "file_any",
)
EXTRA_SET_NAMES = tuple(config["stage1_data"]["extra_sets"]) or ("no-extra-sets",)
SHARD_OUT = "results/data/stage1/shards/{set}/{{shard}}.jsonl"
SHARD_REJECTS = "results/data/stage1/shards/{set}/{{shard}}.rejects.jsonl"
SHARD_METRICS = "results/data/stage1/shards/{set}/{{shard}}.metrics.json"


def get_shards(set_name):
    n = config["stage1_data"]["shards"]
    return [f"results/data/stage1/shards/{set_name}/{i}.jsonl" for i in range(n)]


def get_stage1_sets():
    """Every stage-1 set: the synthesised ones and those the user supplies as files."""
    return list(SYNTHESISED_SETS) + sorted(config["stage1_data"]["extra_sets"])


def synthesis_params():
    """What a synthesis job's output depends on besides its input files. Only the teacher's model and sampling
    count: endpoint, concurrency, retries and timeouts change how replies are fetched, not what they say."""
    d = config["stage1_data"]
    return dict(
        teacher=canonical({k: config["llm"][k] for k in ("backend", "model", "sampling")}),
        shards=d["shards"],
        seed=d["seed"],
        rel_tol=d["answer_rel_tol"],
        data_root=d["data_root"],
    )


# Summary-enhanced SFT (rules/summary.smk): phase N trains from phase N-1's checkpoint, phase 1 from `summary.base`.
SUMMARY_PHASES = config["summary"]["phases"]
PIPELINE_CHECKPOINTS = ("vocab", "stage1", "stage2", "stage3")


def get_summary_base():
    base = config["summary"]["base"]
    return f"results/checkpoints/{base}" if base in PIPELINE_CHECKPOINTS else base


def get_summary_trajectories():
    """The pipeline's own stage-2 trajectories (of the chosen categories), when the config adds them to the summary
    module's traces."""
    if not config["summary"]["pipeline_trajectories"]:
        return []
    chosen = config["summary"]["pipeline_categories"]
    return [f"results/data/synthesis/{c}.jsonl" for c in INTERACTION_CATEGORIES if chosen is None or c in chosen]


def summary_phase(wildcards):
    """Every hyper-parameter of one phase (its data set included), as one params value."""
    return canonical(SUMMARY_PHASES[int(wildcards.phase) - 1])


def get_summary_phase_model(wildcards):
    n = int(wildcards.phase)
    return get_summary_base() if n == 1 else f"results/summary/checkpoints/phase{n - 1}"


def get_summary_phase_data(wildcards):
    return [f"results/summary/{summary_phase(wildcards)['dataset']}_train.parquet"]


def get_summary_checkpoint():
    return f"results/summary/checkpoints/phase{len(SUMMARY_PHASES)}"


# Evaluation (rules/eval.smk): the checkpoint each evaluated stage names.
EVAL_STAGES = tuple(config["eval"]["stages"])
EVAL_MODELS = {
    "vocab": "results/checkpoints/vocab",
    "stage1": "results/checkpoints/stage1",
    "stage2": "results/checkpoints/stage2",
    "stage3": "results/checkpoints/stage3",
    "domain_lora": "results/checkpoints/domain_merged",
}


wildcard_constraints:
    stage="|".join(EVAL_MODELS),


def get_training_files():
    """Every file a model of this pipeline trains on (or whose tasks it was trained on)."""
    return [
        "results/data/stage1/tasks/tableqa.jsonl",
        "results/data/stage1/tasks/file.jsonl",
        "results/data/stage1/train.jsonl",
        *get_interaction_sets(),
        *get_rl_sets(),
        config["domain_lora"]["data"],
    ]
