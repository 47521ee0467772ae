"""The engine's semantics, exactly on hand-made draws, and against an independent Monte Carlo of single forks."""

from __future__ import annotations

import numpy as np
import pytest
from kubetune.core.stragglers import Decision, ForkPlan, StragglerPolicy, TaskBatch, build_policy, monte_carlo
from kubetune.simulate import SimulationError, parse_distribution, simulate
from kubetune.simulate.engine import Floats


class Scripted:
    """A 'distribution' that hands out given originals (one job) and then given copy durations, in order."""

    def __init__(self, originals: list[float], copies: list[float], startup: float = 0.0) -> None:
        self.originals = np.array([originals], dtype=np.float64)
        self.copies = list(copies)
        self.startup = startup

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


def run(originals: list[float], copies: list[float], policy: str, **options: object) -> tuple[float, float]:
    outcome = simulate(Scripted(originals, copies), build_policy(policy, **options), tasks=len(originals), jobs=1)
    return float(outcome.latency[0]), float(outcome.cost[0])


def test_keep_the_first_finish_wins_and_every_copy_costs_until_then() -> None:
    # Fork at t=1 (1 of 2 done); the replica (2) ends at 3 before the original (10): T=3, C = 1 + 3 + 2.
    assert run([1, 10], [2], "singleFork", forkWhenDone=0.5, replicas=1) == (3.0, 6.0)
    # A replica that loses (20 > 9 left) is cancelled when the original ends at 10: C = 1 + 10 + 9.
    assert run([1, 10], [20], "singleFork", forkWhenDone=0.5, replicas=1) == (10.0, 20.0)
    # Two replicas: the first to finish (1.5) wins, the other is cancelled then: C = 1 + 2.5 + 1.5 + 1.5.
    assert run([1, 10], [4, 1.5], "singleFork", forkWhenDone=0.5, replicas=2) == (2.5, 6.5)


def test_kill_cancels_the_original_whose_time_so_far_is_still_cost() -> None:
    assert run([1, 10], [2], "singleFork", forkWhenDone=0.5, replicas=1, original="kill") == (3.0, 4.0)
    assert run([1, 10], [20], "singleFork", forkWhenDone=0.5, replicas=1, original="kill") == (21.0, 22.0)


def test_the_engine_marks_the_tasks_whose_original_the_policy_killed() -> None:
    seen: list[list[bool]] = []
    policy = build_policy("singleFork", forkWhenDone=0.34, replicas=1, original="kill")
    decide = policy.decide

    def recording(batch: TaskBatch) -> Decision:
        seen.append(batch.original_cancelled[0].tolist())
        return decide(batch)

    policy.decide = recording  # type: ignore[method-assign]
    # At t=1 (one of three done) tasks 1 and 2 are relaunched (killed); at t=6 task 2's copy ends: the policy is asked.
    simulate(Scripted([1, 10, 12], [20, 5]), policy, tasks=3, jobs=1)
    assert seen[0] == [False, False, False] and seen[-1] == [False, True, True]


def test_fork_at_a_time() -> None:
    # At t=0.5 both run: each gets a copy of 1; the first original (1) ties... ends at 1 vs copy at 1.5.
    assert run([1, 10], [1, 1], "singleFork", forkAtTime=0.5, replicas=1) == (1.5, 1 + 0.5 + 1.5 + 1)
    assert run([1, 10], [1, 1], "singleFork", forkAtTime=0.5, replicas=1, original="kill") == (1.5, 0.5 + 0.5 + 1 + 1)


def test_spark_wakes_exactly_at_the_threshold() -> None:
    # 3 of 4 done at t=3 (median 2). Multiplier 1.5: threshold 3, copy at 3, ends at 4: C = 1 + 2 + 3 + 4 + 1.
    assert run([1, 2, 3, 10], [1], "spark", quantile=0.75, multiplier=1.5) == (4.0, 11.0)
    # Multiplier 2: threshold 4, reached between completions: the policy is woken at 4.
    assert run([1, 2, 3, 10], [1], "spark", quantile=0.75, multiplier=2.0) == (5.0, 12.0)


def test_late_copies_only_when_a_slot_is_free() -> None:
    # At t=1 a slot frees; the slowest task (10) has the longest time left: copy at 1, ends at 3.
    assert run([1, 2, 10], [2], "late") == (3.0, 1 + 2 + 3 + 2)


def test_a_policy_that_kills_without_copies_is_rejected() -> None:
    class Killer:
        name = "killer"

        def describe(self) -> str:
            return "killer"

        def decide(self, batch):  # type: ignore[no-untyped-def]
            decision = build_policy("none").decide(batch)
            decision.kill_original[:] = True
            return decision

    with pytest.raises(SimulationError, match="without launching"):
        simulate(parse_distribution("shiftedexp:1,1"), Killer(), tasks=3, jobs=2)  # type: ignore[arg-type]


