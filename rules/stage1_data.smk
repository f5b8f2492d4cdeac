# Stage-1 data (docs/recipe.md §3): raw sets -> teacher distillation, keyword-guided refinement, table-to-text and file
# tasks (their code really runs) -> the released `reasoning/` files -> the seeded stage-1 mix.
# Input functions: rules/common.smk, section "Stage-1 data".


rule stage1_tasks:
    input:
        wikitq=raw_input(config["stage1_data"]["wikitq"]["tsv"]),
        finqa=raw_input(config["stage1_data"]["finqa"]["path"]),
        tatqa=raw_input(config["stage1_data"]["tatqa"]["path"]),
        file_tasks=config["stage1_data"]["file_tasks"],
        # held-out evaluation tasks never enter the stage-1 pool
        heldout=config["eval"]["heldout"],
        heldout_files=config["eval"]["file_tasks"],
    output:
        tableqa="results/data/stage1/tasks/tableqa.jsonl",
        tablegpt="results/data/stage1/tasks/tablegpt.jsonl",
        file="results/data/stage1/tasks/file.jsonl",
        rejects="results/data/stage1/tasks/rejects.jsonl",
    log:
        "logs/stage1_tasks.log",
    conda:
        "../envs/data.yaml"
    params:
        cfg=canonical(config["stage1_data"]),
    script:
        "../scripts/stage1_tasks.py"


# Every synthesised set (darecipe.sets: made_by synthesis) is one rule, per (set, shard): its kind says which task
# file it reads, how the teacher is asked and how a reply is checked (darecipe.stage1.KINDS).
rule stage1_synth:
    input:
        unpack(get_stage1_synth_input),
    output:
        shard="results/data/stage1/shards/{set}/{shard}.jsonl",
        rejects="results/data/stage1/shards/{set}/{shard}.rejects.jsonl",
        metrics="results/data/stage1/shards/{set}/{shard}.metrics.json",
    log:
        "logs/stage1_synth/{set}/{shard}.log",
    benchmark:
        "benchmarks/stage1_synth/{set}/{shard}.tsv"
    wildcard_constraints:
        set=alternation(SYNTHESISED_SETS),
    conda:
        TEACHER_ENV
    resources:
        gpu=TEACHER_GPUS,
    params:
        **synthesis_params(),
        kind=lambda wildcards: STAGE1_SETS[wildcards.set].kind,
        n_cues=config["stage1_data"]["n_cues"],
        sandbox=canonical(config["sandbox"]),
    script:
        "../scripts/stage1_synth.py"


rule stage1_merge_set:
    input:
        shards=lambda wildcards: get_shards(wildcards.set),
    output:
        records="results/data/stage1/sets/{set}.arrow",
        rejects="results/data/stage1/sets/{set}.rejects.jsonl",
        metrics="results/data/stage1/sets/{set}.metrics.json",
    log:
        "logs/stage1_merge_set/{set}.log",
    wildcard_constraints:
        set=alternation(SYNTHESISED_SETS),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/stage1_merge_set.py"


rule stage1_extra_set:
    input:
        lambda wildcards: raw_input(extra_set_path(config["stage1_data"]["extra_sets"][wildcards.set])),
    output:
        records="results/data/stage1/sets/{set}.arrow",
        rejects="results/data/stage1/sets/{set}.rejects.jsonl",
        metrics="results/data/stage1/sets/{set}.metrics.json",
    log:
        "logs/stage1_extra_set/{set}.log",
    wildcard_constraints:
        set=alternation(EXTRA_SET_NAMES),
    conda:
        "../envs/data.yaml"
    params:
        spec=lambda wildcards: canonical(config["stage1_data"]["extra_sets"][wildcards.set]),
    script:
        "../scripts/stage1_extra_set.py"


# Token length of every record with the training tokenizer, on all the job's cores (421K records in the release).
rule stage1_set_tokens:
    input:
        records="results/data/stage1/{group}/{set}.arrow",
        model=rules.extend_vocab.output[0],
    output:
        "results/data/stage1/{group}/{set}.tokens.parquet",
    log:
        "logs/stage1_set_tokens/{group}/{set}.log",
    benchmark:
        "benchmarks/stage1_set_tokens/{group}/{set}.tsv"
    wildcard_constraints:
        group="sets|released",
    conda:
        "../envs/data.yaml"
    threads: lambda wildcards: workflow.cores
    script:
        "../scripts/stage1_set_tokens.py"


rule reasoning_release:
    input:
        sets=expand("results/data/stage1/sets/{set}.arrow", set=get_stage1_sets()),
    output:
        directory("results/data/reasoning"),
    log:
        "logs/reasoning_release.log",
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/reasoning_release.py"


rule stage1_mix:
    input:
        sets=get_stage1_set_files(".arrow"),
        tokens=get_stage1_set_files(".tokens.parquet"),
    output:
        train="results/data/stage1/train.jsonl",
        stats="results/data/stage1/stats.json",
    log:
        "logs/stage1_mix.log",
    benchmark:
        "benchmarks/stage1_mix.tsv"
    conda:
        "../envs/data.yaml"
    params:
        mix=canonical(config["stage1_data"]["mix"]),
        max_tokens=config["stage1"]["max_length"],
        sets=stage1_mix_sets(),
    script:
        "../scripts/stage1_mix.py"
