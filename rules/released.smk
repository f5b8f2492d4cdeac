# The released DataScience-Instruct-500K as training data (data.source: released | both; docs/data.md): each stage's
# files read and validated (schema, tag structure, counts against file names), the RL workspaces unpacked from
# RL/data.zip, and each RL row's workspace checked. Unusable records are counted rejects naming file and record.
# Input functions: rules/common.smk, section "Data sources".


rule released_stage1_set:
    input:
        lambda wildcards: released_input(f"reasoning/{wildcards.set}_*.json"),
    output:
        records="results/data/stage1/released/{set}.arrow",
        rejects="results/data/stage1/released/{set}.rejects.jsonl",
        metrics="results/data/stage1/released/{set}.metrics.json",
    log:
        "logs/released_stage1_set/{set}.log",
    benchmark:
        "benchmarks/released_stage1_set/{set}.tsv"
    wildcard_constraints:
        set=alternation(STAGE1_SETS),
    conda:
        "../envs/data.yaml"
    params:
        root=lambda wildcards: RELEASED_ROOT,
        strict=RELEASED["strict_counts"],
    script:
        "../scripts/released_stage1_set.py"


rule released_interaction:
    input:
        lambda wildcards: released_input(f"interation/{wildcards.category}_*.json")
        + released_input(f"interaction/{wildcards.category}_*.json"),
    output:
        records="results/data/released/interaction/{category}.jsonl",
        rejects="results/data/released/interaction/{category}.rejects.jsonl",
        metrics="results/data/released/interaction/{category}.metrics.json",
    log:
        "logs/released_interaction/{category}.log",
    benchmark:
        "benchmarks/released_interaction/{category}.tsv"
    conda:
        "../envs/data.yaml"
    params:
        root=lambda wildcards: RELEASED_ROOT,
        strict=RELEASED["strict_counts"],
    script:
        "../scripts/released_interaction.py"


rule unpack_released_workspaces:
    input:
        released_input("RL/data.zip"),
    output:
        directory("results/data/released/rl/workspaces"),
    log:
        "logs/unpack_released_workspaces.log",
    benchmark:
        "benchmarks/unpack_released_workspaces.tsv"
    conda:
        "../envs/data.yaml"
    params:
        root=lambda wildcards: RELEASED_ROOT,
    script:
        "../scripts/unpack_released_workspaces.py"


rule released_rl_sets:
    input:
        files=released_input("RL/*.parquet"),
        workspaces="results/data/released/rl/workspaces",
    output:
        **{name: f"results/data/released/rl/{name}.parquet" for name in RL_SETS},
        rejects="results/data/released/rl/rejects.jsonl",
        metrics="results/data/released/rl/metrics.json",
    log:
        "logs/released_rl_sets.log",
    conda:
        "../envs/data.yaml"
    params:
        root=lambda wildcards: RELEASED_ROOT,
        folders=canonical(RELEASED["workspace_folders"]),
    script:
        "../scripts/released_rl_sets.py"


# data.source both: one root whose <data>/ folders link to this pipeline's workspaces and the released ones.
rule rl_workspace_root:
    input:
        own="results/data/rl/workspaces",
        released="results/data/released/rl/workspaces",
    output:
        directory("results/data/rl/workspace_root"),
    log:
        "logs/rl_workspace_root.log",
    localrule: True
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/rl_workspace_root.py"
