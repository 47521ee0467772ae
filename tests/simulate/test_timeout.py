"""The per-task ``timeout`` policy and the queue-aware ``adaptive`` policy: exact on hand-made draws, and the engine
against the forecasts' independent Monte Carlo, with and without a queue."""

from __future__ import annotations

import numpy as np
import pytest
from kubetune.core.stragglers import (
    Adaptive,
    ForkPlan,
    TailFit,
    TaskBatch,
    TaskState,
    TaskTimeout,
    TimeoutPlan,
    build_policy,
    monte_carlo,
)
from kubetune.simulate import parse_distribution, simulate

from .test_engine import run


def test_a_task_past_the_timeout_gets_its_copy_and_the_first_finish_wins() -> None:
    # Task 1 (10) passes after=3 at t=3; its copy (2) ends at 5: T=5, C = 1 + (5 + 2) = 8.
    assert run([1, 10], [2], "timeout", afterSeconds=3) == (5.0, 8.0)
    # kill: the original stops at 3; T = 3 + 2, C = 1 + 3 + 2.
    assert run([1, 10], [2], "timeout", afterSeconds=3, original="kill") == (5.0, 6.0)
    # A copy slower than the original: the original wins at 10; the copy ran from 3 to 10.
    assert run([1, 10], [20], "timeout", afterSeconds=3) == (10.0, 1 + 10 + 7)
    # Nobody reaches the timeout: nothing is copied.
    assert run([1, 2], [], "timeout", afterSeconds=3) == (2.0, 3.0)


def test_each_task_is_judged_on_its_own_clock_and_copied_once() -> None:
    policy = build_policy("timeout", afterSeconds=5, replicas=2)
    tasks = [
        TaskState(start=0.0),  # running 6 s: due
        TaskState(start=4.0),  # running 2 s: due at 9
        TaskState(start=0.0, launched=3, copies=3, first_copy_at=5.0),  # copied already
        TaskState(start=0.0, finished_at=3.0),
    ]
    decision = policy.decide(TaskBatch.from_tasks(6.0, tasks))
    assert decision.copies.tolist() == [[2, 0, 0, 0]]
    assert not decision.kill_original.any()
    assert decision.wake_at.tolist() == [9.0]


@pytest.mark.parametrize("slots", [None, 4])
@pytest.mark.parametrize("original", ["keep", "kill"])
def test_engine_agrees_with_the_forecast_monte_carlo_in_a_queue(slots: int | None, original: str) -> None:
    distribution = parse_distribution("shiftedpareto:8,17,2")
    plan = TimeoutPlan(40.0, 1, "keep" if original == "keep" else "kill")
    [baseline, expected] = monte_carlo(distribution.sample, 16, [None, plan], draws=20_000, seed=5, slots=slots)
    policy = build_policy("timeout", afterSeconds=40.0, original=original)
    outcome = simulate(distribution, policy, tasks=16, jobs=20_000, seed=6, slots=slots)
    assert outcome.baseline_latency.mean() == pytest.approx(baseline.mean_latency, rel=0.03)
    assert outcome.latency.mean() == pytest.approx(expected.mean_latency, rel=0.03)
    assert outcome.cost.mean() == pytest.approx(expected.mean_cost, rel=0.03)


def test_a_fork_plan_cannot_be_forecast_for_a_queue() -> None:
    with pytest.raises(ValueError, match="every task started at once"):
        monte_carlo(parse_distribution("pareto:1,2").sample, 8, [ForkPlan(0.5, 1, "keep")], draws=100, slots=2)


def test_in_a_queue_adaptive_only_considers_timeouts_and_never_kills_on_a_light_tail() -> None:
    policy = Adaptive()
    heavy = TailFit("pareto", 25.0, 2.0, 0.0, 16, 0)
    queued = policy.candidates(heavy, 16, 4)
    assert queued and all(isinstance(plan, TimeoutPlan) for plan in queued)
    assert {plan.original for plan in queued} == {"keep", "kill"}
    assert any(not isinstance(plan, TimeoutPlan) for plan in policy.candidates(heavy, 16, 16))
    light = TailFit("shiftedexp", 10.0, 0.1, 0.0, 16, 0)
    assert all(plan.original == "keep" for plan in policy.candidates(light, 16, 4))
    # The timeouts sit at the fit's quantiles.
    assert sorted({plan.after for plan in queued if isinstance(plan, TimeoutPlan)}) == pytest.approx(
        [25.0 * (1 - q) ** -0.5 for q in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)], rel=1e-2
    )


def test_adaptive_cuts_a_heavy_tailed_queue_within_budget() -> None:
    # 16 tasks on 4 slots, the live study's shape (maxTrials 16, parallelTrials 4): adaptive sees only the tasks
    # started so far, so it is told the whole job's size, as the study controller tells it maxTrials.
    distribution = parse_distribution("pareto:1,2")
    history = list(distribution.sample(np.random.default_rng(1), (200,)))
    policy = build_policy("adaptive", maxExtraCost=0.05, tasks=16, history=history)
    outcome = simulate(distribution, policy, tasks=16, jobs=4_000, seed=11, slots=4)
    choice = policy.last_choice  # type: ignore[attr-defined]
    assert choice.fit.family == "pareto" and isinstance(choice.plan, TimeoutPlan)
    assert policy.describe().startswith("adaptive(maxExtraCost=0.05, tasks=16): timeout(afterSeconds=")
    assert outcome.latency.mean() < 0.8 * outcome.baseline_latency.mean()
    assert outcome.cost.mean() <= 1.05 * 1.02 * outcome.baseline_cost.mean()
    # Without the job's size it would plan for the started tasks alone: a queue of 4 on 4 slots.
    blind = build_policy("adaptive", maxExtraCost=0.05, history=history)
    blind.decide(TaskBatch.from_tasks(1.0, [TaskState(start=0.0)] * 4, slots=4))
    assert blind.last_choice.forecasts[0][1].mean_latency < choice.forecasts[0][1].mean_latency / 2  # type: ignore[attr-defined]


def test_adaptive_caps_the_extra_copies_running_at_once_longest_running_first() -> None:
    policy = Adaptive(max_copies_fraction=0.1, tasks=4)
    batch = TaskBatch.from_tasks(10.0, [TaskState(start=s) for s in (3.0, 0.0, 2.0, 1.0)], slots=4)
    due = TaskTimeout(after=5.0, replicas=1).decide(batch)
    assert due.copies.tolist() == [[1, 1, 1, 1]]
    # 10% of 4 slots: one extra copy at a time, for the task running longest (task 1, since t=0).
    assert policy.capped(batch, due).copies.tolist() == [[0, 1, 0, 0]]
    # One copy already in flight: none more; a kill with one copy replaces its original and adds none.
    busy = TaskBatch.from_tasks(
        10.0, [TaskState(start=0.0, copies=2, launched=2, first_copy_at=6.0), TaskState(start=1.0)], slots=4
    )
    keep = TaskTimeout(after=5.0).decide(busy)
    kill = TaskTimeout(after=5.0, original="kill").decide(busy)
    assert policy.capped(busy, keep).copies.tolist() == [[0, 0]]
    assert policy.capped(busy, kill).copies.tolist() == [[0, 1]]
    assert policy.capped(busy, kill).kill_original.tolist() == [[False, True]]
    # Without the option, no cap.
    assert Adaptive().capped(batch, due) is due
