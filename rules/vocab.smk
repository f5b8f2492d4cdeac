if config["base_model"]["source"] == "gguf":

    rule build_gguf_model:
        output:
            directory(get_base_model()),
        log:
            "logs/build_gguf_model.log",
        benchmark:
            "benchmarks/build_gguf_model.tsv"
        conda:
            "../envs/train.yaml"
        params:
            gguf=canonical(config["base_model"]["gguf"]),
        script:
            "../scripts/build_gguf_model.py"


if config["base_model"]["source"] == "tiny":

    rule build_tiny_model:
        input:
            # a tokenizer stand-in (the paper's base model on Qwen3's BPE), when the config names one
            standin=config["base_model"]["tiny"]["tokenizer"] or [],
        output:
            directory(get_base_model()),
        log:
            "logs/build_tiny_model.log",
        benchmark:
            "benchmarks/build_tiny_model.tsv"
        conda:
            "../envs/train.yaml"
        params:
            spec=canonical(config["base_model"]["tiny"]),
        script:
            "../scripts/build_tiny_model.py"


if config["base_model"]["source"] == "hub":

    rule download_base_model:
        output:
            directory(get_base_model()),
        log:
            "logs/download_base_model.log",
        benchmark:
            "benchmarks/download_base_model.tsv"
        conda:
            "../envs/train.yaml"
        params:
            hub_id=config["base_model"]["hub_id"],
            revision=config["base_model"]["revision"],
        script:
            "../scripts/download_base_model.py"


rule extend_vocab:
    input:
        get_base_model(),
    output:
        directory("results/checkpoints/vocab"),
    log:
        "logs/extend_vocab.log",
    benchmark:
        "benchmarks/extend_vocab.tsv"
    conda:
        "../envs/train.yaml"
    params:
        vocab=canonical(config["vocab"]),
        # ms-swift model type and template (null: detected from the base model)
        chat={k: config["base_model"][k] for k in ("model_type", "template", "hub_id")},
    script:
        "../scripts/extend_vocab.py"
