"""Summary-enhanced SFT (docs/recipe.md §8): trace splitting for both tag families, the grouped seeded split, quote checks
through the real rule, and the module's outputs in the demo run (phases chained, phase 3 loadable, reruns)."""

import json
import random
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_repo, job_counts, snakemake

from darecipe.summary import (
    Summary,
    TagFamily,
    Trace,
    TraceError,
    check_quotes,
    multiturn_record,
    parse_rendered_summary,
    parse_summary_reply,
    render_summary,
    samples_from_multiturn,
    split_records,
    traces_from_chat_text,
    val_traces,
)

SEARCH = TagFamily("search", "information", "answer")
DEEPANALYZE = TagFamily("deepanalyze", "Execute", "Answer")
CASE = REPO / "resources/data/search_r1_traces/case.txt"


def samples_of(trace: Trace, fam: TagFamily) -> list[dict]:
    return samples_from_multiturn(multiturn_record(trace, fam), fam)


def spans(text: str, tag: str) -> list[tuple[int, int]]:
    """(start of <tag>, end of </tag>) of every block, found with plain string search (not the splitter's regex)."""
    out, pos = [], 0
    while (start := text.find(f"<{tag}>", pos)) >= 0:
        end = text.index(f"</{tag}>", start) + len(f"</{tag}>")
        out.append((start, end))
        pos = end
    return out


# ---------------------------------------------------------------- splitting (acceptance 2)


def test_search_r1_rollouts_split_at_each_information_block():
    traces = traces_from_chat_text(CASE.read_text(encoding="utf-8"), "search_r1", "search")
    assert [t.id for t in traces] == ["search_r1-1", "search_r1-2"]
    assert traces[0].question.endswith("Question: paul walkers cars in fast and furious list?")
    assert traces[0].system == "You are a helpful assistant."
    for trace, n_results in zip(traces, (2, 1)):
        raw = trace.text
        blocks = spans(raw, "information")
        assert len(blocks) == n_results
        samples = samples_of(trace, SEARCH)
        assert len(samples) == n_results
        answer_end = raw.index("</answer>") + len("</answer>")
        for i, (s, (start, end)) in enumerate(zip(samples, blocks)):
            # the prompt ends with result i, exactly as it stands in the rollout
            assert s["prompt"][-1] == {"role": "user", "content": raw[start:end]}
            assert (
                s["step"] == i + 1
                and s["results"][-1] == raw[start + len("<information>") : end - len("</information>")]
            )
            # the target is what follows, up to the next result or through the answer
            stop = blocks[i + 1][0] if i + 1 < len(blocks) else answer_end
            assert s["target"] == raw[end:stop].strip()
            assert s["is_final"] == (i + 1 == n_results)
            # and the prompt holds the system message, the question, then every earlier step and result in order
            expected, prev = [], 0
            for b_start, b_end in blocks[: i + 1]:
                expected += [raw[prev:b_start].strip(), raw[b_start:b_end]]
                prev = b_end
            assert [m["content"] for m in s["prompt"]] == [trace.system, trace.question.strip(), *expected]
    first = samples_of(traces[0], SEARCH)
    assert first[0]["target"].endswith("<search> list of cars paul walker drove in Fast and Furious </search>")
    assert first[1]["target"].endswith("<answer> Charger </answer>") and first[1]["answer"] == "Charger"
    assert samples_of(traces[1], SEARCH)[0]["answer"] == "sinoatrial (SA) node"


DA_TEXT = (
    "<Analyze>Plan.</Analyze><Code>```python\nprint(1)\n```</Code><Execute>\n1\n</Execute>"
    "<Understand>One.</Understand><Code>```python\nprint(2)\n```</Code><Execute>\n2\n</Execute>"
    "<Analyze>Two.</Analyze><Code>```python\nprint(3)\n```</Code><Execute>\n3\n</Execute>"
    "<Answer>3</Answer>"
)


def test_deepanalyze_trajectory_splits_at_each_execute_block():
    trace = Trace("t", "synthesis", "deepanalyze", "# Instruction\nCount.", DA_TEXT)
    samples = samples_of(trace, DEEPANALYZE)
    blocks = spans(DA_TEXT, "Execute")
    assert len(samples) == 3
    assert [s["target"] for s in samples] == [
        "<Understand>One.</Understand><Code>```python\nprint(2)\n```</Code>",
        "<Analyze>Two.</Analyze><Code>```python\nprint(3)\n```</Code>",
        "<Answer>3</Answer>",
    ]
    for i, (s, (start, end)) in enumerate(zip(samples, blocks)):
        assert s["id"] == f"t#{i + 1}"
        assert s["prompt"][-1]["content"] == DA_TEXT[start:end]
        assert s["results"] == [f"\n{k}\n" for k in range(1, i + 2)]
        assert len(s["prompt"]) == 1 + 2 * (i + 1)  # question, then (step, result) pairs
    assert samples[0]["prompt"][1]["content"] == "<Analyze>Plan.</Analyze><Code>```python\nprint(1)\n```</Code>"
    rec = multiturn_record(trace, DEEPANALYZE)
    assert [m["role"] for m in rec["messages"]] == ["user"] + ["assistant", "user"] * 3 + ["assistant"]
    assert "".join(m["content"] for m in rec["messages"][1:]) == DA_TEXT


