from darecipe.plan import plan, table


def test_plan_of_the_paper_run():
    cfg = {f"stage{i}": {"gpus": 8} for i in (1, 2, 3)}
    cfg["plan"] = {"price_per_gpu_hour": 262 / 8, "hours": {"stage1": 72, "stage2": 48, "stage3": 144}}
    p = plan(cfg)
    assert [r["gpu_hours"] for r in p["stages"]] == [576, 384, 1152]
    assert p["total"]["gpu_hours"] == 2112 and round(p["total"]["cost_usd"]) == 69168  # 2112 × $32.75
    assert table(p).splitlines()[-2].split()[:4] == ["total", "264", "2112", "69,168"]


def test_plan_prices_the_teacher_per_synthesis_rule():
    import yaml
    from conftest import REPO

    from darecipe.config import load_schema, validate_config

    cfg = validate_config(
        yaml.safe_load((REPO / "config/deepanalyze-8b.yaml").read_text()), load_schema(REPO / "config/schema.yaml")
    )
    d = cfg["stage1_data"]
    d["wikitq"].update(tsv=str(REPO / "resources/data/wikitablequestions/data/training-first50.tsv"), limit=20)
    d["finqa"]["path"] = str(REPO / "resources/data/finqa_family/pot_convfinqa_dev_single_first50.json")
    d["tatqa"]["path"] = str(REPO / "resources/data/finqa_family/pot_tatqa_dev_first50.json")
    d["tablegpt_tables"] = None  # no number in the config: the released set's 29,448
    workspaces = 5  # five (category, workspace) pairs
    cfg["synthesis"]["categories"] = {
        "data_analysis": ["simpson", "chinook"],
        "data_cleaning": ["student_loan"],
        "research_database": ["chinook", "simpson"],
    }
    tp = plan(cfg)["teacher"]
    rows = {r["rule"]: r for r in tp["rules"]}
    assert (
        rows["stage1_synth: TableQA_distillation"]["requests"] == 20 + 50 + 50
    )  # 20 WikiTQ rows (limit), the 50-row FinQA / TAT-QA files
    assert (
        rows["stage1_synth: TableGPT"]["requests"] == 29448 and rows["stage1_synth: TableGPT"]["from"] == "released set"
    )
    assert rows["synth_shard: solver"]["requests"] == workspaces * cfg["synthesis"]["sft_per_workspace"] * 8
    # the questioner is asked for at most tasks_per_request tasks at a time
    per_pair = cfg["synthesis"]["sft_per_workspace"] + cfg["synthesis"]["rl_per_workspace"]
    assert rows["synth_shard: questioner"]["requests"] == workspaces * -(
        -per_pair // cfg["synthesis"]["tasks_per_request"]
    )
    judge = rows["train_stage3: judge"]
    assert judge["requests"] == workspaces * cfg["synthesis"]["rl_per_workspace"] * 5  # 5 rollouts per task, 1 epoch
    distill = rows["stage1_synth: TableQA_distillation"]
    assert distill["prompt_tokens"] == 120 * 1500 and distill["completion_tokens"] == 120 * 700
    assert distill["cost_usd"] == 120 * (1500 * 2.0 + 700 * 8.0) / 1e6  # gpt-4.1: $2 / $8 per million tokens
    assert tp["total"]["requests"] == sum(r["requests"] for r in tp["rules"])
    assert "train_stage3: judge" in table(plan(cfg))


def test_a_run_from_the_released_data_asks_the_teacher_nothing():
    """config/deepanalyze-8b-released.yaml over the paper config: no synthesis rows; the judge scores rollouts of the
    release's ~15K RL tasks (5 rollouts each, 1 epoch)."""
    import yaml
    from conftest import REPO

    from darecipe.config import load_schema, validate_config

    paper = yaml.safe_load((REPO / "config/deepanalyze-8b.yaml").read_text())
    paper["data"] = yaml.safe_load((REPO / "config/deepanalyze-8b-released.yaml").read_text())["data"]
    cfg = validate_config(paper, load_schema(REPO / "config/schema.yaml"))
    rows = {r["rule"]: r for r in plan(cfg)["teacher"]["rules"]}
    assert list(rows) == ["train_stage3: judge"]
    assert rows["train_stage3: judge"]["records"] == 15_000 and rows["train_stage3: judge"]["requests"] == 75_000
