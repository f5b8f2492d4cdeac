# Stage 1: single-ability SFT on the stage-1 mix (docs/recipe.md §3, §7).


rule train_stage1:
    input:
        model=rules.extend_vocab.output[0],
        data=[rules.stage1_mix.output.train],
    output:
        directory("results/checkpoints/stage1"),
    log:
        "logs/train_stage1.log",
    benchmark:
        "benchmarks/train_stage1.tsv"
    conda:
        TRAIN_ENV
    resources:
        gpu=config["stage1"]["gpus"],
    params:
        stage="stage1",
        hp=training_params("stage1"),
        mask_execute=True,
        runs_root=RUNS_ROOT,
    script:
        "../scripts/train_sft.py"