@pytest.mark.parametrize("fam", [SEARCH, DEEPANALYZE, TagFamily("other", "observation", "final")], ids=lambda f: f.name)
@pytest.mark.parametrize("n", [0, 1, 2, 5])
def test_n_results_give_n_samples_for_any_tag_family(fam, n):
    steps = [f"step {k} reasons and acts." for k in range(n)]
    text = "".join(f"{steps[k]}\n<{fam.result}>result {k}</{fam.result}>\n" for k in range(n))
    text += f"final reasoning <{fam.answer}>42</{fam.answer}> trailing text"
    samples = samples_of(Trace("x", "s", fam.name, "Q?", text), fam)
    assert len(samples) == max(1, n)
    if n == 0:
        # no result step: one sample, question -> answer
        (s,) = samples
        assert s["prompt"] == [{"role": "user", "content": "Q?"}] and s["results"] == []
        assert s["target"] == f"final reasoning <{fam.answer}>42</{fam.answer}>" and s["is_final"]
        return
    for k, s in enumerate(samples):
        assert s["prompt"][-1]["content"] == f"<{fam.result}>result {k}</{fam.result}>"
        assert s["results"] == [f"result {j}" for j in range(k + 1)]
        expected = steps[k + 1] if k + 1 < n else f"final reasoning <{fam.answer}>42</{fam.answer}>"
        assert s["target"] == expected and s["is_final"] == (k + 1 == n)
        assert s["answer"] == "42"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("just thinking, no answer", "no answer: no <Answer> block in a trace without results"),
        ("a<Execute>x</Execute>b and no answer", "no answer: no <Answer> block after the last result"),
        ("a<Execute>x</Execute>b<Execute>y<Answer>1</Answer>", "unbalanced result tags"),
        ("<Execute>x</Execute>b<Answer>1</Answer>", "empty step: no agent text before the first result"),
        ("a<Execute>x</Execute> <Execute>y</Execute>b<Answer>1</Answer>", "empty step: no agent text between result 1"),
    ],
)
def test_traces_that_cannot_be_split_are_rejected_with_the_reason(text, reason):
    with pytest.raises(TraceError, match=reason.replace("(", r"\(")):
        multiturn_record(Trace("x", "s", "deepanalyze", "Q?", text), DEEPANALYZE)


# ---------------------------------------------------------------- split (acceptance 3)


def test_split_is_seeded_disjoint_and_keeps_a_trace_together():
    ids = [f"trace-{k}" for k in range(40)]
    records = [{"trace_id": t, "id": f"{t}#{s}"} for t in ids for s in range(1, 1 + len(t) % 4 + 1)]
    val = val_traces(ids, 0.1, seed=7)
    assert len(val) == 4
    assert val == val_traces(list(reversed(ids)), 0.1, seed=7) == val_traces(random.Random(1).sample(ids, 40), 0.1, 7)
    assert val != val_traces(ids, 0.1, seed=8)
    train, held = split_records(records, val)
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    assert len(train) + len(held) == len(records)
    assert {r["trace_id"] for r in held} == val and not {r["trace_id"] for r in train} & val


def test_split_edge_cases():
    assert val_traces(["a"], 0.1, 0) == set()  # a single trace stays in training
    assert len(val_traces(["a", "b", "c"], 0.1, 0)) == 1  # at least one held out when ratio > 0
    assert len(val_traces(["a", "b", "c"], 0.5, 0)) == 2
    assert val_traces(["a", "b", "c"], 0.0, 0) == set()


# ---------------------------------------------------------------- summaries and quotes (acceptance 4)


def test_quotes_must_occur_verbatim_in_the_samples_results():
    results = ["\n  Rock   826.65    835\n", "Latin   382.14"]
    ok = Summary("Q", "R", ["Rock   826.65    835", "Latin   382.14"])
    assert check_quotes(ok, results, 4) is None
    assert check_quotes(Summary("Q", "R", ["Rock 826.65 835"]), results, 4).startswith("quote not in the results")
    # a quote may not span two results
    assert check_quotes(Summary("Q", "R", ["835\nLatin"]), results, 4).startswith("quote not in the results")
    assert check_quotes(Summary("Q", "R", ["Rock"]), results, 5).startswith("quote too short")
    assert check_quotes(Summary("Q", "R", []), results, 4).startswith("no key facts")
    assert check_quotes(Summary("Q", "R", []), [], 4) is None


