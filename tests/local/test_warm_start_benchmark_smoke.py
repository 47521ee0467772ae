"""benchmarks/warm_start.py runs end to end (two tiny studies, cold and warm); the report's shape, no timing asserts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARK = ROOT / "benchmarks" / "warm_start.py"


@pytest.mark.slow
def test_a_tiny_run_reports_both_modes_and_their_ratios() -> None:
    tiny = ["--trials", "2", "--epochs", "1", "--sampler", "random", "--no-pruning", "--output", "json"]
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), *tiny],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert [r["mode"] for r in report["runs"]] == ["cold", "warm"]
    for run in report["runs"]:
        assert run["trials"]["complete"] == 2
        assert run["workers"] == 2 and run["startup_median_s"] > 0 and run["wall_s"] > 0 and run["cpu_s"] > 0
    assert set(report["ratios_warm_over_cold"]) == {"wall_s", "startup_median_s", "startup_mean_s", "cpu_s"}
    assert all(v > 0 for v in report["ratios_warm_over_cold"].values())
