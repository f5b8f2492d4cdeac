# Data fetched from the network: only here, in explicit rules run once (a pinned hub revision or a URL, every file's
# sha256 in the log). No training or synthesis job downloads anything (the base model's rule is in vocab.smk).
# Input functions: rules/common.smk, section "Data sources".


# Raw upstream data sets (config `sources`): resources/data/raw/<source>/.
rule download_source:
    output:
        directory(f"{RAW_ROOT}/{{source}}"),
    log:
        "logs/download_source/{source}.log",
    benchmark:
        "benchmarks/download_source/{source}.tsv"
    wildcard_constraints:
        source=alternation(config["sources"]) or "no-sources",
    conda:
        "../envs/data.yaml"
    params:
        spec=lambda wildcards: canonical(config["sources"][wildcards.source]),
    script:
        "../scripts/download_source.py"


if RELEASED_DATA and not RELEASED["path"]:

    # The released DataScience-Instruct-500K: the repository's files as they are (not a `datasets` conversion,
    # which merges every file into one split; docs/data.md).
    rule download_released:
        output:
            directory(RELEASED["download_dir"]),
        log:
            "logs/download_released.log",
        benchmark:
            "benchmarks/download_released.tsv"
        conda:
            "../envs/data.yaml"
        params:
            spec={"hub_id": RELEASED["hub_id"], "revision": RELEASED["revision"], "repo_type": "dataset"},
        script:
            "../scripts/download_source.py"
