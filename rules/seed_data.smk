# Stage inputs built from the hand-written seed set (resources/seed/); the synthesis stages replace them.


rule seed_stage1:
    input:
        seed=config["seed"]["stage1"],
    output:
        train="results/data/stage1/train.jsonl",
        stats="results/data/stage1/stats.json",
        rejects="results/data/stage1/rejects.jsonl",
    log:
        "logs/seed_stage1.log",
    conda:
        "../envs/data.yaml"
    params:
        data_root=config["seed"]["data_root"],
    script:
        "../scripts/seed_stage1.py"


rule seed_interaction:
    input:
        seed=config["seed"]["interaction"],
    output:
        sets=get_interaction_sets(),
        rejects="results/data/interaction/rejects.jsonl",
    log:
        "logs/seed_interaction.log",
    benchmark:
        "benchmarks/seed_interaction.tsv"
    conda:
        "../envs/data.yaml"
    params:
        data_root=config["seed"]["data_root"],
        sandbox=canonical(config["sandbox"]),
        counts=canonical(get_interaction_counts()),
    script:
        "../scripts/seed_interaction.py"


rule seed_rl:
    input:
        seed=config["seed"]["rl_tasks"],
    output:
        qa="results/data/rl/qa.parquet",
        datatask="results/data/rl/datatask.parquet",
        research="results/data/rl/research.parquet",
        workspaces=directory("results/data/rl/workspaces"),
    log:
        "logs/seed_rl.log",
    conda:
        "../envs/data.yaml"
    params:
        data_root=config["seed"]["data_root"],
    script:
        "../scripts/seed_rl.py"
