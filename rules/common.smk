# Shared by all rule files. The config checks that run before any job, the environments, and the input functions
# of every stage, in sections named after the rule files they serve (in the Snakefile's include order). They live
# here rather than beside their rules because Snakemake's linter (`snakemake --lint`, run by `make lint`) rejects a
# rule file that also defines functions; each rule file's first lines name its section.

import json
import os
import sys
from pathlib import Path

# The project package, importable even where only Snakemake itself was installed.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from darecipe.config import ConfigError, check_paths, extra_set_path, load_schema, validate_config
from darecipe.fetch import RAW_ROOT
from darecipe.sets import (
    CATEGORIES,
    FILE_KINDS,
    RL_SETS,
    SET_ROLES,
    STAGE1_SETS,
    SYNTHESIS_KINDS,
    SYNTHESISED_SETS,
    alternation,
)
from darecipe import synthesis_plan


def _config_sources():
    return " + ".join(dict.fromkeys(str(f) for f in workflow.configfiles)) or "config"


try:
    _schema = load_schema(workflow.source_path("../config/schema.yaml"))
    validate_config(config, _schema, _config_sources())
    check_paths(config, _schema, _config_sources())
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


INTERACTION_CATEGORIES = tuple(CATEGORIES)


wildcard_constraints:
    category=alternation(INTERACTION_CATEGORIES),
    workspace="[A-Za-z0-9_.-]+",
    shard=r"\d+",
    batch=r"\d+",


def get_base_model():
    """The base checkpoint directory: built (tiny), downloaded (hub) or given (local)."""
    return config["base_model"]["path"]


# ---- Data sources (rules/download.smk, rules/released.smk) -----------------------------------------------------------
# Where the training data comes from (data.source): this pipeline's own sets, the released data set, or both.
DATA_SOURCE = config["data"]["source"]
OWN_DATA = DATA_SOURCE in ("synthesised", "both")
RELEASED_DATA = DATA_SOURCE in ("released", "both")
RELEASED = config["data"]["released"]
RELEASED_ROOT = RELEASED["path"] or RELEASED["download_dir"]


def raw_input(path):
    """A path in a download folder (resources/data/raw/<source>/...) is made by that source's download rule: depend on
    the folder. Any other path is an ordinary input file."""
    p = Path(path)
    for name in config["sources"]:
        root = Path(RAW_ROOT) / name
        if p == root or root in p.parents:
            return str(root)
    return path


def released_input(rel_glob):
    """A released file as an input: the file itself in a local copy (so a changed file reruns its job), the
    download folder when download_released fetches it."""
    if RELEASED["path"]:
        found = sorted(Path(RELEASED_ROOT).glob(rel_glob))
        if found:
            return [str(p) for p in found]
    return [RELEASED_ROOT]


# ---- Stage-2/3 data (rules/agent_data.smk, rules/stage2.smk, rules/stage3.smk) ---------------------------------------
# Stage-2/3 synthesis: one job per (category, workspace, batch), all known from the config (darecipe.synthesis_plan).
SYNTH_WORKSPACES = synthesis_plan.workspaces(config["synthesis"])
SYNTH_JOBS = {(j.category, j.workspace, str(j.batch)): j for j in synthesis_plan.jobs(config["synthesis"])}
SYNTH_SHARD = "results/data/synthesis/shards/{category}/{workspace}/{batch}"


def get_synth_shards(category, ext):
    return [f"results/data/synthesis/shards/{c}/{w}/{b}{ext}" for c, w, b in SYNTH_JOBS if c == category]


def get_synth_job(wildcards):
    return SYNTH_JOBS[(wildcards.category, wildcards.workspace, wildcards.batch)]


def get_workspace_input(wildcards):
    """A workspace built from a download folder waits for that download; shipped files need no rule."""
    ws = SYNTH_WORKSPACES[wildcards.workspace]
    return [raw_input(ws.root)] if ws.database else []


def get_all_workspaces():
    names = sorted({w for _, w, _ in SYNTH_JOBS})
    return [f"results/data/synthesis/workspaces/{name}" for name in names]


def get_interaction_sets():
    """This pipeline's own stage-2 trajectories: the accepted ones of every category (empty ones give empty files)."""
    return [f"results/data/synthesis/{category}.jsonl" for category in INTERACTION_CATEGORIES]


def get_released_interaction_sets():
    return [f"results/data/released/interaction/{category}.jsonl" for category in INTERACTION_CATEGORIES]


def get_stage2_trajectories():
    """The per-category trajectory files stage 2 trains on, as data.source says."""
    return (get_interaction_sets() if OWN_DATA else []) + (get_released_interaction_sets() if RELEASED_DATA else [])


def get_rl_sets():
    """The RL parquet sets stage 3 trains on, as data.source says."""
    own = [f"results/data/rl/{name}.parquet" for name in RL_SETS] if OWN_DATA else []
    return own + ([f"results/data/released/rl/{name}.parquet" for name in RL_SETS] if RELEASED_DATA else [])


def get_rl_workspace_root():
    """The folder holding every RL task's workspace at <data>/<workspace_id>/."""
    if DATA_SOURCE == "synthesised":
        return "results/data/rl/workspaces"
    if DATA_SOURCE == "released":
        return "results/data/released/rl/workspaces"
    return "results/data/rl/workspace_root"


