# Stage 3: multi-turn GRPO with real code execution in per-rollout workspaces (docs/recipe.md §5-§7).
# Input functions: rules/common.smk, section "Stage-2/3 data".


rule stage3_dataset:
    input:
        sets=get_rl_sets(),
    output:
        "results/data/rl/swift_train.jsonl",
    log:
        "logs/stage3_dataset.log",
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/stage3_dataset.py"


rule train_stage3:
    input:
        model=rules.train_stage2.output[0],
        data=rules.stage3_dataset.output[0],
        workspaces=get_rl_workspace_root(),
        rl_sets=get_rl_sets(),
        judge_prompts=list(config["judge"]["prompts"].values()),
    output:
        directory("results/checkpoints/stage3"),
    log:
        "logs/train_stage3.log",
    benchmark:
        "benchmarks/train_stage3.tsv"
    conda:
        STAGE3_ENV
    resources:
        gpu=config["stage3"]["gpus"],
    params:
        hp=training_params("stage3"),
        sandbox=canonical(config["sandbox"]),
        # what the reward depends on (endpoint and concurrency settings do not change it)
        judge_identity=canonical(
            {k: config["judge"][k] for k in ("backend", "model", "sampling", "prompts", "on_unparseable")}
        ),
        runs_root=RUNS_ROOT,
    script:
        "../scripts/train_grpo.py"
