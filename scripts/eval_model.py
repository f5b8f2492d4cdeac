"""Rule eval_model: run the shared agent loop with one checkpoint on the held-out tasks and score it.

Generation: the local HF model (embedded default, CPU) or an OpenAI-compatible server (vLLM) started inside the
job and stopped after it (`eval.backend: vllm`). Writes trajectories.jsonl (one line per task) and eval.json."""

import shutil
import tempfile
from pathlib import Path

from tqdm import tqdm

from darecipe.agent import HFGenerator, State, run_agents
from darecipe.evaluation import aggregate, generated_text, score
from darecipe.io import read_jsonl, write_json, write_jsonl
from darecipe.loaders import TaskRecord, materialise_files
from darecipe.runlog import run_script
from darecipe.sandbox import SandboxLimits, describe_isolation
from darecipe.stage1 import file_prompt, student_prompt


def prepare(task: dict, data_root: Path, ws: Path) -> str:
    """The task's prompt, with its files (if any) copied into the workspace `ws`."""
    ws.mkdir(parents=True)
    rec = TaskRecord.from_json(task)
    if task["source"] == "file":
        return file_prompt(rec, materialise_files(rec.files, data_root, ws))
    if task["source"] == "dabstep":
        ctx = Path(task["meta"]["context_dir"])
        files = []
        for name in rec.files:
            shutil.copy2(ctx / name, ws / Path(name).name)
            files.append(ws / Path(name).name)
        return file_prompt(rec, files)
    return student_prompt(rec)  # table tasks: the table is in the prompt, as in stage-1 training


def generator_for(cfg: dict, model: Path, tokenizer, log, stack, server_log: Path):
    if cfg["backend"] == "hf":
        return HFGenerator(
            model,
            max_new_tokens=cfg["max_new_tokens"],
            temperature=cfg["temperature"],
            seed=cfg["seed"],
            batch_size=cfg["batch_size"],
        )
    from darecipe.serving import CompletionsGenerator, ModelServer

    s = cfg["server"]
    server = ModelServer(s["command"], model, server_log, s["startup_timeout_s"])
    base_url = stack.enter_context(server)
    log(f"model server ready at {base_url}: {' '.join(server.argv)}")
    return CompletionsGenerator(
        base_url, s["served_model_name"], tokenizer, cfg["max_new_tokens"], cfg["temperature"], s["max_in_flight"]
    )


def main(smk, log):
    from contextlib import ExitStack

    from transformers import AutoTokenizer

    cfg, stage = smk.params.cfg, smk.wildcards.stage
    model = Path(smk.input.model)
    tasks = [rec for _, rec in read_jsonl(smk.input.tasks)]
    limits = SandboxLimits.from_config(smk.params.sandbox)
    log(describe_isolation(limits))
    tok = AutoTokenizer.from_pretrained(model)
    log(f"eval {stage}: {len(tasks)} held-out tasks, model {model}, backend {cfg['backend']}")
    with tempfile.TemporaryDirectory(prefix=f"eval-{stage}-") as tmp, ExitStack() as stack:
        workspaces = [Path(tmp) / f"ws{i}" for i in range(len(tasks))]
        states = [State(t["id"], prepare(t, Path(cfg["data_root"]), ws)) for t, ws in zip(tasks, workspaces)]
        generate = generator_for(cfg, model, tok, log, stack, Path(f"{smk.log[0]}.server"))
        bar = tqdm(total=len(tasks), desc=f"eval {stage}", unit="task", dynamic_ncols=True, mininterval=1.0)

        def progress(turn):
            done = sum(("</Answer>" in s.text) or not s.text.endswith("</Execute>") for s in states)
            bar.set_postfix(turn=turn)
            bar.update(done - bar.n)

        trajs = run_agents(generate, states, workspaces, limits, max_turns=cfg["max_turns"], progress=progress)
        bar.update(len(tasks) - bar.n)
        bar.close()
    rows, lines = [], []
    for task, tr in zip(tasks, trajs):
        n_tokens = len(tok.encode(generated_text(tr.text), add_special_tokens=False))
        row = score(
            task,
            {"text": tr.text, "turns": tr.turns, "exec_ok": tr.exec_ok, "exec_total": tr.exec_total},
            cfg["rel_tol"],
            n_tokens,
        )
        rows.append(row)
        lines.append({**row, "stop": tr.stop, "prompt": tr.prompt, "trajectory": tr.text})
    metrics = aggregate(rows)
    metrics.update(
        stage=stage,
        model=str(model),
        backend=cfg["backend"],
        max_turns=cfg["max_turns"],
        max_new_tokens=cfg["max_new_tokens"],
    )
    write_jsonl(smk.output.trajectories, lines)
    write_json(smk.output.metrics, metrics)
    log(
        f"eval {stage}: accuracy {metrics['accuracy']}, completion {metrics['completion_rate']}, "
        f"format valid {metrics['format_validity']}, avg rounds {metrics['avg_rounds']}, "
        f"code success {metrics['code_success_rate']}, tokens/task {metrics['tokens_per_task']}"
    )


run_script(main, globals().get("snakemake"))
