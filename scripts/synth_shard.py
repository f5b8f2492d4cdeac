"""Rule synth_shard: questioner -> solver (real execution) -> inspector for one batch of tasks of one category of
docs/recipe.md §4 on one workspace (darecipe.synthesis_plan).

Writes the accepted trajectories (stage-2 records), the RL tasks (stage-3), rejects with the inspector's reasons,
and metrics. Every teacher call goes through the LLM layer (cache, retries, replay in the embedded default); each job
has its own caches, so a killed job, rerun, repeats none of its completed requests. With `llm.backend: vllm` the job
serves the teacher itself. A call that stayed unanswered (transport, limits, server) is not a reject: the rule fails
with the count per role (`llm.on_missing`), and a rerun asks exactly those again (the solver's earlier turns come
from the cache)."""

import tempfile
from pathlib import Path

from darecipe.agent import ChatGenerator, State, run_agents
from darecipe.io import Rejects, write_json, write_jsonl
from darecipe.llm import LLMRequest, LLMSettings, ResponseCache, report_missing, run_requests, sort_failure
from darecipe.prompts import load_template, task_prompt
from darecipe.runlog import run_script
from darecipe.sandbox import SandboxLimits, describe_isolation
from darecipe.serving import local_teacher
from darecipe.synthesis import (
    copy_workspace_files,
    deterministic_checks,
    inspector_messages,
    parse_tasks,
    parse_verdict,
    questioner_messages,
    rl_row,
    sft_record,
    solver_system,
    workspace_files,
)
from darecipe.synthesis_plan import Job, batch_note, id_part, requests


def main(smk, log):
    limits = SandboxLimits(**smk.params.sandbox)
    log(describe_isolation(limits))  # first: how the code will be isolated, or that it cannot be
    with local_teacher(LLMSettings.from_config(smk.config["llm"]), Path(f"{smk.log[0]}.teacher")) as settings:
        synthesise(smk, log, settings, limits)


def synthesise(smk, log, settings, limits):
    p = smk.params
    job = Job(**p.job)
    category = job.category
    cache_root = Path(smk.config["llm"]["cache_dir"]) / "synthesis" / category / job.workspace / str(job.batch)
    rejects, sft, rl = Rejects(), [], []
    missing = {"questioner": [], "solver": [], "inspector": []}  # unanswered teacher calls, asked again on rerun
    workspaces = {job.workspace: Path(smk.input.workspace)}
    log(
        f"{category}: workspace {job.workspace}, batch {job.batch + 1} of {job.batches}: {job.n_sft} trajectory "
        f"and {job.n_rl} RL tasks asked"
    )

    # 1. questioner
    q_tpl = load_template(smk.input.questioner)
    q_reqs, parts = [], requests(job, p.tasks_per_request)
    for name, ws in workspaces.items():
        for r, (n_sft, n_rl) in enumerate(parts):
            msgs = questioner_messages(q_tpl, category, name, workspace_files(ws), n_sft, n_rl)
            msgs[-1]["content"] += batch_note(job, r, len(parts))
            q_reqs.append(LLMRequest(f"{category}/{name}" + (f"/{r}" if len(parts) > 1 else ""), msgs))
    cache = ResponseCache(cache_root / "questioner.jsonl")
    q_res, q_tot = run_requests(settings, q_reqs, cache, progress=False)
    cache.close()
    tasks = []
    for r, (req, res) in enumerate(zip(q_reqs, q_res)):
        name = req.id.split("/")[1]
        if res.error:
            sort_failure(res, "questioner", req.id, missing["questioner"], rejects)
            continue
        found, problems = parse_tasks(res.text, category, name)
        for t in found:  # ids stay unique across the batches and requests of one (category, workspace)
            t.id = t.id.replace(f"{category}-{name}-", f"{category}-{name}-{id_part(job, r, len(parts))}", 1)
        tasks += found
        for prob in problems:
            rejects.add("questioner", req.id, f"unusable task: {prob}")
    sft_tasks = [t for t in tasks if t.purpose == "sft"]
    log(f"questioner: {len(sft_tasks)} trajectory tasks, {len(tasks) - len(sft_tasks)} RL tasks")

    for t in tasks:
        if t.purpose == "rl":
            files = workspace_files(workspaces[t.workspace])
            rl.append({"task": t.to_json(), "row": rl_row(t, task_prompt(t.task, files))})

    # 2. solver: the agent loop, for real, each trajectory in its own copy of the workspace
    s_tpl = load_template(smk.input.solver)
    by_id = {t.id: t for t in sft_tasks}
    with tempfile.TemporaryDirectory(prefix=f"synth-{category}-") as tmp:
        copies = []
        for t in sft_tasks:
            dest = Path(tmp) / t.id / "ws"
            copy_workspace_files(workspaces[t.workspace], dest)
            copies.append(dest)
        states = [State(t.id, task_prompt(t.task, workspace_files(workspaces[t.workspace]))) for t in sft_tasks]
        solver_cache = ResponseCache(cache_root / "solver.jsonl")
        solver = ChatGenerator(settings, solver_cache, lambda s: solver_system(s_tpl, by_id[s.id]))
        trajs = run_agents(
            solver,
            states,
            copies,
            limits,
            max_turns=p.max_turns,
            on_no_code="stop",
            progress=lambda turn: log(f"solver: turn {turn} done"),
        )
        solver_cache.close()

    # 3. inspector: deterministic checks, then the checklist through the LLM
    i_tpl = load_template(smk.input.inspector)
    to_judge = []
    for traj in trajs:
        if traj.stop == "error":  # the solver's teacher call failed: unanswered, or refused for its content
            sort_failure(traj, "solver", traj.id, missing["solver"], rejects)
            continue
        reasons = deterministic_checks(traj)
        if reasons:
            rejects.add("inspector (deterministic)", traj.id, "; ".join(reasons))
        else:
            to_judge.append(traj)
    i_reqs = [LLMRequest(t.id, inspector_messages(i_tpl, by_id[t.id], t)) for t in to_judge]
    cache = ResponseCache(cache_root / "inspector.jsonl")
    i_res, i_tot = run_requests(settings, i_reqs, cache, progress=False)
    cache.close()
    for traj, res in zip(to_judge, i_res):
        if res.error:
            sort_failure(res, "inspector", traj.id, missing["inspector"], rejects)
            continue
        verdict = parse_verdict(res.text)
        if not verdict.accept:
            rejects.add("inspector", traj.id, "rejected by the inspector: " + "; ".join(verdict.reasons))
        else:
            sft.append(sft_record(by_id[traj.id], traj))

    unanswered = report_missing(missing, settings)
    write_jsonl(smk.output.sft, sft)
    write_jsonl(smk.output.rl, rl)
    write_jsonl(smk.output.rejects, rejects)
    llm = {
        role: tot.as_dict() for role, tot in (("questioner", q_tot), ("solver", solver.totals), ("inspector", i_tot))
    }
    write_json(
        smk.output.metrics,
        {
            "category": category,
            "workspace": job.workspace,
            "batch": job.batch,
            "tasks": len(tasks),
            "trajectories": len(trajs),
            "accepted": len(sft),
            "rl_tasks": len(rl),
            "rejected": len(rejects),
            "reject_reasons": rejects.counts(),
            "missing": unanswered,
            "llm": llm,
        },
    )
    log(f"{category}: {len(sft)} trajectories accepted, {len(rl)} RL tasks, {len(rejects)} rejected {rejects.counts()}")
    for r in rejects:
        log(f"  rejected {r['id']} ({r['where']}): {r['reason']}")


run_script(main, globals().get("snakemake"))
