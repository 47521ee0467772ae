"""Forecasts of single-fork plans: expected latency and cost of a job of n tasks under a fitted task-time tail.

Decides ``E[T]`` and ``E[C]`` of no replication and of candidate single-fork plans (fork once ``floor(f n)`` tasks
are done; ``r`` fresh copies per straggler; keep or kill the original): by the closed forms of
:mod:`kubetune.core.stragglers.theory` for a shifted exponential forked after a completion, else by a Monte Carlo of
the same semantics (common random numbers across plans, a fixed seed, so a forecast is deterministic). The Monte
Carlo is a second, independent implementation of single-fork semantics (no event loop: the fork time is the m-th
order statistic), which the simulator's tests also use as a cross-check.

Pure: numpy only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kubetune.core.stragglers.base import Floats
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


def monte_carlo(
    sample: Sampler, tasks: int, plans: Sequence[ForkPlan | None], *, draws: int = 4000, seed: int = 0
) -> list[Forecast]:
    """Monte Carlo ``E[T]``, ``E[C]`` of each plan (``None``: no replication), from the same draws for every plan."""
    rng = np.random.default_rng(seed)
    originals = sample(rng, (draws, tasks))
    most = max((plan.replicas for plan in plans if plan is not None), default=0)
    fresh = sample(rng, (draws, tasks, most)) if most else np.empty((draws, tasks, 0))
    ordered = np.sort(originals, axis=1)
    forecasts = []
    for plan in plans:
        if plan is None:
            forecasts.append(Forecast(float(ordered[:, -1].mean()), float(originals.sum(axis=1).mean())))
            continue
        done = count_of(plan.when_done, tasks)
        if done >= tasks:  # never forks
            forecasts.append(Forecast(float(ordered[:, -1].mean()), float(originals.sum(axis=1).mean())))
            continue
        fork = ordered[:, done - 1] if done > 0 else np.zeros(draws)
        straggler = originals > fork[:, None]
        first_copy = fresh[:, :, : plan.replicas].min(axis=2)
        if plan.original == "kill":
            finish = np.where(straggler, fork[:, None] + first_copy, originals)
            cost = np.where(straggler, fork[:, None] + plan.replicas * first_copy, originals)
        else:
            finish = np.where(straggler, np.minimum(originals, fork[:, None] + first_copy), originals)
            cost = np.where(straggler, finish + plan.replicas * (finish - fork[:, None]), originals)
        forecasts.append(Forecast(float(finish.max(axis=1).mean()), float(cost.sum(axis=1).mean())))
    return forecasts


def forecast(
    fit: TailFit, tasks: int, plans: Sequence[ForkPlan | None], *, draws: int = 4000, seed: int = 0
) -> list[Forecast]:
    """``E[T]``, ``E[C]`` of each plan under ``fit``: closed forms where they hold, else :func:`monte_carlo`."""
    if fit.family == "shiftedexp" and all(plan is None or count_of(plan.when_done, tasks) >= 1 for plan in plans):
        out = []
        for plan in plans:
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
    return monte_carlo(fit.sample, tasks, plans, draws=draws, seed=seed)
