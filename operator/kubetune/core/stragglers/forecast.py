"""Forecasts of replication plans: expected latency and cost of a job of n tasks under a fitted task-time tail.

Decides ``E[T]`` and ``E[C]`` of no replication and of candidate plans of three kinds:

- single fork (:class:`ForkPlan`: fork once ``floor(f n)`` tasks are done; ``r`` fresh copies per straggler; keep or
  kill the original), for a job whose tasks all start at once;
- per-task timeout (:class:`TimeoutPlan`: copy each task still running ``after`` seconds after its launch; ``r``
  copies; keep or kill), for any job, queued ones included: with ``S`` slots for ``n > S`` tasks, each task holds its
  slot until its first copy ends (copies take no slot, as in the simulator), and the job's latency is the makespan of
  FIFO list scheduling of those times (:func:`kubetune.core.stragglers.makespan.list_schedule`);
- moves (:class:`MovePlan`, the ``migrate`` policy's rule), for any job: a task time is ``restart`` of start-up then
  work; once a copy has shown its speed (``restart + detect * typical``, ``typical`` the median task time) and needs
  more than ``factor`` times what a copy resuming from its progress would (``restart + (1 - p) * (typical -
  restart)``), it is cancelled and a resumed copy takes over, needing ``restart + (1 - p) * (X' - restart)`` for a
  fresh draw ``X'``; at most ``max_moves`` times per task. The rule is checked at that one moment per copy (the live
  policy looks again at later decision points, and its ``typical`` comes from the tasks finished so far). With
  ``hedge`` h > 1 every launch (the start and each move) is h copies raced until the same moment, then only the
  fastest goes on: it runs at the best of h draws, the others cost until then; ``typical`` is the median of such a
  hedged start.

By the closed forms of :mod:`kubetune.core.stragglers.theory` for a shifted exponential forked after a completion,
else by a Monte Carlo of the same semantics (common random numbers across plans, a fixed seed, so a forecast is
deterministic). The Monte Carlo is a second, independent implementation of the policies' semantics (no event loop:
the fork time is the m-th order statistic, or the timeout), which the simulator's tests also use as a cross-check.

Pure: numpy only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kubetune.core.stragglers.base import Floats
from kubetune.core.stragglers.makespan import list_schedule
from kubetune.core.stragglers.order_statistics import count_of
from kubetune.core.stragglers.single_fork import Original
from kubetune.core.stragglers.tails import TailFit
from kubetune.core.stragglers.theory import Forecast, baseline, single_fork

Sampler = Callable[[np.random.Generator, tuple[int, ...]], Floats]


@dataclass(frozen=True)
class ForkPlan:
    """A single-fork plan: fork once ``floor(when_done * n)`` tasks are done, ``replicas`` copies, keep or kill."""

    when_done: float
    replicas: int
    original: Original

    def describe(self) -> str:
        return f"singleFork(forkWhenDone={self.when_done:g}, replicas={self.replicas}, original={self.original})"


@dataclass(frozen=True)
class TimeoutPlan:
    """A per-task timeout plan: copy each task still running ``after`` seconds after its launch, ``replicas``
    copies, keep or kill the original."""

    after: float
    replicas: int
    original: Original

    def describe(self) -> str:
        return f"timeout(afterSeconds={self.after:.4g}, replicas={self.replicas}, original={self.original})"


@dataclass(frozen=True)
class MovePlan:
    """Move each task whose copy needs more than ``factor`` x what a copy resuming from its checkpoint would
    (:class:`~kubetune.core.stragglers.migrate.Migrate` with these options)."""

    factor: float
    restart: float
    detect: float = 0.1
    max_moves: int = 3
    hedge: int = 1

    @property
    def replicas(self) -> int:
        return self.hedge * (1 + self.max_moves) - 1  # fresh draws a task may need (the original is one)

    @property
    def original(self) -> Original:
        return "kill"  # a move cancels the slow copy

    def describe(self) -> str:
        hedge = f", hedge={self.hedge}" if self.hedge > 1 else ""
        return f"migrate(factor={self.factor:g}, restartSeconds={self.restart:.4g}, maxMoves={self.max_moves}{hedge})"


Plan = ForkPlan | TimeoutPlan | MovePlan


def moves(originals: Floats, fresh: Floats, plan: MovePlan) -> tuple[Floats, Floats]:
    """Per task of each draw (row): the time from its start to its end, and its machine time, under ``plan``;
    ``fresh[:, :, :hedge - 1]`` race the original at the start (a hedged launch), then each move draws the next
    ``hedge`` of ``fresh``."""
    hedge = plan.hedge
    restart = np.minimum(plan.restart, originals.min())  # start-up is part of every task time
    duration = np.minimum(originals, fresh[:, :, : hedge - 1].min(axis=2)) if hedge > 1 else originals.copy()
    typical = np.median(duration, axis=1, keepdims=True)
    watch = restart + plan.detect * typical
    fresh_work = np.maximum(typical - restart, 0.0)
    losers = (hedge - 1) * np.minimum(duration, watch)  # a race's slower copies run until its speeds show
    elapsed = np.zeros(originals.shape)
    progress = np.zeros(originals.shape)
    moving = np.ones(originals.shape, dtype=np.bool_)  # still on a copy that may be moved
    for move in range(plan.max_moves):
        work = duration - restart
        with np.errstate(divide="ignore", invalid="ignore"):
            seen = progress + (1.0 - progress) * np.clip((watch - restart) / work, 0.0, 1.0)
        left = duration - watch
        move_now = moving & (duration > watch) & (left > plan.factor * (restart + (1.0 - seen) * fresh_work))
        if not move_now.any():
            break
        elapsed += np.where(move_now, watch, 0.0)
        progress = np.where(move_now, seen, progress)
        first = hedge - 1 + move * hedge
        draw = fresh[:, :, first : first + hedge].min(axis=2)
        moved = restart + (1.0 - seen) * (draw - restart)
        duration = np.where(move_now, moved, duration)
        losers += np.where(move_now, (hedge - 1) * np.minimum(moved, watch), 0.0)
        moving = move_now
    finish = elapsed + duration
    return finish, finish + losers  # one copy at a time once a race is decided


def monte_carlo(
    sample: Sampler,
    tasks: int,
    plans: Sequence[Plan | None],
    *,
    draws: int = 4000,
    seed: int = 0,
    slots: int | None = None,
) -> list[Forecast]:
    """Monte Carlo ``E[T]``, ``E[C]`` of each plan (``None``: no replication), from the same draws for every plan.

    ``slots`` (default: one per task) queues the tasks; a :class:`ForkPlan` needs every task started at once, so it
    is refused (ValueError) with fewer slots than tasks."""
    slots = tasks if slots is None else slots
    rng = np.random.default_rng(seed)
    originals = sample(rng, (draws, tasks))
    most = max((plan.replicas for plan in plans if plan is not None), default=0)
    fresh = sample(rng, (draws, tasks, most)) if most else np.empty((draws, tasks, 0))
    # first[..., r - 1]: the earliest of r fresh copies, for every r at once (plans share few replica counts).
    first = np.minimum.accumulate(fresh, axis=2)
    ordered = np.sort(originals, axis=1)
    baseline_forecast = Forecast(float(list_schedule(originals, slots).mean()), float(originals.sum(axis=1).mean()))
    forecasts = []
    for plan in plans:
        if plan is None:
            forecasts.append(baseline_forecast)
            continue
        if isinstance(plan, MovePlan):
            finish, cost = moves(originals, fresh, plan)
            forecasts.append(Forecast(float(list_schedule(finish, slots).mean()), float(cost.sum(axis=1).mean())))
            continue
        first_copy = first[:, :, plan.replicas - 1]
        if isinstance(plan, TimeoutPlan):
            fork_at: Floats = np.full((draws, 1), plan.after)
            straggler = originals > plan.after
        else:
            if slots < tasks:
                raise ValueError(f"forecast: {plan.describe()} needs every task started at once ({slots} slots)")
            done = count_of(plan.when_done, tasks)
            if done >= tasks:  # never forks
                forecasts.append(baseline_forecast)
                continue
            fork_at = (ordered[:, done - 1] if done > 0 else np.zeros(draws))[:, None]
            straggler = originals > fork_at
        if plan.original == "kill":
            finish = np.where(straggler, fork_at + first_copy, originals)
            cost = np.where(straggler, fork_at + plan.replicas * first_copy, originals)
        else:
            finish = np.where(straggler, np.minimum(originals, fork_at + first_copy), originals)
            cost = np.where(straggler, finish + plan.replicas * (finish - fork_at), originals)
        forecasts.append(Forecast(float(list_schedule(finish, slots).mean()), float(cost.sum(axis=1).mean())))
    return forecasts


def forecast(
    fit: TailFit,
    tasks: int,
    plans: Sequence[Plan | None],
    *,
    draws: int = 4000,
    seed: int = 0,
    slots: int | None = None,
) -> list[Forecast]:
    """``E[T]``, ``E[C]`` of each plan under ``fit`` on ``slots`` slots (default: one per task): closed forms where
    they hold, else :func:`monte_carlo`."""
    closed = (
        fit.family == "shiftedexp"
        and (slots is None or slots >= tasks)
        and all(plan is None or (isinstance(plan, ForkPlan) and count_of(plan.when_done, tasks) >= 1) for plan in plans)
    )
    if closed:
        out = []
        for plan in plans:
            assert plan is None or isinstance(plan, ForkPlan)
            done = tasks if plan is None else count_of(plan.when_done, tasks)
            if done >= tasks:
                out.append(baseline(tasks, fit.location, fit.shape))
            else:
                out.append(
                    single_fork(
                        tasks,
                        tasks - done,
                        plan.replicas if plan else 1,
                        plan.original if plan else "keep",
                        fit.location,
                        fit.shape,
                    )
                )
        return out
    return monte_carlo(fit.sample, tasks, plans, draws=draws, seed=seed, slots=slots)
