# Evaluation of every stage on fixed held-out tasks (docs/recipe.md §7), the table across stages, and the report's plots.
# Input functions: rules/common.smk, section "Evaluation".


rule eval_tasks:
    input:
        heldout=config["eval"]["heldout"],
        file_tasks=config["eval"]["file_tasks"],
        training=get_training_files(),
    output:
        tasks="results/eval/tasks.jsonl",
        check="results/eval/disjointness.json",
    log:
        "logs/eval_tasks.log",
    conda:
        "../envs/data.yaml"
    params:
        cfg=canonical(config["eval"]),
    script:
        "../scripts/eval_tasks.py"


rule eval_model:
    input:
        model=lambda wildcards: EVAL_MODELS[wildcards.stage],
        tasks="results/eval/tasks.jsonl",
    output:
        metrics="results/eval/{stage}/eval.json",
        trajectories="results/eval/{stage}/trajectories.jsonl",
    log:
        "logs/eval_model/{stage}.log",
    benchmark:
        "benchmarks/eval_model/{stage}.tsv"
    conda:
        TRAIN_ENV
    resources:
        gpu=config["eval"]["gpus"],
    params:
        cfg=canonical(config["eval"]),
        sandbox=canonical(config["sandbox"]),
    script:
        "../scripts/eval_model.py"


rule eval_summary:
    input:
        metrics=expand("results/eval/{stage}/eval.json", stage=EVAL_STAGES),
        check="results/eval/disjointness.json",
    output:
        md=report("results/eval/summary.md", caption="../report/eval_summary.rst", category="Evaluation"),
        json="results/eval/summary.json",
    log:
        "logs/eval_summary.log",
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/eval_summary.py"


REPORT_FIGURES = {
    "stage1_mix": "Data",
    "token_lengths": "Data",
    "rejects": "Data",
    "llm_usage": "Data",
    "training_loss": "Training",
    "stage3_reward": "Training",
    "eval_stages": "Evaluation",
}


rule report_plots:
    input:
        stage1_stats=rules.stage1_mix.output.stats,
        token_files=get_stage1_set_files(".tokens.parquet"),
        set_metrics=get_stage1_set_files(".metrics.json"),
        synthesis_metrics=get_synthesis_metrics(),
        summary_metrics=["results/summary/samples.metrics.json", "results/summary/with_summary.metrics.json"],
        sft_models=[rules.train_stage1.output[0], rules.train_stage2.output[0], rules.train_domain_lora.output[0]],
        stage3=rules.train_stage3.output[0],
        eval_summary=rules.eval_summary.output.json,
    output:
        **{
            name: report(f"results/report/{name}.png", caption=f"../report/{name}.rst", category=category)
            for name, category in REPORT_FIGURES.items()
        },
    log:
        "logs/report_plots.log",
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/report_plots.py"
