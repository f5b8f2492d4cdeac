"""The teacher at paper scale through the pipeline: unanswered requests are reported missing (not rejected) and a
plain rerun completes them; the local vLLM teacher's commands rendered from config and run against the test
server's stand-ins for `vllm serve` and `vllm run-batch` (no GPU here); the SLURM profile's teacher entries."""

import hashlib
import json
import re
import sys
from collections import Counter

import pytest
import yaml
from conftest import REPO, copy_repo, job_counts, snakemake
from test_agent_synthesis import teacher

from darecipe.config import ConfigError, check_llm, load_schema, render_command, validate_config
from darecipe.llm import LLMResult, LLMSettings, MissingResponses, report_missing
from darecipe.testserver import FAULTS, FakeOpenAI

STANDIN = [sys.executable, "-m", "darecipe.testserver"]
TRANSPORT = re.compile(r"HTTP (408|409|429|5\d\d)|timeout|connection error|unparseable|no answer after")


def paper_llm(**local) -> dict:
    cfg = yaml.safe_load((REPO / "config/deepanalyze-8b.yaml").read_text())
    validate_config(cfg, load_schema(REPO / "config/schema.yaml"))
    cfg["llm"]["local"].update(local)
    return cfg


class Faults:
    """30 % of the attempts of every request fail (429, 500, hang, malformed or truncated body), decided by a hash
    of the request and its attempt number, so the same requests fail on every run. The questioner's single
    request fails its first attempt (so every role meets faults), and two requests fail every attempt (the
    solver's second turn on the departments task, the inspector's call on the rows task)."""

    def __init__(self):
        self.on = True
        self.attempts: Counter = Counter()
        self.faults_by_role: Counter = Counter()
        self.answered: set[str] = set()  # requests answered while the faults were on
        self.sent_after: list[str] = []  # requests sent once they were off

    def __call__(self, n, body):
        msgs = body["messages"]
        h = hashlib.sha256(json.dumps(msgs, sort_keys=True).encode()).hexdigest()
        if not self.on:
            self.sent_after.append(h)
            return None
        self.attempts[h] += 1
        text = msgs[-1]["content"]
        role = (
            "questioner"
            if text.startswith("You are the questioner")
            else "inspector"
            if text.startswith("You are the inspector")
            else "solver"
        )
        always = (
            (role == "solver" and len(msgs) > 2 and "departments" in msgs[1]["content"])
            or (role == "inspector" and "How many rows" in text)
            or (role == "questioner" and self.attempts[h] == 1)
        )
        draw = int(hashlib.sha256(f"{h}:{self.attempts[h]}".encode()).hexdigest(), 16)
        if always or draw % 1000 < 300:
            self.faults_by_role[role] += 1
            return FAULTS[draw % len(FAULTS)]
        self.answered.add(h)
        return None


def test_unanswered_requests_fail_the_rule_with_their_count_and_a_plain_rerun_completes_them(
    tmp_path_factory, monkeypatch
):
    monkeypatch.setenv("DARECIPE_TEST_KEY", "sk-dummy")
    faults = Faults()
    target = "results/data/synthesis/data_analysis.jsonl"
    with FakeOpenAI(reply=teacher, fault_plan=faults) as server:
        work = copy_repo(tmp_path_factory.mktemp("faults"))
        overlay = {
            "llm": {
                "backend": "openai",
                "model": "teacher",
                "base_url": server.base_url,
                "api_key_env": "DARECIPE_TEST_KEY",
                "max_retries": 2,
                "timeout_s": 1.0,
                "backoff_s": 0.01,
                "backoff_max_s": 0.05,
            }
        }
        (work / "overlay.yaml").write_text(yaml.safe_dump(overlay))
        args = (target, "--cores", "1", "--configfile", "config/config.yaml", "overlay.yaml")
        first = snakemake(work, *args, check=False)
        assert first.returncode != 0
        log = (work / "logs/synth_shard/data_analysis/simpson/0.log").read_text()
        m = re.search(r"(\d+) teacher request\(s\) unanswered \(([^;]*);", first.stderr)
        assert m, first.stderr[-3000:]
        counts = dict((role, int(n)) for role, n in (part.split() for part in m.group(2).split(", ")))
        assert (
            counts.get("solver", 0) >= 1 and counts.get("inspector", 0) >= 1 and int(m.group(1)) == sum(counts.values())
        )
        assert "a plain rerun asks exactly these again" in log
        assert set(faults.faults_by_role) == {"questioner", "solver", "inspector"}  # every role met faults
        assert not (work / target).exists()

        faults.on = False
        snakemake(work, *args)
        assert not set(faults.sent_after) & faults.answered  # nothing answered before was asked again
    out = work / "results/data/synthesis"
    accepted = [json.loads(line) for line in (out / "data_analysis.jsonl").read_text().splitlines()]
    rejects = [json.loads(line) for line in (out / "data_analysis.rejects.jsonl").read_text().splitlines()]
    # the same result as a run without faults (tests/test_agent_synthesis.py)
    assert len(accepted) == 1 and "<Execute>\n(2000, 5)\n</Execute>" in accepted[0]["messages"][1]["content"]
    assert [(r["where"], r["reason"]) for r in rejects] == [
        ("inspector", "rejected by the inspector: the answer lacks the department names")
    ]
    assert not any(TRANSPORT.search(r["reason"]) for r in rejects)
    metrics = json.loads((out / "data_analysis.metrics.json").read_text())
    assert metrics["missing"] == {} and metrics["accepted"] == 1


