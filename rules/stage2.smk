# Stage 2: multi-ability cold-start SFT on interaction trajectories, <Execute> spans masked (docs/recipe.md §4, §7).
# Input functions: rules/common.smk, section "Stage-2/3 data".


# The trajectories of data.source (this pipeline's, the released ones, or both) as one file, each record's
# `provenance` field saying where it comes from.
rule stage2_data:
    input:
        sets=get_stage2_trajectories(),
    output:
        train="results/data/stage2/train.jsonl",
        stats="results/data/stage2/stats.json",
    log:
        "logs/stage2_data.log",
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/stage2_data.py"


rule train_stage2:
    input:
        model=rules.train_stage1.output[0],
        data=[rules.stage2_data.output.train],
    output:
        directory("results/checkpoints/stage2"),
    log:
        "logs/train_stage2.log",
    benchmark:
        "benchmarks/train_stage2.tsv"
    conda:
        TRAIN_ENV
    resources:
        gpu=config["stage2"]["gpus"],
    params:
        stage="stage2",
        hp=training_params("stage2"),
        mask_execute=True,
        runs_root=RUNS_ROOT,
    script:
        "../scripts/train_sft.py"
