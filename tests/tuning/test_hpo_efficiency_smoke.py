"""benchmarks/hpo_efficiency.py runs end to end: ``--quick --output json`` in a subprocess, its report consistent.

A subprocess keeps the benchmark's ``torch.set_num_threads(1)`` out of this test session. No timing asserts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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