def test_missing_requests_can_be_written_without_instead(caplog):
    gone = [LLMResult("t1", "k", None, error="no answer after 3 attempt(s): HTTP 503", retryable=True)]
    with pytest.raises(MissingResponses, match=r"1 teacher request\(s\) unanswered \(solver 1; first: t1: .*HTTP 503"):
        report_missing({"solver": gone, "inspector": []}, LLMSettings())
    with caplog.at_level("WARNING"):
        assert report_missing({"solver": gone}, LLMSettings(on_missing="write")) == {"solver": 1}
    assert "written without them" in caplog.text and "--forcerun" in caplog.text


def test_local_teacher_commands_are_rendered_from_the_paper_config():
    cfg = paper_llm(model="/models/teacher")
    s = LLMSettings.from_config(cfg["llm"])
    serve = render_command(
        s.local.serve_command,
        "llm.local.serve_command",
        model=s.local.model,
        port=8123,
        name=s.model,
        gpus=s.local.gpus,
    )
    batch = render_command(
        s.local.run_batch_command,
        "llm.local.run_batch_command",
        input="/tmp/in.jsonl",
        output="/tmp/out.jsonl",
        model=s.local.model,
        name=s.model,
        gpus=s.local.gpus,
    )
    assert serve == [
        "vllm",
        "serve",
        "/models/teacher",
        "--port",
        "8123",
        "--host",
        "127.0.0.1",
        "--served-model-name",
        s.model,
        "--tensor-parallel-size",
        "8",
        "--max-model-len",
        "32768",
    ]
    assert batch == [
        "vllm",
        "run-batch",
        "-i",
        "/tmp/in.jsonl",
        "-o",
        "/tmp/out.jsonl",
        "--model",
        "/models/teacher",
        "--served-model-name",
        s.model,
        "--tensor-parallel-size",
        "8",
        "--max-model-len",
        "32768",
    ]
    # The config is checked before any job runs: weights required, placeholders known.
    cfg["llm"]["backend"] = "vllm"
    with pytest.raises(ConfigError, match="llm.local.model: /models/teacher is not a directory"):
        check_llm(cfg)
    cfg["llm"]["local"].update(model=str(REPO / "config"), run_batch_command=["vllm", "run-batch", "-i", "{inptu}"])
    with pytest.raises(ConfigError, match=r"llm.local.run_batch_command: unknown placeholder \{inptu\}"):
        check_llm(cfg)


