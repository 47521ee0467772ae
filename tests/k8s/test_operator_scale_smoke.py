"""A small run of benchmarks/operator_scale.py: the benchmark itself keeps working (figures are not asserted)."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.timeout(120)
def test_operator_scale_benchmark_runs_small(
    capsys: pytest.CaptureFixture[str], load_benchmark: Callable[[str], ModuleType]
) -> None:
    assert load_benchmark("operator_scale.py").main(["--jobs", "20", "--relaunch-jobs", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in (
        "raw_creates_per_s",
        "jobs_per_s",
        "jobs_ratio_to_raw",
        "relaunch_p50_s",
        "relaunch_p99_s",
        "operator_peak_rss_mib",
        "goals",
    ):
        assert key in result, key
    assert result["jobs_succeeded"] == 20 and result["jobs_failed"] == 0
    assert result["relaunch_samples"] == 3 and result["relaunch_timeouts"] == 0
    assert result["raw_creates_per_s"] > 0 and result["jobs_per_s"] > 0 and result["operator_peak_rss_mib"] > 10
    assert set(result["goals"]) == {"jobs_per_s", "relaunch_p99_s", "operator_peak_rss"}