@pytest.mark.parametrize("dist", ["pareto:1,2.5", "hyperexp:0.9,1,0.1"])
@pytest.mark.parametrize("original", ["keep", "kill"])
def test_engine_agrees_with_an_independent_monte_carlo(dist: str, original: str) -> None:
    distribution = parse_distribution(dist)
    plan = ForkPlan(0.8, 2, "keep" if original == "keep" else "kill")
    [expected] = monte_carlo(distribution.sample, 10, [plan], draws=20_000, seed=5)
    policy = build_policy("singleFork", forkWhenDone=0.8, replicas=2, original=original)
    outcome = simulate(distribution, policy, tasks=10, jobs=20_000, seed=6)
    assert outcome.latency.mean() == pytest.approx(expected.mean_latency, rel=0.03)
    assert outcome.cost.mean() == pytest.approx(expected.mean_cost, rel=0.03)


@pytest.mark.parametrize("dist", ["pareto:1,1.5", "hyperexp:0.9,1,0.1"])
def test_replication_helps_heavy_tails(dist: str) -> None:
    distribution = parse_distribution(dist)
    for original in ("keep", "kill"):
        policy = build_policy("singleFork", forkWhenDone=0.9, replicas=1, original=original)
        outcome = simulate(distribution, policy, tasks=10, jobs=10_000, seed=7)
        assert outcome.latency.mean() < 0.8 * outcome.baseline_latency.mean()
    for name in ("spark", "late", "adaptive"):
        outcome = simulate(distribution, build_policy(name), tasks=10, jobs=10_000, seed=8)
        assert outcome.latency.mean() < 0.8 * outcome.baseline_latency.mean(), name


def test_adaptive_keeps_on_light_tails_and_stays_within_budget() -> None:
    policy = build_policy("adaptive", maxExtraCost=0.1)
    outcome = simulate(parse_distribution("shiftedexp:1,1"), policy, tasks=10, jobs=20_000, seed=9)
    choice = policy.last_choice  # type: ignore[attr-defined]
    assert choice.fit.family == "shiftedexp" and choice.plan.original == "keep"
    assert outcome.latency.mean() < outcome.baseline_latency.mean()
    assert outcome.cost.mean() <= 1.1 * 1.01 * outcome.baseline_cost.mean()


def test_same_seed_same_numbers() -> None:
    dist = parse_distribution("pareto:1,1.5")
    first = simulate(dist, build_policy("spark"), tasks=10, jobs=5_000, seed=3)
    again = simulate(dist, build_policy("spark"), tasks=10, jobs=5_000, seed=3)
    assert np.array_equal(first.latency, again.latency) and np.array_equal(first.cost, again.cost)


def test_chunks_cover_every_job() -> None:
    outcome = simulate(
        parse_distribution("shiftedexp:1,1"), build_policy("late"), tasks=10, jobs=1_001, seed=1, chunk_entries=1_000
    )
    assert outcome.jobs == 1_001 and np.isfinite(outcome.latency).all()


class BatchSizes:
    """Wraps a policy and records how many jobs each call's batch held."""

    def __init__(self, inner: StragglerPolicy) -> None:
        self.inner = inner
        self.sizes: list[int] = []

    def decide(self, batch: TaskBatch) -> Decision:
        self.sizes.append(batch.jobs)
        return self.inner.decide(batch)

    def describe(self) -> str:
        return self.inner.describe()


@pytest.mark.parametrize("slots", [None, 3])
@pytest.mark.parametrize(("policy", "options"), [("spark", {}), ("migrate", {"restartSeconds": 0.5})])
def test_per_job_asks_about_one_job_at_a_time_and_a_row_wise_policy_decides_the_same(
    slots: int | None, policy: str, options: dict[str, object]
) -> None:
    """``per_job`` is the live shell's view (a batch of one); a policy deciding each row from that row alone gives
    exactly the pooled numbers (same decisions, same draws in the same order)."""
    dist = parse_distribution("shiftedpareto:0.5,1,1.5")
    pooled = BatchSizes(build_policy(policy, **options))
    single = BatchSizes(build_policy(policy, **options))
    together = simulate(dist, pooled, tasks=8, jobs=40, seed=5, slots=slots)  # type: ignore[arg-type]
    alone = simulate(dist, single, tasks=8, jobs=40, seed=5, slots=slots, per_job=True)  # type: ignore[arg-type]
    assert max(pooled.sizes) > 1 and set(single.sizes) == {1}
    assert np.array_equal(together.latency, alone.latency) and np.array_equal(together.cost, alone.cost)
    assert np.array_equal(together.baseline_latency, alone.baseline_latency)


def test_per_job_gives_adaptive_each_jobs_own_fit() -> None:
    """Pooled, adaptive fits every job's tasks together (hundreds of times more data than one study has); per job,
    each call's fit holds one job's tasks at most."""
    dist = parse_distribution("pareto:1,2")
    policy = build_policy("adaptive", draws=200)
    simulate(dist, policy, tasks=6, jobs=50, seed=2)
    pooled = policy.last_choice.fit  # type: ignore[attr-defined]
    assert pooled.exact + pooled.censored > 6
    alone = build_policy("adaptive", draws=200)
    fits: list[int] = []
    original = alone.fit  # type: ignore[attr-defined]

    def recording(batch: TaskBatch) -> object:
        fit = original(batch)
        if fit is not None:
            fits.append(fit.exact + fit.censored)
        return fit

    alone.fit = recording  # type: ignore[attr-defined]
    simulate(dist, alone, tasks=6, jobs=50, seed=2, per_job=True)
    assert fits and max(fits) <= 6
