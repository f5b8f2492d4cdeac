# Domain adaptation (docs/recipe.md §7): LoRA on the final checkpoint, then the adapters merged into a full model.


rule train_domain_lora:
    input:
        model=rules.train_stage3.output[0],
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
        base=rules.train_stage3.output[0],
        adapter=rules.train_domain_lora.output[0],
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
