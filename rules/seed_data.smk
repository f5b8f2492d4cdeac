# Stage-2 and stage-3 inputs built from the hand-written seed set (resources/seed/) until issue 4's synthesis.


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
