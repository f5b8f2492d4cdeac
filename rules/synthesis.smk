# Stage-2 trajectories and stage-3 RL tasks (RECIPE §4-§5): workspaces from the shipped data, then per
# category the questioner -> solver (code really runs) -> inspector, then the released interaction/ files and
# the RL parquet sets with one workspace per task.


rule synth_workspace:
    output:
        directory("results/data/synthesis/workspaces/{workspace}"),
    log:
        "logs/synth_workspace/{workspace}.log",
    conda:
        "../envs/data.yaml"
    params:
        files=lambda wildcards: canonical(config["synthesis"]["workspaces"][wildcards.workspace]),
        data_root=config["synthesis"]["data_root"],
    script:
        "../scripts/synth_workspace.py"


rule synth_category:
    input:
        workspaces=lambda wildcards: get_category_workspaces(wildcards.category),
        questioner=config["synthesis"]["prompts"]["questioner"],
        solver=config["synthesis"]["prompts"]["solver"],
        inspector=config["synthesis"]["prompts"]["inspector"],
    output:
        sft="results/data/synthesis/{category}.jsonl",
        rl="results/data/synthesis/{category}.rl.jsonl",
        rejects="results/data/synthesis/{category}.rejects.jsonl",
        metrics="results/data/synthesis/{category}.metrics.json",
    log:
        "logs/synth_category/{category}.log",
    benchmark:
        "benchmarks/synth_category/{category}.tsv"
    conda:
        TEACHER_ENV
    resources:
        gpu=TEACHER_GPUS,
    params:
        teacher=canonical({k: config["llm"][k] for k in ("backend", "model", "sampling")}),
        sandbox=canonical(config["sandbox"]),
        sft_per_workspace=config["synthesis"]["sft_per_workspace"],
        rl_per_workspace=config["synthesis"]["rl_per_workspace"],
        max_turns=config["synthesis"]["max_turns"],
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
        qa="results/data/rl/qa.parquet",
        datatask="results/data/rl/datatask.parquet",
        research="results/data/rl/research.parquet",
        workspaces=directory("results/data/rl/workspaces"),
    log:
        "logs/rl_sets.log",
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/rl_sets.py"
