"""The closed forms of single-fork replication (shifted exponential tasks): the issue's numbers, and limits."""

from __future__ import annotations

import math

import pytest
from kubetune.core.stragglers import theory


def test_harmonic_numbers() -> None:
    assert theory.harmonic(0) == 0.0
    assert theory.harmonic(1) == 1.0
    assert theory.harmonic(10) == pytest.approx(7381 / 2520)
    with pytest.raises(ValueError, match="n must be >= 0"):
        theory.harmonic(-1)


@pytest.mark.parametrize(
    ("stragglers", "replicas", "original", "shift", "latency", "cost"),
    [
        (1, 1, "keep", 1.0, 3.7450, 20.632),
        (1, 1, "kill", 1.0, 4.9290, 21.000),
        (2, 2, "keep", 0.1, 2.0954, 11.381),
    ],
)
def test_the_issue_numbers(
    stragglers: int, replicas: int, original: str, shift: float, latency: float, cost: float
) -> None:
    got = theory.single_fork(10, stragglers, replicas, "keep" if original == "keep" else "kill", shift, 1.0)
    assert got.mean_latency == pytest.approx(latency, abs=1e-4)
    assert got.mean_cost == pytest.approx(cost, abs=1e-3)


def test_baseline_and_kill_can_be_worse_than_nothing() -> None:
    none = theory.baseline(10, 1.0, 1.0)
    # approx's __eq__ compares each element; mypy's strict equality sees only float against Approx, hence the ignore.
    assert (none.mean_latency, none.mean_cost) == (pytest.approx(3.9290, abs=1e-4), pytest.approx(20.0))  # type: ignore[comparison-overlap]
    assert theory.single_fork_kill(10, 1, 1, 1.0, 1.0).mean_latency > none.mean_latency


def test_no_stragglers_is_no_replication() -> None:
    none = theory.baseline(8, 0.5, 2.0)
    for original in ("keep", "kill"):
        got = theory.single_fork(8, 0, 3, original, 0.5, 2.0)
        assert got.mean_latency == pytest.approx(none.mean_latency)
        assert got.mean_cost == pytest.approx(none.mean_cost)


def test_pure_exponential_keep_is_free_and_kill_with_one_copy_changes_nothing() -> None:
    # Memoryless: with no shift a kept replica adds no expected cost; a kill-and-restart with one copy is a no-op.
    none = theory.baseline(10, 0.0, 1.0)
    keep = theory.single_fork_keep(10, 3, 2, 0.0, 1.0)
    kill = theory.single_fork_kill(10, 3, 1, 0.0, 1.0)
    assert keep.mean_cost == pytest.approx(none.mean_cost)
    assert keep.mean_latency == pytest.approx(none.mean_latency - 2 / 3 * theory.harmonic(3))
    # The ignore: approx against float, as in test_baseline_and_kill_can_be_worse_than_nothing.
    assert (kill.mean_latency, kill.mean_cost) == (pytest.approx(none.mean_latency), pytest.approx(none.mean_cost))  # type: ignore[comparison-overlap]


@pytest.mark.parametrize(
    ("tasks", "stragglers", "replicas", "shift", "rate", "problem"),
    [
        (10, 10, 1, 1.0, 1.0, "stragglers"),
        (10, -1, 1, 1.0, 1.0, "stragglers"),
        (10, 1, 0, 1.0, 1.0, "replicas"),
        (10, 1, 1, -1.0, 1.0, "shift"),
        (10, 1, 1, 1.0, 0.0, "rate"),
        (0, 0, 1, 1.0, 1.0, "tasks"),
    ],
)
def test_bad_arguments_are_named(
    tasks: int, stragglers: int, replicas: int, shift: float, rate: float, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        theory.single_fork_keep(tasks, stragglers, replicas, shift, rate)


def test_keep_never_loses_latency_and_more_replicas_help() -> None:
    latencies = [theory.single_fork_keep(10, 4, r, 0.5, 1.0).mean_latency for r in (1, 2, 3, 4)]
    assert latencies == sorted(latencies, reverse=True)
    assert latencies[0] < theory.baseline(10, 0.5, 1.0).mean_latency
    assert all(math.isfinite(value) for value in latencies)
