# Stage 2: multi-ability cold-start SFT on interaction trajectories, <Execute> spans masked (RECIPE §4, §7).


rule train_stage2:
    input:
        model="results/checkpoints/stage1",
        data=get_interaction_sets(),
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
