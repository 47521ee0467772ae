"""``kubetune simulate`` through ``kubetune.cli.main``: the JSON report, the table, and exit 2 on bad input."""

from __future__ import annotations

import json

import pytest
from kubetune.cli import main


def simulate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["simulate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = simulate(
        capsys, "--dist", "shiftedexp:1,1", "--tasks", "10", "--jobs", "20000", "--seed", "1", "--policy",
        "single-fork", "--fork-when-done", "0.9", "--replicas", "1", "--original", "kill", "--output", "json",
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert set(report) == {"baseline", "policy", "latency_ratio", "cost_ratio", "jobs"}
    assert set(report["baseline"]) == set(report["policy"]) == {"mean_latency", "mean_cost"}
    assert report["jobs"] == 20000
    assert report["policy"]["mean_latency"] == pytest.approx(4.9290, rel=0.01)
    assert report["policy"]["mean_cost"] == pytest.approx(21.0, rel=0.01)
    assert report["latency_ratio"] == pytest.approx(
        report["policy"]["mean_latency"] / report["baseline"]["mean_latency"]
    )
    assert report["latency_ratio"] > 1  # killing on a log-concave tail is worse than nothing


@pytest.mark.parametrize(
    "policy",
    [
        ["--policy", "none"],
        ["--policy", "spark", "--quantile", "0.9", "--multiplier", "3"],
        ["--policy", "late"],
        ["--policy", "adaptive", "--max-extra-cost", "0.2"],
        ["--policy", "single-fork", "--fork-at-time", "2", "--replicas", "2"],
        ["--policy", "timeout", "--after", "3", "--original", "kill"],
        ["--policy", "adaptive", "--slots", "3"],
    ],
)
def test_every_policy_runs(capsys: pytest.CaptureFixture[str], policy: list[str]) -> None:
    code, out, err = simulate(capsys, "--dist", "pareto:1,1.5", "--jobs", "2000", *policy, "--output", "json")
    assert code == 0, err
    assert json.loads(out)["jobs"] == 2000


def test_slots_queue_the_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    common = ("--dist", "shiftedexp:1,1", "--tasks", "16", "--jobs", "4000", "--seed", "2", "--output", "json")
    code, out, _ = simulate(capsys, *common, "--policy", "none")
    wide = json.loads(out)
    code, out, _ = simulate(capsys, *common, "--policy", "none", "--slots", "4")
    assert code == 0
    queued = json.loads(out)
    assert set(queued) == {"baseline", "policy", "latency_ratio", "cost_ratio", "jobs"}
    assert queued["baseline"]["mean_cost"] == wide["baseline"]["mean_cost"]  # same draws, same machine time
    # 16 tasks of mean 2 on 4 slots: at least 4 x 2 on average; far more than the longest of 16 (1 + H_16).
    assert queued["baseline"]["mean_latency"] > 8 > wide["baseline"]["mean_latency"]
    assert queued["latency_ratio"] == pytest.approx(1.0) and queued["cost_ratio"] == pytest.approx(1.0)
    code, out, _ = simulate(capsys, "--dist", "shiftedexp:1,1", "--tasks", "16", "--slots", "4", "--jobs", "100")
    assert code == 0 and "on 4 slots" in out


def test_table_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = simulate(capsys, "--dist", "hyperexp:0.9,1,0.1", "--jobs", "1000", "--policy", "late")
    assert code == 0
    assert "none (baseline)" in out and "ratio" in out and "late" in out


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--dist", "shiftedexp:1,x"], "--dist shiftedexp:1,x: RATE 'x' is not a number"),
        (["--dist", "shiftedexp:1,1", "--policy", "single-fork"], "needs exactly one of --fork-when-done"),
        (
            ["--dist", "shiftedexp:1,1", "--policy", "single-fork", "--fork-when-done", "0.5", "--fork-at-time", "1"],
            "needs exactly one of",
        ),
        (
            ["--dist", "shiftedexp:1,1", "--policy", "single-fork", "--fork-when-done", "1.5"],
            "--fork-when-done: must be <= 1",
        ),
        (
            ["--dist", "shiftedexp:1,1", "--policy", "single-fork", "--fork-when-done", "0.5", "--replicas", "0"],
            "--replicas: must be >= 1",
        ),
        (["--dist", "shiftedexp:1,1", "--policy", "spark", "--quantile", "2"], "--quantile: must be <= 1"),
        (
            ["--dist", "shiftedexp:1,1", "--policy", "adaptive", "--max-extra-cost", "-1"],
            "--max-extra-cost: must be >= 0",
        ),
        (["--dist", "shiftedexp:1,1", "--policy", "timeout"], "--policy timeout needs --after T"),
        (["--dist", "shiftedexp:1,1", "--policy", "timeout", "--after", "-1"], "--after: must be >= 0"),
        (["--dist", "shiftedexp:1,1", "--jobs", "0"], "--jobs: must be >= 1"),
        (["--dist", "shiftedexp:1,1", "--tasks", "0"], "--tasks: must be >= 1"),
        (["--dist", "shiftedexp:1,1", "--slots", "0"], "--slots: must be >= 1"),
    ],
)
def test_bad_input_exits_2_naming_the_flag(capsys: pytest.CaptureFixture[str], args: list[str], problem: str) -> None:
    code, out, err = simulate(capsys, *args)
    assert code == 2
    assert out == ""
    assert problem in err
    assert "Traceback" not in err


def test_unknown_policy_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--dist", "shiftedexp:1,1", "--policy", "fastest"])
    assert exit_.value.code == 2
    assert "unknown policy 'fastest'" in capsys.readouterr().err


def test_flags_a_policy_ignores_are_warned_about(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = simulate(capsys, "--dist", "shiftedexp:1,1", "--jobs", "100", "--policy", "late", "--replicas", "2")
    assert code == 0
    assert "--replicas is ignored by --policy late" in err
