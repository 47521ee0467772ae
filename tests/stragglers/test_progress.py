"""The progress model: step rate over a window, LATE's time left, liveness (lost, not slow), trials as gangs."""

from __future__ import annotations

import math

import pytest
from kubetune.core.progress import liveness, step_rate, time_left, trial_progress, worker_progress


def test_step_rate_over_the_window() -> None:
    beats = [(0.0, 0), (10.0, 100), (20.0, 150), (30.0, 200)]
    assert step_rate(beats, window=60) == pytest.approx(200 / 30)
    assert step_rate(beats, window=10) == pytest.approx(50 / 10)  # only the last two
    assert step_rate(beats, window=5) == pytest.approx(50 / 10)  # one beat in the window: reach back one


def test_step_rate_unknown() -> None:
    assert step_rate([]) is None
    assert step_rate([(1.0, 5)]) is None
    assert step_rate([(1.0, 5), (1.0, 7)]) is None
    with pytest.raises(ValueError, match="window"):
        step_rate([(0.0, 0), (1.0, 1)], window=0)


def test_time_left_as_late_does() -> None:
    assert time_left(0.25, 0.05) == pytest.approx(15.0)
    assert time_left(1.0, None) == 0.0
    assert time_left(0.5, None) == math.inf
    assert time_left(0.5, 0.0) == math.inf


def test_liveness_lost_after_two_intervals() -> None:
    assert liveness(None, 100.0, 10.0) == "starting"
    assert liveness(90.0, 100.0, 10.0) == "alive"
    assert liveness(80.0, 100.0, 10.0) == "alive"  # exactly 2x: not yet
    assert liveness(79.0, 100.0, 10.0) == "lost"
    with pytest.raises(ValueError, match="interval"):
        liveness(1.0, 2.0, 0.0)


def test_worker_and_trial_progress() -> None:
    fast = worker_progress([(0.0, 0), (10.0, 100)], 12.0, total_steps=1000, interval=5.0)
    slow = worker_progress([(0.0, 0), (10.0, 50)], 12.0, total_steps=1000, interval=5.0)
    assert fast.progress == pytest.approx(0.1)
    assert fast.rate == pytest.approx(0.01)
    assert fast.eta_s == pytest.approx(90.0)
    assert slow.eta_s == pytest.approx(190.0)
    assert fast.liveness == "alive"
    trial = trial_progress([fast, slow])
    assert (trial.progress, trial.rate, trial.eta_s, trial.liveness) == (0.05, 0.005, 190.0, "alive")
    lost = worker_progress([(0.0, 0), (10.0, 100)], 30.0, total_steps=1000, interval=5.0)
    assert lost.liveness == "lost"
    assert trial_progress([fast, lost]).liveness == "lost"
    unknown = worker_progress([(0.0, 0)], 1.0, total_steps=None, interval=5.0)
    assert (unknown.progress, unknown.rate, unknown.eta_s) == (None, None, math.inf)
    assert trial_progress([]).workers == 0