def test_summary_reply_parsing_and_rendering_round_trip():
    s = parse_summary_reply('```json\n{"question": "Q?", "reasoning": "R.", "key_facts": ["a \\"b\\"\\nc"]}\n```')
    assert s == Summary("Q?", "R.", ['a "b"\nc'])
    text = render_summary(s)
    assert text.startswith("<summary>\nQuestion: Q?\n") and text.endswith("</summary>")
    assert parse_rendered_summary(text + "\n\n<Code>x</Code>") == s
    assert parse_rendered_summary("<summary>\nQuestion: Q") is None
    for bad in (
        "not json",
        '["a"]',
        '{"question": "", "reasoning": "R", "key_facts": []}',
        '{"question": "Q", "reasoning": "R", "key_facts": "a"}',
    ):
        with pytest.raises(ValueError, match="unparseable summary"):
            parse_summary_reply(bad)


@pytest.fixture(scope="module")
def search_only_repo(tmp_path_factory):
    """A copy of the repository whose summary module reads only the Search-R1 rollouts (no synthesis needed)."""
    return copy_repo(tmp_path_factory.mktemp("summary"))


def run_summaries(work: Path, name: str, edit) -> tuple:
    """The real rule summary_llm on recordings changed by `edit`, with a fresh cache."""
    rec_dir = work / f"recordings-{name}"
    rec_dir.mkdir()
    lines = [json.loads(line) for line in (work / "resources/recordings/summary.jsonl").read_text().splitlines()]
    (rec_dir / "summary.jsonl").write_text("".join(json.dumps(r) + "\n" for r in edit(lines)))
    overlay = {
        "summary": {"pipeline_trajectories": None},
        "llm": {"recordings": str(rec_dir), "cache_dir": f"results/cache/{name}"},
    }
    (work / f"{name}.yaml").write_text(yaml.safe_dump(overlay))
    proc = snakemake(
        work,
        "--cores",
        "1",
        "results/summary/with_summary.jsonl",
        "--forcerun",
        "summary_llm",
        "--configfile",
        "config/config.yaml",
        f"{name}.yaml",
        check=False,
    )
    return proc, work / "results/summary"


def test_a_summary_quoting_text_not_in_the_results_is_rejected_and_counted(search_only_repo):
    def misquote(recordings):
        for r in recordings:
            if r["id"] == "search_r1-2#1":
                summary = json.loads(r["response"])
                summary["key_facts"][1] = "the heart's impulses are generated in the atrioventricular node"
                r["response"] = json.dumps(summary)
        return recordings

    proc, out = run_summaries(search_only_repo, "misquote", misquote)
    assert proc.returncode == 0, proc.stderr
    kept = [json.loads(line)["id"] for line in (out / "with_summary.jsonl").read_text().splitlines()]
    assert kept == ["search_r1-1#1", "search_r1-1#2"]
    (reject,) = [json.loads(line) for line in (out / "with_summary.rejects.jsonl").read_text().splitlines()]
    assert reject["id"] == "search_r1-2#1"
    assert (
        reject["reason"]
        == 'quote not in the results: "the heart\'s impulses are generated in the atrioventricular node"'
    )
    metrics = json.loads((out / "with_summary.metrics.json").read_text())
    assert metrics["samples"] == 3 and metrics["records"] == 2 and metrics["rejected"] == 1
    assert metrics["reject_reasons"] == {"quote not in the results": 1}
    assert metrics["quotes"]["summaries_rejected"] == 1
    assert "1 summaries quoted text not in the results" in (search_only_repo / "logs/summary_llm.log").read_text()


def test_a_missing_summary_recording_stops_the_rule_with_one_line(search_only_repo):
    proc, _ = run_summaries(search_only_repo, "missing", lambda rs: [r for r in rs if r["id"] != "search_r1-1#2"])
    assert proc.returncode != 0
    assert "replay backend: 1 request(s) have no recorded response" in proc.stderr
    assert "record 'search_r1-1#2'" in proc.stderr


# ---------------------------------------------------------------- the demo run (acceptance 1 and 5)


SETS = ("summary_prefix", "summary_only", "multiturn")


