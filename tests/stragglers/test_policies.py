"""Each straggler policy's decisions on tiny hand-built batches (one row per job)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from kubetune.core.stragglers import (
    Adaptive,
    Decision,
    Late,
    NoReplication,
    Replicate,
    SingleFork,
    Spark,
    TailFit,
    TaskBatch,
    TaskState,
    fit_tail,
)


def stack(*batches: TaskBatch) -> TaskBatch:
    """Jobs side by side (all with the same number of tasks)."""
    return TaskBatch(
        **{
            field.name: np.concatenate([getattr(batch, field.name) for batch in batches])
            for field in dataclasses.fields(TaskBatch)
        }
    )


def done(at: float) -> TaskState:
    return TaskState(start=0.0, finished_at=at, copies=0)


def running(progress: float | None = None, rate: float | None = None, copies: int = 1) -> TaskState:
    return TaskState(
        start=0.0,
        progress=progress,
        rate=rate,
        copies=copies,
        launched=copies,
        first_copy_at=None if copies == 1 else 0.5,
    )


def test_none_does_nothing() -> None:
    batch = TaskBatch.from_tasks(5.0, [done(1.0), running()])
    decision = NoReplication().decide(batch)
    assert decision.for_job(0) == ()
    assert decision.wake_at.tolist() == [math.inf]


class TestSpark:
    policy = Spark(quantile=0.75, multiplier=1.5)

    def test_copies_a_task_past_multiplier_times_the_median_once_the_quantile_is_done(self) -> None:
        # 3 of 4 done (>= floor(0.75 * 4)): median 2, threshold 3.
        tasks = [done(1.0), done(2.0), done(3.0), running()]
        late = TaskBatch.from_tasks(3.5, tasks)
        early = TaskBatch.from_tasks(2.5, tasks)
        decision = self.policy.decide(stack(late, early))
        assert decision.for_job(0) == (Replicate(task=3, copies=1, kill_original=False),)
        assert decision.for_job(1) == ()
        assert decision.wake_at.tolist() == [math.inf, 3.0]  # wake exactly when the threshold is crossed

    def test_waits_for_the_quantile(self) -> None:
        batch = TaskBatch.from_tasks(100.0, [done(1.0), done(2.0), running(), running()])
        decision = self.policy.decide(batch)
        assert decision.for_job(0) == ()
        assert decision.wake_at.tolist() == [math.inf]

    def test_one_copy_per_task_at_most(self) -> None:
        batch = TaskBatch.from_tasks(10.0, [done(1.0), done(2.0), done(3.0), running(copies=2)])
        assert self.policy.decide(batch).for_job(0) == ()

    def test_spark_four_defaults_wait_longer(self) -> None:
        spark4 = Spark(quantile=0.9, multiplier=3.0)
        tasks = [done(1.0)] * 9 + [running()]
        assert spark4.decide(TaskBatch.from_tasks(2.9, tasks)).wake_at.tolist() == [3.0]
        assert spark4.decide(TaskBatch.from_tasks(3.0, tasks)).copies[0, 9] == 1


class TestLate:
    policy = Late()

    def test_copies_the_slow_task_with_the_longest_time_left(self) -> None:
        # Time left (1 - progress) / rate: t1 8 s (slow), t2 9.1 s (the longest, but not among the slowest 25%),
        # t3, t4 4.5 s, t5 4.5 s (slow), t6 2 s (slow).
        tasks = [
            done(1.0),
            running(progress=0.2, rate=0.1),
            running(progress=0.0, rate=0.11),
            running(progress=0.1, rate=0.2),
            running(progress=0.1, rate=0.2),
            running(progress=0.55, rate=0.1),
            running(progress=0.8, rate=0.1),
        ]
        decision = self.policy.decide(TaskBatch.from_tasks(2.0, tasks))
        # The slowest 25% of rates: <= 0.1 (tasks 1, 5, 6); the longest time left among them: task 1.
        assert decision.for_job(0) == (Replicate(task=1, copies=1),)

    def test_needs_a_free_slot_and_respects_the_cap(self) -> None:
        all_busy = TaskBatch.from_tasks(1.0, [running(0.1, 0.1), running(0.5, 0.5)])
        assert self.policy.decide(all_busy).for_job(0) == ()
        in_flight = [done(1.0), done(1.0), running(0.1, 0.1, copies=2), running(0.1, 0.05)]
        assert self.policy.decide(TaskBatch.from_tasks(2.0, in_flight)).for_job(0) == ()  # cap: 1 copy in flight
        wide = Late(cap=0.5).decide(TaskBatch.from_tasks(2.0, in_flight))
        assert wide.for_job(0) == (Replicate(task=3, copies=1),)

    def test_several_copies_when_the_cap_allows(self) -> None:
        # 20 slots: a cap of 2 copies; 3 tasks done leave 3 slots free; the two slowest, longest tasks are copied.
        tasks = (
            [done(1.0)] * 3 + [running(0.5, 0.5)] * 14 + [running(0.1, 0.05), running(0.2, 0.05), running(0.3, 0.05)]
        )
        decision = self.policy.decide(TaskBatch.from_tasks(2.0, tasks))
        assert decision.for_job(0) == (Replicate(task=17, copies=1), Replicate(task=18, copies=1))

    def test_unknown_rates_are_not_copied(self) -> None:
        batch = TaskBatch.from_tasks(2.0, [done(1.0), running(), running()])
        assert self.policy.decide(batch).for_job(0) == ()


class TestSingleFork:
    def test_forks_when_the_fraction_is_done(self) -> None:
        policy = SingleFork(when_done=0.9, replicas=2, original="kill")
        nine = TaskBatch.from_tasks(5.0, [done(1.0)] * 9 + [running()])
        eight = TaskBatch.from_tasks(5.0, [done(1.0)] * 8 + [running(), running()])
        decision = policy.decide(stack(nine, eight))
        assert decision.for_job(0) == (Replicate(task=9, copies=2, kill_original=True),)
        assert decision.for_job(1) == ()

    def test_forks_once(self) -> None:
        policy = SingleFork(when_done=0.5, replicas=1)
        forked = TaskBatch.from_tasks(5.0, [done(1.0), done(2.0), running(copies=2), running()])
        assert policy.decide(forked).for_job(0) == ()

    def test_forks_at_a_time(self) -> None:
        policy = SingleFork(at_time=4.0, replicas=1, original="keep")
        tasks = [done(1.0), running(), running()]
        before = policy.decide(TaskBatch.from_tasks(3.0, tasks))
        assert before.for_job(0) == () and before.wake_at.tolist() == [4.0]
        at = policy.decide(TaskBatch.from_tasks(4.0, tasks))
        assert at.for_job(0) == (Replicate(1, 1), Replicate(2, 1))
        assert at.wake_at.tolist() == [math.inf]

    def test_fraction_counts_are_floored_robustly(self) -> None:
        policy = SingleFork(when_done=0.29, replicas=1)  # 0.29 * 100 = 28.999...: still 29
        batch = TaskBatch.from_tasks(5.0, [done(1.0)] * 29 + [running()] * 71)
        assert len(policy.decide(batch).for_job(0)) == 71


class TestAdaptive:
    def test_never_kills_on_a_log_concave_fit(self) -> None:
        policy = Adaptive(max_extra_cost=10.0)
        for shift in (0.0, 0.5, 2.0):
            fit = TailFit("shiftedexp", shift, 1.0, 0.0, 100, 0)
            assert all(plan.original == "keep" for plan in policy.candidates(fit, 10))
            choice = policy.choose(fit, 10)
            assert choice.plan is not None and choice.plan.original == "keep"

    def test_no_budget_means_no_replication_on_a_shifted_exponential(self) -> None:
        choice = Adaptive(max_extra_cost=0.0).choose(TailFit("shiftedexp", 1.0, 1.0, 0.0, 100, 0), 10)
        assert choice.plan is None

    def test_replicates_a_heavy_tail_and_considers_kill(self) -> None:
        policy = Adaptive(max_extra_cost=0.1)
        fit = TailFit("pareto", 1.0, 1.5, 0.0, 100, 0)
        assert {plan.original for plan in policy.candidates(fit, 10)} == {"keep", "kill"}
        choice = policy.choose(fit, 10)
        assert choice.plan is not None
        assert choice.expected.mean_latency < 0.5 * dict(choice.forecasts)[None].mean_latency
        assert choice.expected.mean_cost <= 1.1 * dict(choice.forecasts)[None].mean_cost

    def test_fits_the_batch_then_forks(self) -> None:
        rng = np.random.default_rng(0)
        times = np.sort(1.0 + rng.exponential(1.0, 10))
        tasks = [done(float(t)) for t in times[:9]] + [running()]
        batch = TaskBatch.from_tasks(float(times[8]), tasks)
        policy = Adaptive(max_extra_cost=0.5, history=list(1.0 + rng.exponential(1.0, 200)))
        fit = policy.fit(batch)
        assert fit is not None and fit.family == "shiftedexp"
        decision = policy.decide(batch)
        assert decision.copies[0, 9] >= 1 and not decision.kill_original.any()

    def test_a_moved_task_is_censored_at_its_finish_a_kept_copy_at_its_first_copy(self) -> None:
        exact = [10.0, 11.0, 12.0, 13.0, 14.0]
        moved = TaskState(start=0.0, finished_at=40.0, copies=0, launched=2, first_copy_at=15.0, cancelled=True)
        kept = TaskState(start=0.0, finished_at=30.0, copies=0, launched=2, first_copy_at=20.0)
        moving = TaskState(start=5.0, copies=1, launched=2, first_copy_at=16.0, cancelled=True)
        never_copied = TaskState(start=8.0)
        batch = TaskBatch.from_tasks(50.0, [*map(done, exact), moved, kept, moving, never_copied])
        fit = Adaptive().fit(batch)
        # moved: its finish 40; kept: its first copy 20 (the original may have won the race); moving: elapsed 45.
        expected = fit_tail(exact, [40.0, 20.0, 45.0, 42.0])
        assert fit is not None and expected is not None
        assert (fit.family, fit.exact, fit.censored) == (expected.family, 5, 4)
        assert fit.location == pytest.approx(expected.location) and fit.shape == pytest.approx(expected.shape)

    def test_waits_for_enough_observations(self) -> None:
        batch = TaskBatch.from_tasks(3.0, [done(1.0), done(2.0), running(), running()])
        assert Adaptive().decide(batch).for_job(0) == ()


def test_decision_nothing_and_batch_shapes() -> None:
    batch = TaskBatch.from_tasks(1.0, [running(), done(0.5)], slots=4)
    assert batch.slots.tolist() == [4]
    assert batch.copies.tolist() == [[1, 0]]
    assert batch.done.tolist() == [1]
    nothing = Decision.nothing(batch)
    assert nothing.copies.shape == (1, 2) and nothing.wake_at.shape == (1,)
    with pytest.raises(ValueError, match=r"TaskBatch\.now"):
        dataclasses.replace(batch, now=np.zeros(2))
    with pytest.raises(ValueError, match="at least one task"):
        TaskBatch.from_tasks(0.0, [])
