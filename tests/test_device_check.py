"""The device check's runner: each step in its own process and time limit, a report rewritten after every step."""

import json
import sys

from facelib.bench import CheckStep, device_check, device_check_plan
from facelib.cli import main


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def test_steps_run_in_order_and_failures_timeouts_and_the_budget_are_recorded(tmp_path):
    results, log, stale = tmp_path / "r.json", tmp_path / "log.csv", tmp_path / "stale.json"
    stale.write_text('{"from": "the last run"}')
    plan = [
        CheckStep("writes results", python(f"import json; json.dump({{'rows': [1, 2]}}, open({str(results)!r}, 'w'))"), 30, str(results)),
        CheckStep("writes a log", python(f"open({str(log)!r}, 'w').write('step,loss\\n' + ''.join(f'{{i}},0.5\\n' for i in range(9)))"),
                  30, str(log)),
        CheckStep("fails", python("import sys; print('bad input'); sys.exit(3)"), 30, str(stale), str(stale)),
        CheckStep("hangs", python("import time; print('started', flush=True); time.sleep(60)"), 2),
        CheckStep("too late", python("print('never')"), 30),
    ]
    report = device_check(tmp_path / "out", plan, budget_s=25)
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == [s.name for s in plan]
    assert steps["writes results"]["rc"] == 0 and steps["writes results"]["results"] == {"rows": [1, 2]}
    assert steps["writes a log"]["results"] == {"rows": 9, "header": "step,loss", "last": ["6,0.5", "7,0.5", "8,0.5"]}
    # A results file left by an earlier run is removed first: a failed step reports nothing of it.
    assert steps["fails"]["rc"] == 3 and "bad input" in steps["fails"]["stdout"] and "results" not in steps["fails"]
    assert steps["hangs"]["timed_out"] and steps["hangs"]["rc"] != 0 and "started" in steps["hangs"]["stdout"]
    assert 1.5 < steps["hangs"]["seconds"] < 10  # SIGTERM ends it at once
    written = json.loads((tmp_path / "out" / "device_check.json").read_text())
    assert written["steps"] == json.loads(json.dumps(report["steps"]))
    # Under 20 s (or the step's own limit) left: skipped and said, not run.
    budget = device_check(tmp_path / "out2", plan[:1] + plan[4:], budget_s=10)
    assert "skipped" in budget["steps"][1] and "rc" not in budget["steps"][1]


def test_the_plan_covers_the_issue_in_priority_order(tmp_path):
    plan = device_check_plan(tmp_path, runs=tmp_path / "runs")
    names = [s.name for s in plan]
    assert names[:3] == ["environment", "cuda tests", "bench render"]
    assert names.index("bench train bf16") < names.index("train paper scale bf16, first half") < names.index("bench train bf16 compiled")
    assert {"train paper scale fp16, resumed", "bench gcn"} <= set(names)
    first, resumed = (next(s for s in plan if s.name == f"train paper scale bf16, {part}") for part in ("first half", "resumed"))
    assert "--resume" in resumed.argv and "configs/paper_gpu.yaml" in resumed.argv and resumed.argv[resumed.argv.index("--level") + 1] == "2"
    assert first.fresh == str(tmp_path / "runs" / "paper_bf16") and resumed.fresh is None  # a rerun starts the run afresh
    steps = lambda step: int(step.argv[step.argv.index("--steps") + 1])  # noqa: E731
    assert steps(resumed) == 2 * steps(first) >= 300
    render = next(s for s in plan if s.name == "bench render")
    assert render.argv[render.argv.index("--batch") + 1:render.argv.index("--batch") + 4] == ("1", "16", "64")


def test_the_command_filters_the_plan_and_says_when_nothing_matches(tmp_path, capsys):
    assert main(["device-check", "--out", str(tmp_path), "--quick", "--only", "no such step"]) == 2
    assert "no step's name contains" in capsys.readouterr().err
    assert main(["device-check", "--out", str(tmp_path), "--quick", "--only", "environment"]) == 0
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert [s["name"] for s in report["steps"]] == ["environment"]
    assert json.loads(report["steps"][0]["stdout"])["torch"]
