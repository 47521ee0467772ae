"""``kubetune simulate`` matches the closed forms of single-fork replication within 1% (shifted exponential tasks)."""

from __future__ import annotations

import numpy as np
import pytest
from kubetune.core.stragglers import build_policy, theory
from kubetune.core.stragglers.order_statistics import count_of
from kubetune.simulate import parse_distribution, simulate

JOBS = 30_000


@pytest.mark.parametrize(
    ("dist", "fraction", "replicas", "original", "latency", "cost"),
    [
        ("shiftedexp:1,1", 0.9, 1, "keep", 3.7450, 20.632),
        ("shiftedexp:1,1", 0.9, 1, "kill", 4.9290, 21.000),
        ("shiftedexp:0.1,1", 0.8, 2, "keep", 2.0954, 11.381),
    ],
)
def test_the_issue_numbers_within_one_percent(
    dist: str, fraction: float, replicas: int, original: str, latency: float, cost: float
) -> None:
    policy = build_policy("singleFork", forkWhenDone=fraction, replicas=replicas, original=original)
    outcome = simulate(parse_distribution(dist), policy, tasks=10, jobs=JOBS, seed=11)
    assert outcome.latency.mean() == pytest.approx(latency, rel=0.01)
    assert outcome.cost.mean() == pytest.approx(cost, rel=0.01)


def test_the_baseline_from_the_same_draws() -> None:
    outcome = simulate(parse_distribution("shiftedexp:1,1"), build_policy("none"), tasks=10, jobs=JOBS, seed=12)
    assert outcome.baseline_latency.mean() == pytest.approx(3.9290, rel=0.01)
    assert outcome.baseline_cost.mean() == pytest.approx(20.0, rel=0.01)
    # No replication is the baseline, job by job.
    np.testing.assert_allclose(outcome.latency, outcome.baseline_latency, rtol=1e-12)
    np.testing.assert_allclose(outcome.cost, outcome.baseline_cost, rtol=1e-12)


@pytest.mark.parametrize(
    ("tasks", "fraction", "replicas", "original", "shift", "rate"),
    [
        (5, 0.6, 1, "keep", 0.5, 2.0),
        (20, 0.75, 2, "kill", 2.0, 0.5),
        (20, 0.95, 3, "keep", 0.0, 1.0),
        (12, 0.5, 1, "kill", 0.2, 3.0),
        (7, 0.29, 2, "keep", 1.0, 0.5),
        (3, 0.34, 1, "kill", 1.0, 1.0),
        (10, 0.1, 3, "keep", 3.0, 1.0),
    ],
)
def test_theory_and_simulation_agree(
    tasks: int, fraction: float, replicas: int, original: str, shift: float, rate: float
) -> None:
    policy = build_policy("singleFork", forkWhenDone=fraction, replicas=replicas, original=original)
    outcome = simulate(parse_distribution(f"shiftedexp:{shift},{rate}"), policy, tasks=tasks, jobs=20_000, seed=13)
    stragglers = tasks - count_of(fraction, tasks)
    expected = theory.single_fork(tasks, stragglers, replicas, "keep" if original == "keep" else "kill", shift, rate)
    assert outcome.latency.mean() == pytest.approx(expected.mean_latency, rel=0.01)
    assert outcome.cost.mean() == pytest.approx(expected.mean_cost, rel=0.01)
    baseline = theory.baseline(tasks, shift, rate)
    assert outcome.baseline_latency.mean() == pytest.approx(baseline.mean_latency, rel=0.01)
    assert outcome.baseline_cost.mean() == pytest.approx(baseline.mean_cost, rel=0.01)
