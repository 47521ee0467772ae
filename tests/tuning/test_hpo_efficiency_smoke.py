"""benchmarks/hpo_efficiency.py runs end to end: ``--quick --output json`` in a subprocess, its report consistent.

A subprocess keeps the benchmark's ``torch.set_num_threads(1)`` out of this test session. No timing asserts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

STRATEGIES = ["random", "tpe", "tpe+hyperband", "tpe+successiveHalving"]
PRUNING = {"tpe+hyperband", "tpe+successiveHalving"}


def _quick(run_benchmark: Callable[..., str], *options: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(run_benchmark("hpo_efficiency.py", "--quick", "--output", "json", *options))
    return report


def test_quick_run_reports_every_strategy_and_seed_consistently(run_benchmark: Callable[..., str]) -> None:
    report = _quick(run_benchmark)
    settings = report["settings"]
    seeds, trials, epochs = settings["seeds"], settings["trials"], settings["epochs_per_trial"]
    assert seeds and trials > 0 and epochs > 0
    assert [s["strategy"] for s in report["strategies"]] == STRATEGIES
    assert sorted((r["strategy"], r["seed"]) for r in report["runs"]) == sorted(
        (strategy, seed) for strategy in STRATEGIES for seed in seeds
    )

    for run in report["runs"]:
        counts = run["trials"]
        assert counts["total"] == trials
        assert counts["complete"] + counts["pruned"] + counts["fail"] == trials
        assert counts["pruned"] < counts["total"]
        assert 0 < run["total_epochs"] <= trials * epochs
        if run["strategy"] not in PRUNING:
            assert counts["pruned"] == 0
        if counts["pruned"] == 0 and counts["fail"] == 0:
            assert run["total_epochs"] == trials * epochs  # nothing stopped early: every trial trained every epoch
        assert len(run["completions"]) == counts["complete"]
        so_far = [c["epochs_so_far"] for c in run["completions"]]
        assert so_far == sorted(so_far) and all(0 < n <= run["total_epochs"] for n in so_far)
        assert run["best"] == max(c["value"] for c in run["completions"])
        assert 0.0 <= run["best"] <= 1.0
        assert 0 < run["epochs_to_target"] <= run["total_epochs"]
        if run["strategy"] == "random":  # the target is random search's own best: it always reaches it
            assert run["reached"] and run["target"] == run["best"]

    for entry in report["strategies"]:
        assert entry["seeds"] == len(seeds) and 0 <= entry["reached"] <= len(seeds)
        assert entry["ratio_vs_random"] is not None and entry["ratio_vs_random"] > 0
        assert len(entry["per_seed_ratio"]) == len(seeds)
    assert report["strategies"][0]["ratio_vs_random"] == 1.0
    assert report["strategies"][0]["mean_curve_ratio"] == 1.0
    finals = [run["best"] for run in report["runs"] if run["strategy"] == "random"]
    assert report["mean_curve_target"] == sum(finals) / len(finals)
    assert set(report["target_in_shared_start"]) <= set(seeds)
    goal = report["goal"]
    assert goal["strategy"] == "tpe+hyperband" and goal["max_ratio"] == 0.3
    assert goal["met"] == (goal["ratio"] <= 0.3)


def test_a_minimised_objective_counts_the_lowest_value_as_the_best(run_benchmark: Callable[..., str]) -> None:
    report = _quick(run_benchmark, "--objective", "val_loss", "--seeds", "1")
    assert report["settings"]["metric"] == "val_loss" and report["settings"]["direction"] == "minimize"
    for run in report["runs"]:
        values = [c["value"] for c in run["completions"]]
        assert run["best"] == min(values) and run["best"] > 0.0
        target = run["target"]
        first = next((c["epochs_so_far"] for c in run["completions"] if c["value"] <= target), None)
        assert run["reached"] == (first is not None)
        assert run["epochs_to_target"] == (first if first is not None else run["total_epochs"])


def test_a_subset_of_strategies_runs_with_more_tpe_options(run_benchmark: Callable[..., str]) -> None:
    options = json.dumps({"multivariate": True, "constant_liar": True})
    report = _quick(run_benchmark, "--seeds", "1", "--strategies", "tpe+successiveHalving", "--tpe-options", options)
    # random search (the baseline) and TPE + Hyperband (the goal's) always run
    assert [s["strategy"] for s in report["strategies"]] == ["random", "tpe+hyperband", "tpe+successiveHalving"]
    assert report["settings"]["tpe_options"] == {"n_startup_trials": 1, "constant_liar": True, "multivariate": True}


def _run(seed: int, *completions: tuple[int, float]) -> dict[str, Any]:
    return {"seed": seed, "completions": [{"epochs_so_far": e, "value": v} for e, v in completions]}


def test_the_mean_curve_starts_once_every_seed_has_a_completion_and_keeps_each_seeds_best(
    load_benchmark: Callable[[str], ModuleType],
) -> None:
    mean_curve_epochs = load_benchmark("hpo_efficiency.py").mean_curve_epochs
    runs = [_run(0, (10, 0.9), (30, 0.8), (50, 1.0)), _run(1, (20, 0.7), (40, 0.95))]
    assert mean_curve_epochs(runs, 0.8, True) == 20  # (0.9 + 0.7) / 2 = 0.8 once seed 1 has its first
    assert mean_curve_epochs(runs, 0.9, True) == 40  # seed 0 keeps 0.9 (not 0.8 at epoch 30): (0.9 + 0.95) / 2
    assert mean_curve_epochs(runs, 0.975, True) == 50
    assert mean_curve_epochs(runs, 0.99, True) is None  # a study that ended keeps its final best: never
    assert mean_curve_epochs(runs, 0.85, False) == 20  # minimised: the lowest so far, (0.9 + 0.7) / 2 <= 0.85
    assert mean_curve_epochs(runs, 0.75, False) == 30  # (0.8 + 0.7) / 2
