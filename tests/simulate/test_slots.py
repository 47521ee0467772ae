"""The queue model (``--slots S``): S = n is the old engine exactly; policy none is list scheduling; hand-made jobs
show what a policy sees (only started tasks) and that replicas take no slot; replication still pays on heavy tails."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kubetune.core.stragglers import Decision, StragglerPolicy, TaskBatch, build_policy, list_schedule
from kubetune.simulate import parse_distribution, simulate
from kubetune.simulate.engine import Floats


class Scripted:
    """A 'distribution' that hands out given originals (one job) and then given copy durations, in order."""

    def __init__(self, originals: list[float], copies: Sequence[float] = ()) -> None:
        self.originals = np.array([originals], dtype=np.float64)
        self.copies = list(copies)
        self.startup = 0.0

    @property
    def mean(self) -> float:
        return float(self.originals.mean())

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> Floats:
        if isinstance(size, tuple):
            return self.originals.copy()
        taken, self.copies = self.copies[:size], self.copies[size:]
        return np.array(taken, dtype=np.float64)

    def describe(self) -> str:
        return "scripted"


class Recorder(StragglerPolicy):
    """Wraps a policy and records what each call saw: (now, tasks in the batch, starts, done)."""

    name = "recorder"

    def __init__(self, inner: StragglerPolicy) -> None:
        self.inner = inner
        self.calls: list[tuple[float, int, list[float], int]] = []

    def decide(self, batch: TaskBatch) -> Decision:
        assert batch.jobs == 1
        self.calls.append((float(batch.now[0]), batch.tasks, batch.start[0].tolist(), int(batch.done[0])))
        assert (batch.slots == 2).all()
        return self.inner.decide(batch)


# Today's engine (every task at 0) on pareto:1,1.5, 3000 jobs x 10 tasks, seed 21: sums of latency and cost, frozen
# before the queue model was added. S = n (and the default) must reproduce them.
GOLDEN: list[tuple[str, dict[str, Any], float, float]] = [
    ("none", {}, 34743.85161840881, 87176.2479386804),
    ("spark", {}, 12983.966044604349, 71999.33039919176),
    ("late", {}, 12004.430593135521, 68282.21211087235),
    ("adaptive", {}, 8842.970625193173, 90755.3177832615),
    ("singleFork", {"forkWhenDone": 0.8, "replicas": 2, "original": "kill"}, 13808.814878094558, 74589.08172007586),
]


@pytest.mark.parametrize(("name", "options", "latency", "cost"), GOLDEN)
def test_as_many_slots_as_tasks_is_the_old_engine(
    name: str, options: dict[str, Any], latency: float, cost: float
) -> None:
    dist = parse_distribution("pareto:1,1.5")
    runs = [
        simulate(dist, build_policy(name, **options), tasks=10, jobs=3000, seed=21, slots=slots)
        for slots in (None, 10, 25)
    ]
    for run in runs:
        assert run.latency.sum() == pytest.approx(latency, rel=1e-12)
        assert run.cost.sum() == pytest.approx(cost, rel=1e-12)
        assert np.array_equal(run.latency, runs[0].latency) and np.array_equal(run.cost, runs[0].cost)
        assert np.array_equal(run.baseline_latency, runs[0].baseline_latency)


def _list_schedule_by_hand(durations: list[float], slots: int) -> float:
    """One job, the plain way: a heap of slot free times; each task in order takes the slot that frees first."""
    free = [0.0] * slots
    for duration in durations:
        start = heapq.heappop(free)
        heapq.heappush(free, start + duration)
    return max(free)


@pytest.mark.parametrize("dist", ["pareto:1,1.5", "shiftedexp:1,1", "empirical:ties"])
@pytest.mark.parametrize(("tasks", "slots"), [(10, 1), (10, 3), (10, 9), (7, 4), (16, 4)])
def test_no_replication_on_slots_is_list_scheduling(dist: str, tasks: int, slots: int, tmp_path: Path) -> None:
    if dist == "empirical:ties":  # small integers: tasks often end at the same instant
        path = tmp_path / "ties.txt"
        path.write_text("1\n2\n2\n3\n")
        dist = f"empirical:{path}"
    distribution = parse_distribution(dist)
    jobs = 300
    outcome = simulate(distribution, build_policy("none"), tasks=tasks, jobs=jobs, seed=5, slots=slots)
    # The same originals the engine drew (chunk 0's originals stream: one chunk here).
    originals_stream, _ = np.random.SeedSequence(5).spawn(1)[0].spawn(2)
    originals = distribution.sample(np.random.default_rng(originals_stream), (jobs, tasks))
    expected = np.array([_list_schedule_by_hand(row.tolist(), slots) for row in originals])
    np.testing.assert_allclose(outcome.latency, expected, rtol=1e-12)
    np.testing.assert_allclose(outcome.baseline_latency, expected, rtol=1e-12)
    np.testing.assert_allclose(outcome.cost, originals.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(outcome.baseline_cost, originals.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(list_schedule(originals, slots), expected, rtol=1e-12)
    assert outcome.slots == slots


def test_the_policy_sees_only_the_started_tasks_and_twice_when_a_slot_is_refilled() -> None:
    # Tasks 4, 1, 2, 10 on 2 slots: 0 and 1 start at 0; 2 at 1 (when 1 ends); 3 at 3 (when 2 ends); the job ends at 13.
    recorder = Recorder(build_policy("none"))
    outcome = simulate(Scripted([4, 1, 2, 10]), recorder, tasks=4, jobs=1, slots=2)
    assert (float(outcome.latency[0]), float(outcome.cost[0])) == (13.0, 17.0)
    assert float(outcome.baseline_latency[0]) == 13.0
    assert recorder.calls == [
        (0.0, 2, [0.0, 0.0], 0),
        (1.0, 2, [0.0, 0.0], 1),  # task 1 told, task 2 not asked yet
        (1.0, 3, [0.0, 0.0, 1.0], 1),  # ... and asked again once task 2 started
        (3.0, 3, [0.0, 0.0, 1.0], 2),
        (3.0, 4, [0.0, 0.0, 1.0, 3.0], 2),
        (4.0, 4, [0.0, 0.0, 1.0, 3.0], 3),
    ]


def test_replicas_take_no_slot_and_stop_with_their_task() -> None:
    # Tasks 1, 10, 2, 3 on 2 slots, fork once half of the started tasks are done, one replica (4 long) kept racing.
    # t=1: task 0 ends (1 of 2 done): task 1 gets a replica (ends at 5); task 2 starts on the free slot anyway.
    # t=3: task 2 ends, task 3 starts (ends at 6). t=5: the replica wins task 1 (original cancelled). T = 6.
    # C = 1 + (5 + 4) + 2 + 3 = 15. Without replication: T = 10 (task 1), C = 16.
    policy = build_policy("singleFork", forkWhenDone=0.5, replicas=1)
    outcome = simulate(Scripted([1, 10, 2, 3], [4]), policy, tasks=4, jobs=1, slots=2)
    assert (float(outcome.latency[0]), float(outcome.cost[0])) == (6.0, 15.0)
    assert (float(outcome.baseline_latency[0]), float(outcome.baseline_cost[0])) == (10.0, 16.0)


def test_a_killed_original_keeps_its_slot_until_the_task_finishes() -> None:
    # Tasks 1, 10, 2 on 2 slots; fork at t=0.5, kill, one replica of 1: tasks 0 and 1 restart at 0.5 (end at 1.5).
    # Task 0's slot frees at 1.5 (not at the kill): task 2 starts then, ends at 3.5. C = 0.5*2 + 1 + 1 + 2.
    policy = build_policy("singleFork", forkAtTime=0.5, replicas=1, original="kill")
    outcome = simulate(Scripted([1, 10, 2], [1, 1]), policy, tasks=3, jobs=1, slots=2)
    assert (float(outcome.latency[0]), float(outcome.cost[0])) == (3.5, 5.0)


@pytest.mark.parametrize("dist", ["pareto:1,1.5", "hyperexp:0.9,1,0.1"])
def test_replication_helps_heavy_tails_on_slots_too(dist: str) -> None:
    distribution = parse_distribution(dist)
    for name, options in [
        ("singleFork", {"forkWhenDone": 0.9, "original": "keep"}),
        ("singleFork", {"forkWhenDone": 0.9, "original": "kill"}),
        ("spark", {}),
        ("late", {}),
        ("adaptive", {}),
    ]:
        outcome = simulate(distribution, build_policy(name, **options), tasks=10, jobs=10_000, seed=8, slots=5)
        assert outcome.latency.mean() < 0.8 * outcome.baseline_latency.mean(), (name, options)
    for name in ("spark", "late"):  # speculation keeps working with a long queue (2 slots, 5 waves)
        outcome = simulate(distribution, build_policy(name), tasks=10, jobs=10_000, seed=8, slots=2)
        assert outcome.latency.mean() < 0.8 * outcome.baseline_latency.mean(), name


def test_slots_do_not_change_the_draws_and_the_same_seed_gives_the_same_numbers() -> None:
    dist = parse_distribution("pareto:1,1.5")
    first = simulate(dist, build_policy("spark"), tasks=10, jobs=5_000, seed=3, slots=4)
    again = simulate(dist, build_policy("spark"), tasks=10, jobs=5_000, seed=3, slots=4)
    assert np.array_equal(first.latency, again.latency) and np.array_equal(first.cost, again.cost)
    wide = simulate(dist, build_policy("none"), tasks=10, jobs=5_000, seed=3)
    assert np.array_equal(first.baseline_cost, wide.baseline_cost)  # same originals
    assert (first.baseline_latency >= wide.baseline_latency).all()


def test_chunks_cover_every_job_with_slots() -> None:
    outcome = simulate(
        parse_distribution("shiftedexp:1,1"),
        build_policy("adaptive"),
        tasks=10,
        jobs=1_001,
        seed=1,
        slots=3,
        chunk_entries=1_000,
    )
    assert outcome.jobs == 1_001 and np.isfinite(outcome.latency).all()


def test_slots_must_be_positive() -> None:
    with pytest.raises(ValueError, match="--slots: must be >= 1"):
        simulate(parse_distribution("shiftedexp:1,1"), build_policy("none"), tasks=3, jobs=2, slots=0)