def get_synthesis_metrics():
    """Metrics of the stage-2/3 data of this run: synthesis per category, released files read and checked."""
    own = [f"results/data/synthesis/{c}.metrics.json" for c in INTERACTION_CATEGORIES] if OWN_DATA else []
    released = [f"results/data/released/interaction/{c}.metrics.json" for c in INTERACTION_CATEGORIES]
    return own + (released + ["results/data/released/rl/metrics.json"] if RELEASED_DATA else [])


def get_release_products(*folders):
    """The released-layout folders (reasoning, interaction) this pipeline writes of its own data; none when it makes
    no data of its own (data.source: released)."""
    return [f"results/data/{f}" for f in folders or ("reasoning", "interaction")] if OWN_DATA else []


# ---- Params shared by every stage ------------------------------------------------------------------------------------
def canonical(value):
    """A params value with dict keys sorted at every level. Snakemake compares params by their text, so
    reordering keys in a YAML file (or defaults filled in another order) must not look like a change."""
    return json.loads(json.dumps(value, sort_keys=True))


def training_params(stage):
    """Every hyper-parameter of a stage, as one params value: a change reruns that stage and all after it."""
    return canonical(config[stage])


# ---- Stage-1 data (rules/stage1_data.smk) ----------------------------------------------------------------------------
# Stage-1 synthesis: one job per (set, shard); the shard count is in the config, so a dry run shows every job.
EXTRA_SET_NAMES = tuple(config["stage1_data"]["extra_sets"]) or ("no-extra-sets",)
RELEASED_STAGE1_SETS = tuple(RELEASED["stage1_sets"] or (n for n, s in STAGE1_SETS.items() if s.released))


def get_shards(set_name):
    n = config["stage1_data"]["shards"]
    return [f"results/data/stage1/shards/{set_name}/{i}.jsonl" for i in range(n)]


def get_stage1_synth_input(wildcards):
    """A synthesised set's task file, its teacher prompt, and what its kind needs besides (darecipe.stage1.KINDS)."""
    spec = STAGE1_SETS[wildcards.set]
    kind = SYNTHESIS_KINDS[spec.kind]
    out = {
        "tasks": f"results/data/stage1/tasks/{kind.tasks}.jsonl",
        "template": config["stage1_data"]["prompts"][spec.prompt],
    }
    if spec.refines:
        out["refines"] = f"results/data/stage1/sets/{spec.refines}.arrow"
    if kind.needs_cues:
        out["cues"] = config["stage1_data"]["cues"]
    return out


def get_stage1_sets():
    """This pipeline's own stage-1 sets: the synthesised ones and those the user supplies as files."""
    return list(SYNTHESISED_SETS) + sorted(config["stage1_data"]["extra_sets"])


def get_stage1_set_list():
    """(folder, set) of every stage-1 set the mix takes, as data.source says: results/data/stage1/sets/ holds this
    pipeline's own, results/data/stage1/released/ the released ones."""
    own = [("sets", s) for s in get_stage1_sets()] if OWN_DATA else []
    return own + ([("released", s) for s in RELEASED_STAGE1_SETS] if RELEASED_DATA else [])


def get_stage1_set_files(ext):
    return [f"results/data/stage1/{group}/{name}{ext}" for group, name in get_stage1_set_list()]


def stage1_mix_sets():
    """[display name, role] of each mixed set, in input order (released ones named `released:<set>`)."""
    return [[name if group == "sets" else f"released:{name}", SET_ROLES[name]] for group, name in get_stage1_set_list()]


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


# ---- Summary module (rules/summary.smk) ------------------------------------------------------------------------------
# Phase N trains from phase N-1's checkpoint, phase 1 from `summary.base`.
SUMMARY_PHASES = config["summary"]["phases"]
PIPELINE_CHECKPOINTS = ("vocab", "stage1", "stage2", "stage3")


def get_summary_base():
    base = config["summary"]["base"]
    return f"results/checkpoints/{base}" if base in PIPELINE_CHECKPOINTS else base


def get_summary_trajectories():
    """The stage-2 trajectories of this run (data.source), of the chosen categories (summary.pipeline_categories),
    when the config adds them to the summary module's traces."""
    if not config["summary"]["pipeline_trajectories"]:
        return []
    chosen = config["summary"]["pipeline_categories"]
    return [p for p in get_stage2_trajectories() if chosen is None or Path(p).stem in chosen]


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


# ---- Evaluation (rules/eval.smk) -------------------------------------------------------------------------------------
# The checkpoint each evaluated stage names.
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
    own_tasks = ["results/data/stage1/tasks/tableqa.jsonl", "results/data/stage1/tasks/file.jsonl"] if OWN_DATA else []
    return [
        *own_tasks,
        "results/data/stage1/train.jsonl",
        "results/data/stage2/train.jsonl",
        *get_rl_sets(),
        config["domain_lora"]["data"],
    ]


# ---- Teacher (every rule that asks the LLM) --------------------------------------------------------------------------
# The teacher (llm:). With a local vLLM teacher (llm.backend: vllm) every teacher rule serves the weights on its
# own GPUs, in an environment that has vLLM; otherwise the teacher is an endpoint and the rules need no GPU.
LOCAL_TEACHER = config["llm"]["backend"] == "vllm"
TEACHER_GPUS = config["llm"]["local"]["gpus"] if LOCAL_TEACHER else 0
TEACHER_ENV = "../envs/teacher-vllm.yaml" if LOCAL_TEACHER else "../envs/data.yaml"
