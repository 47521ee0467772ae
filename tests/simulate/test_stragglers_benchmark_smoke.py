"""benchmarks/stragglers.py runs end to end: ``--quick --step-time 0.02 --output json`` in a subprocess (three tiny
real studies, one per policy, then the fit and the simulator's prediction); the report's shape only, no timing or
goal asserts; and which policies ``--policies`` runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

POLICIES = ["none", "spark", "adaptive", "migrate"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.mark.slow
def test_quick_run_reports_every_policy_measured_and_predicted(run_benchmark: Callable[..., str]) -> None:
    out = run_benchmark("stragglers.py", "--quick", "--step-time", "0.02", "--output", "json", timeout=280)
    report: dict[str, Any] = json.loads(out)
    assert set(report) == {"settings", "runs", "startup", "fit", "model_check", "policies", "goals", "seconds"}
    settings = report["settings"]
    assert settings["quick"] is True and settings["trials"] >= 1 and settings["parallel"] >= 1
    assert settings["chaos"] == "pareto:1,2" and settings["chaos_seeds"] == [0]
    assert settings["step_time"] == 0.02 and (settings["depth"], settings["width"]) == (1, 64)

    assert [(r["policy"], r["chaos_seed"]) for r in report["runs"]] == [(p, 0) for p in POLICIES]
    for run in report["runs"]:
        assert run["phase"] == "Succeeded"
        assert len(run["trials"]) == settings["trials"]
        assert all(t["state"] == "COMPLETE" and t["duration_s"] > 0 for t in run["trials"])
        assert run["makespan_s"] > 0 and run["compute_s"] > 0 and run["replicas"] >= 0

    assert [p["policy"] for p in report["policies"]] == POLICIES
    for entry in report["policies"]:
        assert set(entry) >= {"makespan_s", "compute_s", "measured", "predicted", "deviation", "replicas"}
        assert set(entry["measured"]) == {"latency_ratio", "cost_ratio"}
        assert all(_is_number(v) for v in entry["measured"].values())
        assert set(entry["deviation"]) == {"latency", "cost"}
    assert report["policies"][0]["measured"] == {"latency_ratio": 1.0, "cost_ratio": 1.0}

    fit = report["fit"]
    if fit is not None:  # a prediction needs at least two timed trials
        assert fit["dist"].startswith("shiftedpareto:") and "--slots" in fit["command"]
        for entry in report["policies"]:
            assert set(entry["predicted"]) == {
                "mean_latency_s",
                "mean_cost_s",
                "latency_ratio",
                "cost_ratio",
                "simulate_latency_ratio",
                "simulate_cost_ratio",
                "jobs",
                "per_job",
            }
            predicted = entry["predicted"]
            # adaptive is simulated one job at a time (its fit would pool the batch's jobs), on fewer jobs.
            assert predicted["per_job"] is (entry["policy"] == "adaptive")
            assert predicted["jobs"] == (30 if predicted["per_job"] else 2_000)
            assert all(_is_number(v) for k, v in predicted.items() if k != "per_job")

    check = report["model_check"]
    assert set(check) == {"list_schedule_s", "makespan_s", "durations_sum_s", "compute_s"}
    assert all(_is_number(v) and v > 0 for v in check.values())

    goals = report["goals"]
    assert set(goals) == {"adaptive_makespan", "adaptive_compute", "prediction"}
    assert goals["adaptive_makespan"]["max"] == 0.7 and goals["adaptive_compute"]["max"] == 1.05
    assert goals["prediction"]["tolerance"] == 0.1
    assert all(isinstance(goal["met"], bool) for goal in goals.values())


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], POLICIES),
        (["--policies", "adaptive"], ["none", "adaptive"]),
        (["--policies", "migrate", "spark"], POLICIES),  # the benchmark's order, whatever the command line's
        (["--policies", "migrate"], ["none", "adaptive", "migrate"]),  # none and adaptive: the goals' terms
    ],
)
def test_policies_option_always_keeps_none_and_adaptive(
    load_benchmark: Callable[[str], Any], argv: list[str], expected: list[str]
) -> None:
    settings, output, given = load_benchmark("stragglers.py").parse_settings(["--step-time", "0.08", *argv])
    assert list(settings.policies) == expected and output == "table" and given is None
    assert (settings.epochs, settings.depth, settings.width) == (8, 1, 64)


def test_policies_option_rejects_an_unknown_policy(load_benchmark: Callable[[str], Any]) -> None:
    with pytest.raises(SystemExit):
        load_benchmark("stragglers.py").parse_settings(["--policies", "late"])


@pytest.mark.parametrize(
    "text",
    ["pareto:1,2", "shiftedpareto:1,2", "shiftedpareto:1,2,x", "shiftedpareto:-1,2,2", "shiftedpareto:1,0,2"],
)
def test_predict_option_names_what_is_wrong(load_benchmark: Callable[[str], Any], text: str) -> None:
    with pytest.raises(SystemExit):
        load_benchmark("stragglers.py").parse_settings(["--predict", text])
    with pytest.raises(ValueError, match=r"shiftedpareto|SHIFT"):
        load_benchmark("stragglers.py").parse_fit(text)


def test_predict_option_runs_no_study_and_predicts_every_policy(
    load_benchmark: Callable[[str], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_benchmark("stragglers.py")
    argv = ["--quick", "--jobs", "200", "--per-job-jobs", "3", "--chaos-seeds", "0", "1"]
    assert bench.main([*argv, "--predict", "shiftedpareto:0.5,2,1.5", "--output", "json"]) == 0
    predicted: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert list(predicted) == POLICIES
    assert predicted["none"]["expected_latency_ratio"] == pytest.approx(1.0)
    assert [predicted[p]["jobs"] for p in POLICIES] == [200, 200, 3, 200]
    for sim in predicted.values():
        assert sim["mean_latency_s"] > 0.5 * 3 / 2 and sim["baseline_latency_s"] > 0  # 3 tasks on 2 slots
        assert sim["expected_cost_ratio"] > 0
    assert bench.main([*argv, "--policies", "adaptive", "--predict", "shiftedpareto:0.5,2,1.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("shiftedpareto:0.5,2,1.5, 3 trials on 2 slots, ratios over groups of 2 job(s)")
    assert [line.split()[0] for line in lines[2:]] == ["none", "adaptive"]
