"""Run a rule's script by hand, outside Snakemake, for debugging (the `mock_snakemake` pattern of PyPSA-Eur).

    python scripts/stage1_mix.py results/data/stage1/train.jsonl [--configfile config/my.yaml ...]
    python scripts/train_sft.py results/checkpoints/stage1 --configfile config/deepanalyze-8b.yaml \
        --replace-workflow-config     # as the SLURM profile runs the paper config
    python -m pdb scripts/stage1_mix.py results/data/stage1/train.jsonl

The target is one output file of the job to run. The workflow is loaded as Snakemake would load it (same Snakefile,
config files and checks), the rule that makes the target is found by Snakemake's own wildcard matching, and the
script gets the `snakemake` object a real job gets: inputs, outputs, params, wildcards, threads, resources, log and
config. Inputs are not built: they must exist (run Snakemake up to them first). The rule's log is written as usual
and echoed to stderr.

This uses Snakemake internals (`Workflow`, `DAG`, `Job`), as PyPSA's helper does; it is written against Snakemake
9 and tested (tests/test_debug.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .io import InputError


def mock_snakemake(
    target: str, configfiles: list[str] = (), replace_config: bool = False, snakefile: str = "Snakefile"
):
    """The `snakemake` object of the job that makes `target` (a path relative to the working directory); config
    files as `snakemake --configfile` takes them, `replace_config` as its `--replace-workflow-config`."""
    from snakemake.api import SnakemakeApi
    from snakemake.dag import DAG
    from snakemake.jobs import Job
    from snakemake.script import Snakemake
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet=None)) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(
                configfiles=[Path(p) for p in configfiles], replace_workflow_config=replace_config
            ),
            snakefile=Path(snakefile),
        )
        workflow = workflow_api._workflow
        rules = [r for r in workflow.rules if r.is_producer(target)]
        if not rules:
            raise InputError(f"{target}: no rule of {snakefile} makes this file")
        rule = rules[0]
        workflow.dag_settings = DAGSettings()
        job = Job(rule, DAG(workflow, rules=[rule]), wildcards_dict=rule.get_wildcards(target), targetfile=target)
        smk = Snakemake(
            job.input,
            job.output,
            job.params,
            job.wildcards,
            job.threads,
            job.resources,
            job.log,
            workflow.config,
            rule.name,
            None,
            Path(rule.script).parent if rule.script else None,
        )
        smk.script = rule.script
        return smk


def from_command_line(script: str):
    """Parse a hand-run script's command line; the job's `snakemake` object, checked to run this very script."""
    name = Path(script).name
    parser = argparse.ArgumentParser(
        prog=f"python scripts/{name}",
        description="Run this rule script by hand, outside Snakemake, for debugging: give one output file of the "
        "job to run (its inputs must exist). See docs/troubleshooting.md.",
    )
    parser.add_argument("target", help="an output file of the job, e.g. results/data/stage1/train.jsonl")
    parser.add_argument("--configfile", nargs="+", default=[], help="config overlays, as given to snakemake")
    parser.add_argument(
        "--replace-workflow-config",
        action="store_true",
        help="use the config files alone (with the schema's defaults), as the SLURM profile does",
    )
    args = parser.parse_args()
    smk = mock_snakemake(args.target, args.configfile, args.replace_workflow_config)
    if Path(smk.script or "").name != name:
        raise InputError(f"{args.target} is made by rule {smk.rule}, whose script is {smk.script}, not {name}")
    missing = [f for f in smk.input if not Path(f).exists()]
    if missing:
        raise InputError(
            f"{args.target}: rule {smk.rule} needs {len(missing)} input file(s) that do not exist yet, "
            f"first {missing[0]}; build them with snakemake first"
        )
    return smk
