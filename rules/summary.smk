# Summary-enhanced agent SFT (docs/recipe.md §8): agent traces -> per-step samples -> teacher summaries (quotes checked
# against the results) -> summary-prefix / summary-only sets and a seeded split -> progressive training (phase N
# from phase N-1) -> evaluation on the validation sets.
# Input functions: rules/common.smk, section "Summary module".


rule summary_samples:
    input:
        traces=[t["path"] for t in config["summary"]["traces"]],
        trajectories=get_summary_trajectories(),
    output:
        multiturn="results/summary/multiturn.jsonl",
        samples="results/summary/samples.jsonl",
        rejects="results/summary/samples.rejects.jsonl",
        metrics="results/summary/samples.metrics.json",
    log:
        "logs/summary_samples.log",
    conda:
        "../envs/data.yaml"
    params:
        traces=canonical(config["summary"]["traces"]),
        pipeline_family=config["summary"]["pipeline_trajectories"],
        families=canonical(config["summary"]["tag_families"]),
    script:
        "../scripts/summary_samples.py"


rule summary_llm:
    input:
        samples=rules.summary_samples.output.samples,
        template=config["summary"]["prompt"],
    output:
        records="results/summary/with_summary.jsonl",
        rejects="results/summary/with_summary.rejects.jsonl",
        metrics="results/summary/with_summary.metrics.json",
    log:
        "logs/summary_llm.log",
    benchmark:
        "benchmarks/summary_llm.tsv"
    conda:
        TEACHER_ENV
    resources:
        gpu=TEACHER_GPUS,
    params:
        teacher=canonical({k: config["llm"][k] for k in ("backend", "model", "sampling")}),
        max_in_flight=config["summary"]["max_in_flight"],
        min_quote_chars=config["summary"]["min_quote_chars"],
    script:
        "../scripts/summary_llm.py"


rule summary_sets:
    input:
        multiturn=rules.summary_samples.output.multiturn,
        records=rules.summary_llm.output.records,
    output:
        summary_prefix="results/summary/summary_prefix.jsonl",
        summary_only="results/summary/summary_only.jsonl",
        parquet=expand(
            "results/summary/{set}_{split}.parquet",
            set=("summary_prefix", "summary_only", "multiturn"),
            split=("train", "val"),
        ),
        split="results/summary/split.json",
    log:
        "logs/summary_sets.log",
    conda:
        "../envs/data.yaml"
    params:
        val_ratio=config["summary"]["val_ratio"],
        seed=config["summary"]["seed"],
    script:
        "../scripts/summary_sets.py"


rule summary_stats:
    input:
        sets=expand(
            "results/summary/{set}_{split}.parquet",
            set=("multiturn", "summary_prefix", "summary_only"),
            split=("train", "val"),
        ),
        model=get_summary_base(),
    output:
        "results/summary/stats.json",
    log:
        "logs/summary_stats.log",
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/summary_stats.py"


rule train_summary_phase:
    input:
        model=get_summary_phase_model,
        data=get_summary_phase_data,
    output:
        directory("results/summary/checkpoints/phase{phase}"),
    log:
        "logs/train_summary_phase/{phase}.log",
    benchmark:
        "benchmarks/train_summary_phase/{phase}.tsv"
    wildcard_constraints:
        phase="|".join(str(n) for n in range(1, len(SUMMARY_PHASES) + 1)),
    conda:
        TRAIN_ENV
    resources:
        gpu=lambda wildcards: summary_phase(wildcards)["gpus"],
    params:
        stage=lambda wildcards: f"summary_phase{wildcards.phase}",
        hp=summary_phase,
        mask_execute=False,
        runs_root=RUNS_ROOT,
    script:
        "../scripts/train_sft.py"


rule summary_sft_eval:
    input:
        model=get_summary_checkpoint(),
        summary_prefix="results/summary/summary_prefix_val.parquet",
        summary_only="results/summary/summary_only_val.parquet",
        records=rules.summary_llm.output.records,
        stats=rules.summary_stats.output[0],
    output:
        json="results/summary/eval.json",
        md="results/summary/eval.md",
    log:
        "logs/summary_sft_eval.log",
    benchmark:
        "benchmarks/summary_sft_eval.tsv"
    conda:
        TRAIN_ENV
    resources:
        gpu=min(1, SUMMARY_PHASES[-1]["gpus"]),
    params:
        eval=canonical(config["summary"]["eval"]),
        families=canonical(config["summary"]["tag_families"]),
        min_quote_chars=config["summary"]["min_quote_chars"],
    script:
        "../scripts/summary_sft_eval.py"
