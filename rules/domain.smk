# Domain adaptation (docs/recipe.md §7): LoRA on the final checkpoint, then the adapters merged into a full model.


rule train_domain_lora:
    input:
        model="results/checkpoints/stage3",
        data=[config["domain_lora"]["data"]],
    output:
        directory("results/checkpoints/domain_lora"),
    log:
        "logs/train_domain_lora.log",
    benchmark:
        "benchmarks/train_domain_lora.tsv"
    conda:
        TRAIN_ENV
    resources:
        gpu=config["domain_lora"]["gpus"],
    params:
        stage="domain_lora",
        hp=training_params("domain_lora"),
        mask_execute=config["domain_lora"]["mask_execute"],
        runs_root=RUNS_ROOT,
    script:
        "../scripts/train_sft.py"


rule merge_domain_lora:
    input:
        base="results/checkpoints/stage3",
        adapter="results/checkpoints/domain_lora",
    output:
        directory("results/checkpoints/domain_merged"),
    log:
        "logs/merge_domain_lora.log",
    benchmark:
        "benchmarks/merge_domain_lora.tsv"
    conda:
        TRAIN_ENV
    script:
        "../scripts/merge_lora.py"
