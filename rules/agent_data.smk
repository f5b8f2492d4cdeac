# Stage-2 trajectories and stage-3 RL tasks (docs/recipe.md §4-§5): workspaces from the shipped data or from folders of
# SQLite databases, then per (category, workspace, batch) the questioner -> solver (code really runs) -> inspector,
# then per category the merged sets, the released interaction/ files and the RL parquet sets with one workspace
# per task.
# Input functions: rules/common.smk, section "Stage-2/3 data".


rule synth_workspace:
    input:
        get_workspace_input,
    output:
        directory("results/data/synthesis/workspaces/{workspace}"),
    log:
        "logs/synth_workspace/{workspace}.log",
    conda:
        "../envs/data.yaml"
    params:
        spec=lambda wildcards: canonical(SYNTH_WORKSPACES[wildcards.workspace].__dict__),
    script:
        "../scripts/synth_workspace.py"


# One job per (category, workspace, batch): `synthesis.tasks_per_job` sets how many tasks a batch asks for, so a
# 26K-trajectory run is hundreds of jobs, each with its own response cache (a rerun repeats no completed request).
rule synth_shard:
    input:
        workspace="results/data/synthesis/workspaces/{workspace}",
        questioner=config["synthesis"]["prompts"]["questioner"],
        solver=config["synthesis"]["prompts"]["solver"],
        inspector=config["synthesis"]["prompts"]["inspector"],
    output:
        sft=f"{SYNTH_SHARD}.jsonl",
        rl=f"{SYNTH_SHARD}.rl.jsonl",
        rejects=f"{SYNTH_SHARD}.rejects.jsonl",
        metrics=f"{SYNTH_SHARD}.metrics.json",
    log:
        "logs/synth_shard/{category}/{workspace}/{batch}.log",
    benchmark:
        "benchmarks/synth_shard/{category}/{workspace}/{batch}.tsv"
    conda:
        TEACHER_ENV
    resources:
        gpu=TEACHER_GPUS,
    params:
        job=lambda wildcards: canonical(get_synth_job(wildcards).__dict__),
        teacher=canonical({k: config["llm"][k] for k in ("backend", "model", "sampling")}),
        sandbox=canonical(config["sandbox"]),
        max_turns=config["synthesis"]["max_turns"],
        tasks_per_request=config["synthesis"]["tasks_per_request"],
    script:
        "../scripts/synth_shard.py"


rule synth_category:
    input:
        sft=lambda wildcards: get_synth_shards(wildcards.category, ".jsonl"),
        rl=lambda wildcards: get_synth_shards(wildcards.category, ".rl.jsonl"),
        rejects=lambda wildcards: get_synth_shards(wildcards.category, ".rejects.jsonl"),
        metrics=lambda wildcards: get_synth_shards(wildcards.category, ".metrics.json"),
    output:
        sft="results/data/synthesis/{category}.jsonl",
        rl="results/data/synthesis/{category}.rl.jsonl",
        rejects="results/data/synthesis/{category}.rejects.jsonl",
        metrics="results/data/synthesis/{category}.metrics.json",
    log:
        "logs/synth_category/{category}.log",
    # concatenating a category's shards takes a moment: not worth a SLURM job
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/synth_category.py"


rule interaction_release:
    input:
        sets=expand("results/data/synthesis/{category}.jsonl", category=INTERACTION_CATEGORIES),
    output:
        directory("results/data/interaction"),
    log:
        "logs/interaction_release.log",
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/interaction_release.py"


rule rl_sets:
    input:
        sets=expand("results/data/synthesis/{category}.rl.jsonl", category=INTERACTION_CATEGORIES),
        workspaces=get_all_workspaces(),
    output:
        **{name: f"results/data/rl/{name}.parquet" for name in RL_SETS},
        workspaces=directory("results/data/rl/workspaces"),
    log:
        "logs/rl_sets.log",
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/rl_sets.py"
