"""The ``adaptive`` straggler policy: fit the task-time tail online, then run the best single fork within budget.

Decides, at each decision point: fit the observed task times (:mod:`kubetune.core.stragglers.tails`: shifted
exponential vs Pareto, by censored likelihood) from the batch (pooled over its jobs: a live shell's batch of one
pools that job's trials; the simulator's batch pools the jobs running together) plus any ``history`` of earlier task
times; forecast ``E[T]`` and ``E[C]`` of no replication and of each candidate single-fork plan
(:mod:`kubetune.core.stragglers.forecast`: closed forms or Monte Carlo); pick the plan with the lowest expected
latency whose expected cost is at most ``(1 + max_extra_cost)`` times no replication's (ties: the cheaper); and
carry it out as :class:`~kubetune.core.stragglers.single_fork.SingleFork` would. It never chooses ``kill`` on a
log-concave (shifted exponential) fit: there, keeping the original is never worse. Until ``min_exact`` task times
are known it does nothing.

What counts as an observation: a finished task never copied gives its exact time; a running task never copied is
censored at its elapsed time; a copied task is censored at the time of its first copy (afterwards its finish is a
race between copies, not a draw of the task time).

Pure: numpy only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from kubetune.core.stragglers.base import Decision, StragglerPolicy, TaskBatch, check_number
from kubetune.core.stragglers.forecast import ForkPlan, forecast
from kubetune.core.stragglers.order_statistics import count_of
from kubetune.core.stragglers.single_fork import SingleFork
from kubetune.core.stragglers.tails import TailFit, fit_tail
from kubetune.core.stragglers.theory import Forecast

DEFAULT_FRACTIONS = (0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_REPLICAS = (1, 2, 3)
# Fits are rounded to this many significant digits before forecasting, so that forecasts can be cached.
_SIGNIFICANT = 3
# Forecasts cached per rounded fit; a long-lived policy forgets them all past this many.
_CACHE_SIZE = 1024


def _round(value: float) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, _SIGNIFICANT - 1 - math.floor(math.log10(abs(value))))


@dataclass(frozen=True)
class Choice:
    """What the adaptive policy chose for a fit: the plan (``None``: no replication) and every candidate's
    forecast."""

    fit: TailFit
    plan: ForkPlan | None
    forecasts: tuple[tuple[ForkPlan | None, Forecast], ...]

    @property
    def expected(self) -> Forecast:
        return dict(self.forecasts)[self.plan]


class Adaptive(StragglerPolicy):
    """Pick, from the fitted tail, the single-fork plan with the lowest expected latency within the cost budget."""

    name: ClassVar[str] = "adaptive"
    OPTIONS: ClassVar[dict[str, str]] = {
        "maxExtraCost": "max_extra_cost",
        "fractions": "fractions",
        "replicas": "replicas",
        "minExact": "min_exact",
        "history": "history",
        "draws": "draws",
        "seed": "seed",
    }

    def __init__(
        self,
        max_extra_cost: float = 0.05,
        fractions: Sequence[float] = DEFAULT_FRACTIONS,
        replicas: Sequence[int] = DEFAULT_REPLICAS,
        min_exact: int = 5,
        history: Sequence[float] = (),
        draws: int = 4000,
        seed: int = 0,
    ) -> None:
        self.max_extra_cost = check_number("maxExtraCost", max_extra_cost, low=0.0)
        if not fractions:
            raise ValueError("stragglers.fractions: give at least one fraction")
        if not replicas:
            raise ValueError("stragglers.replicas: give at least one replica count")
        self.fractions = tuple(check_number("fractions", f, low=0.0, high=1.0, low_open=True) for f in fractions)
        self.replicas = tuple(int(check_number("replicas", r, low=1, integer=True)) for r in replicas)
        self.min_exact = int(check_number("minExact", min_exact, low=1, integer=True))
        self.history = np.asarray([check_number("history", t, low=0.0) for t in history], dtype=np.float64)
        self.draws = int(check_number("draws", draws, low=100, integer=True))
        self.seed = int(check_number("seed", seed, low=0, integer=True))
        self._choices: dict[tuple[str, float, float, int], Choice] = {}
        self.last_choice: Choice | None = None

    def options(self) -> Mapping[str, Any]:
        return {"maxExtraCost": self.max_extra_cost}

    def fit(self, batch: TaskBatch) -> TailFit | None:
        """The tail fitted on the batch's observations (see the module docstring) and the history."""
        copied = ~np.isnan(batch.first_copy_at)
        exact = batch.task_time[batch.finished & ~copied]
        censored = np.where(copied, batch.first_copy_at - batch.start, batch.elapsed)[copied | batch.running]
        if self.history.size:
            exact = np.concatenate([exact, self.history])
        return fit_tail(exact, censored, min_exact=self.min_exact)

    def candidates(self, fit: TailFit, tasks: int) -> list[ForkPlan]:
        """Single-fork plans worth forecasting for ``tasks`` tasks: distinct fork points, no kill if log-concave."""
        plans: list[ForkPlan] = []
        seen: set[int] = set()
        originals = ("keep",) if fit.log_concave else ("keep", "kill")
        for fraction in sorted(self.fractions):
            done = count_of(fraction, tasks)
            if not 1 <= done < tasks or done in seen:
                continue
            seen.add(done)
            for replicas in self.replicas:
                for original in originals:
                    plans.append(ForkPlan(fraction, replicas, "keep" if original == "keep" else "kill"))
        return plans

    def choose(self, fit: TailFit, tasks: int) -> Choice:
        """The plan to run under ``fit`` (cached per rounded fit)."""
        fit = TailFit(fit.family, _round(fit.location), _round(fit.shape), fit.loglik, fit.exact, fit.censored)
        key = (fit.family, fit.location, fit.shape, tasks)
        cached = self._choices.get(key)
        if cached is not None:
            return cached
        plans: list[ForkPlan | None] = [None, *self.candidates(fit, tasks)]
        forecasts = forecast(fit, tasks, plans, draws=self.draws, seed=self.seed)
        budget = forecasts[0].mean_cost * (1.0 + self.max_extra_cost)
        best = 0
        for index, expected in enumerate(forecasts):
            if expected.mean_cost > budget:
                continue
            incumbent = forecasts[best]
            if (expected.mean_latency, expected.mean_cost) < (incumbent.mean_latency, incumbent.mean_cost):
                best = index
        choice = Choice(fit, plans[best], tuple(zip(plans, forecasts, strict=True)))
        if len(self._choices) >= _CACHE_SIZE:
            self._choices.clear()
        self._choices[key] = choice
        return choice

    def decide(self, batch: TaskBatch) -> Decision:
        fit = self.fit(batch)
        if fit is None:
            return Decision.nothing(batch)
        choice = self.choose(fit, batch.tasks)
        self.last_choice = choice
        if choice.plan is None:
            return Decision.nothing(batch)
        plan = choice.plan
        return SingleFork(when_done=plan.when_done, replicas=plan.replicas, original=plan.original).decide(batch)
