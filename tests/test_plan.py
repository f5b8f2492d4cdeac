from darecipe.plan import plan, table


def test_plan_of_the_paper_run():
    cfg = {f"stage{i}": {"gpus": 8} for i in (1, 2, 3)}
    cfg["plan"] = {"price_per_gpu_hour": 262 / 8, "hours": {"stage1": 72, "stage2": 48, "stage3": 144}}
    p = plan(cfg)
    assert [r["gpu_hours"] for r in p["stages"]] == [576, 384, 1152]
    assert p["total"]["gpu_hours"] == 2112 and round(p["total"]["cost_usd"]) == 69168  # 2112 × $32.75
    assert table(p).splitlines()[-2].split()[:4] == ["total", "264", "2112", "69,168"]
