"""Extending the pipeline in one place (docs/where-to-change-what.md): a new synthesised stage-1 set is one registry
entry in src/darecipe/sets.py, one prompt file and its recordings; the rules, wildcard constraints, config schema
and the stage-1 mix follow from the registry."""

import re

from conftest import copy_repo, job_counts, snakemake

ENTRY = '        Stage1Set("TableQA_stepwise", "data_science", "synthesis", 0, "distill", "distill_stepwise"),\n'


def test_a_new_synthesised_stage1_set_is_a_registry_entry_and_a_prompt_file(tmp_path):
    work = copy_repo(tmp_path)
    released = ("-n", "stage3_checkpoint", "--configfile", "config/deepanalyze-8b-released.yaml")
    released_before = job_counts(snakemake(work, *released).stdout)
    registry = work / "src/darecipe/sets.py"
    text = registry.read_text()
    anchor = '        Stage1Set("TableGPT",'
    assert anchor in text
    registry.write_text(text.replace(anchor, ENTRY + anchor))
    distill = (work / "config/prompts/distill.txt").read_text()
    (work / "config/prompts/distill_stepwise.txt").write_text(
        distill + "\nNumber every step of the reasoning (Step 1, Step 2, ...).\n"
    )

    dry = snakemake(work, "-n", "stage1_data").stdout
    counts = job_counts(dry)
    shards = 2  # config/config.yaml: stage1_data.shards
    assert counts["stage1_synth"] == 8 * shards  # the seven sets of the release and the new one
    new_jobs = re.findall(r"wildcards: set=TableQA_stepwise, shard=(\d+)", dry)
    assert sorted(new_jobs) == [str(i) for i in range(shards)]
    # its prompt comes from the registry's name (config key stage1_data.prompts.distill_stepwise, default file)
    assert "config/prompts/distill_stepwise.txt" in dry
    # merged, counted and mixed like every other set
    assert "results/data/stage1/sets/TableQA_stepwise.arrow" in dry
    assert "results/data/stage1/sets/TableQA_stepwise.tokens.parquet" in dry
    # a run from the released data takes only the sets the release has: the new set changes nothing there
    assert job_counts(snakemake(work, *released).stdout) == released_before

    # a missing prompt file is caught before any job, naming the key
    (work / "config/prompts/distill_stepwise.txt").unlink()
    proc = snakemake(work, "-n", "stage1_data", check=False)
    assert proc.returncode != 0
    assert "stage1_data.prompts.distill_stepwise" in proc.stdout + proc.stderr
