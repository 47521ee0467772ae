"""benchmarks/warm_start.py runs end to end (three tiny studies: cold, warm, forked); the report's shape, no timing
asserts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest


@pytest.mark.slow
def test_a_tiny_run_reports_both_modes_and_their_ratios(run_benchmark: Callable[..., str]) -> None:
    tiny = ["--trials", "2", "--epochs", "1", "--sampler", "random", "--no-pruning", "--output", "json"]
    report: dict[str, Any] = json.loads(run_benchmark("warm_start.py", *tiny, timeout=280))
    assert [r["mode"] for r in report["runs"]] == ["cold", "warm", "forkserver"]
    for run in report["runs"]:
        assert run["trials"]["complete"] == 2
        assert run["workers"] == 2 and run["startup_median_s"] > 0 and run["wall_s"] > 0 and run["cpu_s"] > 0
    assert set(report["ratios_over_cold"]) == {"warm", "forkserver"}
    for ratios in report["ratios_over_cold"].values():
        assert set(ratios) == {"wall_s", "startup_median_s", "startup_mean_s", "cpu_s"}
        assert all(v > 0 for v in ratios.values())