@pytest.mark.pipeline
def test_summary_module_outputs_and_split(demo_run):
    import pyarrow.parquet as pq

    out = demo_run["dir"] / "results/summary"
    for name in (
        "multiturn.jsonl",
        "samples.jsonl",
        "with_summary.jsonl",
        "summary_prefix.jsonl",
        "summary_only.jsonl",
        "stats.json",
        "eval.json",
        "eval.md",
        "split.json",
    ):
        assert (out / name).is_file(), name
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    traces = [json.loads(line) for line in (out / "multiturn.jsonl").read_text().splitlines()]
    assert {t["family"] for t in traces} == {"search", "deepanalyze"}
    assert len(traces) == 8 and len(samples) == 12  # 2 Search-R1 rollouts (3 results), 6 trajectories (9 results)
    assert json.loads((out / "with_summary.metrics.json").read_text())["rejected"] == 0
    split = json.loads((out / "split.json").read_text())
    val = set(split["val_traces"])
    assert len(val) == 1  # round(0.1 x 8 traces)
    for name in SETS:
        train, held = (pq.read_table(out / f"{name}_{side}.parquet").to_pylist() for side in ("train", "val"))
        assert {r["trace_id"] for r in held} == val and not {r["trace_id"] for r in train} & val
        assert (len(train), len(held)) == (split["records"][name]["train"], split["records"][name]["val"])
        expected = len(traces) if name == "multiturn" else len(samples)
        assert len(train) + len(held) == expected
        if name != "multiturn":
            assert len((out / f"{name}.jsonl").read_text().splitlines()) == expected
    stats = json.loads((out / "stats.json").read_text())
    prefix, only = stats["sets"]["summary_prefix"], stats["sets"]["summary_only"]
    assert 0 < only["prompt_tokens_mean"] < prefix["prompt_tokens_mean"]
    assert stats["prompt_token_reduction"] == pytest.approx(
        1 - only["prompt_tokens_mean"] / prefix["prompt_tokens_mean"], abs=1e-4
    )


@pytest.mark.pipeline
def test_each_phase_starts_from_the_previous_one_and_phase3_loads(demo_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from darecipe.tags import TAGS
    from darecipe.training import checkpoint_identity

    work = demo_run["dir"]
    base = checkpoint_identity(work / "results/checkpoints/vocab")
    datasets = []
    for phase in (1, 2, 3):
        metrics = json.loads((work / f"results/summary/checkpoints/phase{phase}/metrics.json").read_text())
        assert metrics["global_step"] >= 1 and metrics["stage"] == f"summary_phase{phase}"
        run = json.loads((work / metrics["run_dir"] / "run.json").read_text())
        assert run["base"] == base
        datasets += list(run["data"])
        base = f"run:{metrics['run_key']}"
    assert datasets == [f"results/summary/{s}_train.parquet" for s in ("multiturn", "summary_only", "summary_prefix")]
    ckpt = work / "results/summary/checkpoints/phase3"
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    tok = AutoTokenizer.from_pretrained(ckpt)
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    assert all(len(tok.encode(tag, add_special_tokens=False)) == 1 for tag in TAGS)


@pytest.mark.pipeline
def test_summary_evaluation_report(demo_run):
    out = demo_run["dir"] / "results/summary"
    report = json.loads((out / "eval.json").read_text())
    split = json.loads((out / "split.json").read_text())
    assert report["model"] == "results/summary/checkpoints/phase3"
    full, short = report["tasks"]["full_context_to_summary"], report["tasks"]["summary_to_answer"]
    for task, name in ((full, "summary_prefix"), (short, "summary_only")):
        assert task["samples"] == split["records"][name]["val"] == len(task["outputs"]) > 0
        # one sample per held-out trace has the answer in its target
        assert task["answer_samples"] == len(split["val_traces"]) and 0 <= task["answer_match_rate"] <= 1
        assert 0 < task["generated_tokens_mean"] <= report["max_new_tokens"]
    assert (
        0 <= full["summary_parsed_rate"] <= 1 and 0 <= full["summary_quote_valid_rate"] <= full["summary_parsed_rate"]
    )
    assert short["summary_parsed_rate"] is None
    md = (out / "eval.md").read_text()
    assert f"| full_context_to_summary | {full['samples']} |" in md and "| summary_only | 12 |" in md


@pytest.mark.pipeline
def test_changing_phase2_lr_reruns_phases_2_and_3_only(demo_run, tmp_path):
    work = demo_run["dir"]
    cfg = yaml.safe_load((work / "config/config.yaml").read_text())
    cfg["summary"]["phases"][1]["learning_rate"] *= 2
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "-n", "summary_sft_checkpoint", "--configfile", str(changed))
    assert job_counts(proc.stdout) == {"train_summary_phase": 2, "summary_sft_eval": 1, "summary_sft_checkpoint": 1}
    assert "output: results/summary/checkpoints/phase2" in proc.stdout
    assert "output: results/summary/checkpoints/phase3" in proc.stdout
    assert "output: results/summary/checkpoints/phase1" not in proc.stdout
    assert "params have changed since last execution" in proc.stdout
