"""A speed smoke: 200,000 jobs of 10 tasks under a single fork (the goal is < 10 s on 2 cores; the figure is in
benchmarks/simulate_speed.py, the bound here is generous for busy CI machines)."""

from __future__ import annotations

import time

from kubetune.core.stragglers import build_policy
from kubetune.simulate import parse_distribution, simulate


def test_two_hundred_thousand_jobs_of_ten_tasks() -> None:
    began = time.perf_counter()
    outcome = simulate(
        parse_distribution("shiftedexp:1,1"),
        build_policy("singleFork", forkWhenDone=0.9, replicas=1, original="keep"),
        tasks=10,
        jobs=200_000,
        seed=0,
    )
    seconds = time.perf_counter() - began
    assert outcome.jobs == 200_000
    assert seconds < 30, f"{seconds:.1f} s"
