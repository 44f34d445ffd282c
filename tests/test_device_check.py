"""The device check's runner: each step in its own process and time limit, a report rewritten after every step."""

import json
import sys

from facelib.bench import CheckStep, device_check, device_check_plan


def test_steps_run_in_order_and_failures_timeouts_and_the_budget_are_recorded(tmp_path):
    results = tmp_path / "r.json"
    plan = [
        CheckStep("writes results", (sys.executable, "-c", f"import json; json.dump({{'rows': [1, 2]}}, open({str(results)!r}, 'w'))"),
                  30, str(results)),
        CheckStep("fails", (sys.executable, "-c", "import sys; print('bad input'); sys.exit(3)"), 30),
        CheckStep("hangs", (sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)"), 2),
        CheckStep("too late", (sys.executable, "-c", "print('never')"), 30),
    ]
    report = device_check(tmp_path / "out", plan, budget_s=25)
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == [s.name for s in plan]
    assert steps["writes results"]["rc"] == 0 and steps["writes results"]["results"] == {"rows": [1, 2]}
    assert steps["fails"]["rc"] == 3 and "bad input" in steps["fails"]["output"]
    assert steps["hangs"]["timed_out"] and steps["hangs"]["rc"] is None and "started" in steps["hangs"]["output"]
    assert 1.5 < steps["hangs"]["seconds"] < 10
    # The report on disk is the returned one.
    written = json.loads((tmp_path / "out" / "device_check.json").read_text())
    assert written["steps"] == json.loads(json.dumps(report["steps"]))
    # Under 20 s (or the step's own budget) left: skipped and said, not run.
    budget = device_check(tmp_path / "out2", plan[:1] + plan[3:], budget_s=10)
    assert "skipped" in budget["steps"][1] and "rc" not in budget["steps"][1]


def test_the_plan_covers_the_issue_in_priority_order(tmp_path):
    names = [s.name for s in device_check_plan(tmp_path)]
    assert names[:2] == ["environment", "bench render"]
    assert names.index("bench train bf16") < names.index("bench train bf16 compiled") < names.index("train paper scale bf16, first half")
    assert {"train paper scale fp16, resumed", "bench gcn", "cuda tests"} <= set(names)
    resumed = next(s for s in device_check_plan(tmp_path) if s.name == "train paper scale bf16, resumed")
    assert "--resume" in resumed.argv and "configs/paper_gpu.yaml" in resumed.argv and resumed.argv[resumed.argv.index("--level") + 1] == "2"
    render = next(s for s in device_check_plan(tmp_path) if s.name == "bench render")
    assert render.argv[render.argv.index("--batch") + 1:render.argv.index("--batch") + 4] == ("1", "16", "64")
