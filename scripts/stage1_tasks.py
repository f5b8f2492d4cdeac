"""Rule stage1_tasks: raw WikiTQ / FinQA / TAT-QA / file tasks -> normalised task records (+ rejects)."""

from pathlib import Path

from darecipe.evaluation import heldout_ids
from darecipe.io import Rejects, write_jsonl
from darecipe.loaders import load_file_tasks, load_finqa, load_tatqa, load_wikitq
from darecipe.runlog import run_script
from darecipe.stage1 import tablegpt_tasks


def main(smk, log):
    cfg = smk.params.cfg
    rejects = Rejects()
    # paths from the config: an input may be the download folder that holds them (resources/data/raw/<source>)
    wikitq = load_wikitq(Path(cfg["wikitq"]["tsv"]), Path(cfg["wikitq"]["root"]), rejects, cfg["wikitq"]["limit"])
    finqa = load_finqa(Path(cfg["finqa"]["path"]), rejects, cfg["finqa"]["limit"])
    tatqa = load_tatqa(Path(cfg["tatqa"]["path"]), rejects, cfg["tatqa"]["limit"])
    files = load_file_tasks(Path(smk.input.file_tasks), Path(cfg["data_root"]), rejects)
    held = heldout_ids(smk.input.heldout, smk.input.heldout_files)
    kept = [[t for t in ts if t.id not in held] for ts in (wikitq, finqa, tatqa, files)]
    excluded = sum(len(a) - len(b) for a, b in zip((wikitq, finqa, tatqa, files), kept))
    wikitq, finqa, tatqa, files = kept
    log(f"excluded {excluded} held-out evaluation tasks ({smk.input.heldout}, {smk.input.heldout_files})")
    tables, seen = [], set()
    for t in wikitq:
        if t.meta["context"] not in seen:
            seen.add(t.meta["context"])
            tables.append((t.meta["context"].removeprefix("csv/").removesuffix(".csv").replace("/", "-"), t.table))
    tablegpt = tablegpt_tasks(tables[: cfg["tablegpt_tables"]] if cfg["tablegpt_tables"] is not None else tables)
    write_jsonl(smk.output.tableqa, (t.to_json() for t in wikitq + finqa + tatqa))
    write_jsonl(smk.output.tablegpt, (t.to_json() for t in tablegpt))
    write_jsonl(smk.output.file, (t.to_json() for t in files))
    write_jsonl(smk.output.rejects, rejects)
    log(
        f"tasks: wikitq {len(wikitq)}, finqa {len(finqa)}, tatqa {len(tatqa)}, tablegpt {len(tablegpt)}, file {len(files)}"
    )
    log(f"rejected {len(rejects)}: {rejects.counts()}")
    for r in rejects:
        log(f"  rejected {r['id']} ({r['where']}): {r['reason']}")


run_script(main, globals().get("snakemake"))
