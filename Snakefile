# DeepAnalyze training recipe, end to end: data -> vocabulary -> stage 1 SFT -> stage 2 SFT -> stage 3 GRPO.
# The embedded default (config/config.yaml) runs offline on a CPU; config/deepanalyze-8b.yaml is the paper run.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/download.smk"
include: "rules/vocab.smk"
include: "rules/stage1_data.smk"
include: "rules/agent_data.smk"
include: "rules/released.smk"
include: "rules/stage1.smk"
include: "rules/stage2.smk"
include: "rules/stage3.smk"
include: "rules/summary.smk"
include: "rules/domain.smk"
include: "rules/eval.smk"


rule all:
    default_target: True
    input:
        rules.train_stage3.output,
        get_release_products(),
        get_summary_checkpoint(),
        rules.summary_sft_eval.output.json,
        rules.merge_domain_lora.output,
        rules.eval_summary.output.md,
        expand("results/report/{name}.png", name=REPORT_FIGURES),
    localrule: True


rule stage1_data:
    input:
        rules.stage1_mix.output.train,
        get_release_products("reasoning"),
    localrule: True


rule stage1_checkpoint:
    input:
        rules.train_stage1.output,
    localrule: True


rule stage2_checkpoint:
    input:
        rules.train_stage2.output,
    localrule: True


rule stage3_checkpoint:
    input:
        rules.train_stage3.output,
        # this pipeline's own data sets, in the released layout, are products of the recipe too
        get_release_products(),
    localrule: True


rule domain_lora:
    input:
        rules.merge_domain_lora.output,
        "results/eval/domain_lora/eval.json",
    localrule: True


rule evaluation:
    input:
        rules.eval_summary.output.md,
    localrule: True


# Summary-enhanced SFT (module 2): the last phase's checkpoint (phase3 with the default schedule) and its evaluation.
rule summary_sft_checkpoint:
    input:
        get_summary_checkpoint(),
        rules.summary_sft_eval.output.json,
    localrule: True


# No declared output, so `snakemake plan` prints the table every time it is asked; it also writes results/plan.json.
rule plan:
    log:
        "logs/plan.log",
    localrule: True
    conda:
        "envs/data.yaml"
    params:
        out="results/plan.json",
    script:
        "scripts/plan.py"