def test_local_teacher_runs_the_rendered_commands_inside_the_jobs(tmp_path_factory):
    """stage-1 distillation in batch mode through `run-batch`, multi-turn synthesis through a server the job
    starts: the schema's default commands, with the test server standing in for the `vllm` executable and
    answering from the recordings, give exactly what the replay backend gives."""
    work = copy_repo(tmp_path_factory.mktemp("local"))
    targets = ["results/data/stage1/shards/TableQA_distillation/0.jsonl", "results/data/synthesis/data_analysis.jsonl"]
    snakemake(work, *targets, "--cores", "2")
    replayed = {t: (work / t).read_text() for t in targets}
    schema_local = load_schema(REPO / "config/schema.yaml")["properties"]["llm"]["properties"]["local"]["properties"]
    replay = ["--replay", "resources/recordings"]
    (work / "weights").mkdir()
    local = {
        "model": "weights",
        "gpus": 1,
        "serve_command": STANDIN + schema_local["serve_command"]["default"][1:] + replay,
        "run_batch_command": STANDIN + schema_local["run_batch_command"]["default"][1:] + replay,
    }
    overlay = {"llm": {"backend": "vllm", "mode": "batch", "local": local, "cache_dir": "results/cache/llm-local"}}
    (work / "local.yaml").write_text(yaml.safe_dump(overlay))
    run = snakemake(work, *targets, "--cores", "2", "--configfile", "config/config.yaml", "local.yaml")
    # the teacher changed: the teacher jobs rerun, and the category's merge of its shards
    assert job_counts(run.stderr) == {"stage1_synth": 1, "synth_shard": 1, "synth_category": 1}
    for t in targets:
        assert (work / t).read_text() == replayed[t]
    distill_log = (work / "logs/stage1_synth/TableQA_distillation/0.log").read_text()
    assert "local batch:" in distill_log and "run-batch -i" in distill_log and "--tensor-parallel-size 1" in distill_log
    synth_log = (work / "logs/synth_shard/data_analysis/simpson/0.log").read_text()
    assert "local teacher ready at http://127.0.0.1:" in synth_log and "serve weights --port" in synth_log
    metrics = json.loads((work / "results/data/stage1/shards/TableQA_distillation/0.metrics.json").read_text())
    assert metrics["llm"]["batches"] == 1 and metrics["llm"]["batch_responses"] == metrics["tasks"] > 0


def test_slurm_profile_has_entries_for_the_local_teacher_and_batch_mode():
    text = (REPO / "profiles/slurm/config.yaml").read_text()
    dry = snakemake(REPO, "-n", "--forceall", "all")
    rules = set(job_counts(dry.stdout))
    for block in ("local teacher", "API batch mode"):
        body = text.split(f"# >>> {block}")[1].split(f"# <<< {block}")[0]
        entries = yaml.safe_load(
            "\n".join(line.strip()[2:] for line in body.splitlines() if line.strip().startswith("# ") and ": {" in line)
        )
        assert entries and set(entries) <= rules, set(entries) - rules
        if block == "local teacher":
            assert set(entries) == {"stage1_synth", "synth_shard", "summary_llm"}
            assert all(e["gpu_model"] and e["slurm_partition"] != "cpu" for e in entries.values())


def test_teacher_plan_prices_batch_only_for_the_one_shot_steps():
    from darecipe.teacher_plan import Prices, api_cost, load_config, online_hours, paper_steps

    cfg = load_config(REPO / "config/deepanalyze-8b.yaml")
    steps = {s.name: s for s in paper_steps(cfg["plan"]["teacher"])}
    stage1 = [s for s in steps.values() if s.batchable]
    assert [s.name for s in stage1] == ["distill", "refine", "tablegpt", "file"]
    assert steps["distill"].requests == round(39_301 / 0.8)  # docs/recipe.md's kept records over the acceptance rate
    assert steps["solver"].requests == pytest.approx(
        steps["inspector"].requests * cfg["plan"]["teacher"]["solver_turns"], abs=8
    )
    assert (steps["solver"].prompt, steps["solver"].reply) == tuple(cfg["plan"]["teacher"]["tokens"]["solver"])
    p = Prices(2.0, 8.0, 0.5)
    every = list(steps.values())
    assert api_cost(every, p, batch=True) == pytest.approx(api_cost(every, p, False) - api_cost(stage1, p, False) / 2)
    # with no provider limit, concurrency decides: requests x latency / in flight
    n = sum(s.requests for s in every)
    assert online_hours(every, tpm=1e15, rpm=1e15, in_flight=100, latency_s=10) == pytest.approx(n * 10 / 100 / 3600)
