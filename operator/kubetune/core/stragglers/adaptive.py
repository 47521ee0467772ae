"""The ``adaptive`` straggler policy: fit the task-time tail online, then run the best replication plan within budget.

Decides, at each decision point: fit the observed task times (:mod:`kubetune.core.stragglers.tails`: shifted
exponential vs Pareto, by censored likelihood) from the batch (pooled over its jobs: a live shell's batch of one
pools that job's trials; the simulator's batch pools the jobs running together) plus any ``history`` of earlier task
times; forecast ``E[T]`` and ``E[C]`` of no replication and of each candidate plan
(:mod:`kubetune.core.stragglers.forecast`: closed forms or Monte Carlo) for the whole job: ``tasks`` tasks (the
spec's ``maxTrials``; by default the batch's task count) on the batch's slots; pick the plan with the lowest expected
latency whose expected cost is at most ``(1 + max_extra_cost)`` times no replication's (ties: the cheaper); and carry
it out as :class:`~kubetune.core.stragglers.single_fork.SingleFork` or
:class:`~kubetune.core.stragglers.timeout.TaskTimeout` would. The candidates: single forks (``fractions`` x
``replicas`` x keep/kill) when every task runs at once; per-task timeouts (a copy once a task has run longer than
the fitted distribution's ``quantiles``, x ``replicas`` x keep/kill) always: in a queue (more tasks than slots) a
single fork happens once per job and misses every later straggler, so only timeouts are candidates there; and, on a
heavy-tailed fit, moves (:class:`~kubetune.core.stragglers.migrate.Migrate` at the ``factors``, with
``restartSeconds`` of start-up per move, each launch raced as ``hedges`` copies that keep the fastest), carried out
as that policy would. It never chooses ``kill`` (nor a move,
which kills) on a log-concave (shifted exponential) fit: there, keeping the original is never worse. Until
``min_exact`` task times are known it does nothing.

What counts as an observation: a finished task never copied gives its exact time; a running task never copied is
censored at its elapsed time; a copied task whose original still ran is censored at the time of its first copy
(afterwards its finish is a race between copies, not a draw of the task time, and the original may have won it); a
task whose original the policy cancelled (a move) is censored at its finish, or its elapsed time while it runs: the
original was cancelled for being slow, so it would have needed at least that long. Censoring a moved task at its
move instead is informative (the policy moves the slow tasks, so the tasks that finish on their first copy are the
fast ones, and a moved task's early censoring time says little of its tail): the fit turned log-concave under the
policy's own moves, and adaptive stopped moving.

Pure: numpy only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from kubetune.core.stragglers.base import Decision, StragglerPolicy, TaskBatch, check_number
from kubetune.core.stragglers.forecast import ForkPlan, MovePlan, Plan, TimeoutPlan, forecast
from kubetune.core.stragglers.migrate import Migrate
from kubetune.core.stragglers.order_statistics import count_of
from kubetune.core.stragglers.single_fork import SingleFork
from kubetune.core.stragglers.tails import TailFit, fit_tail
from kubetune.core.stragglers.theory import Forecast
from kubetune.core.stragglers.timeout import TaskTimeout

DEFAULT_FRACTIONS = (0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_REPLICAS = (1, 2, 3)
DEFAULT_QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
DEFAULT_FACTORS = (1.25, 1.5, 2.0, 3.0)
DEFAULT_HEDGES = (1, 2, 3)
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
    plan: Plan | None
    forecasts: tuple[tuple[Plan | None, Forecast], ...]

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
        "quantiles": "quantiles",
        "tasks": "tasks",
        "maxCopiesFraction": "max_copies_fraction",
        "minExact": "min_exact",
        "history": "history",
        "draws": "draws",
        "seed": "seed",
        "restartSeconds": "restart",
        "factors": "factors",
        "hedges": "hedges",
    }

    def __init__(
        self,
        max_extra_cost: float = 0.05,
        fractions: Sequence[float] = DEFAULT_FRACTIONS,
        replicas: Sequence[int] = DEFAULT_REPLICAS,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        tasks: int | None = None,
        max_copies_fraction: float | None = None,
        min_exact: int = 3,
        history: Sequence[float] = (),
        draws: int = 4000,
        seed: int = 0,
        restart: float | None = None,
        factors: Sequence[float] = DEFAULT_FACTORS,
        hedges: Sequence[int] = DEFAULT_HEDGES,
    ) -> None:
        self.max_extra_cost = check_number("maxExtraCost", max_extra_cost, low=0.0)
        if not fractions:
            raise ValueError("stragglers.fractions: give at least one fraction")
        if not replicas:
            raise ValueError("stragglers.replicas: give at least one replica count")
        self.fractions = tuple(check_number("fractions", f, low=0.0, high=1.0, low_open=True) for f in fractions)
        self.replicas = tuple(int(check_number("replicas", r, low=1, integer=True)) for r in replicas)
        self.quantiles = tuple(check_number("quantiles", q, low=0.0, high=0.999) for q in quantiles)
        self.tasks = None if tasks is None else int(check_number("tasks", tasks, low=1, integer=True))
        self.max_copies_fraction = (
            None
            if max_copies_fraction is None
            else check_number("maxCopiesFraction", max_copies_fraction, low=0.0, high=1.0, low_open=True)
        )
        self.min_exact = int(check_number("minExact", min_exact, low=1, integer=True))
        self.history = np.asarray([check_number("history", t, low=0.0) for t in history], dtype=np.float64)
        self.draws = int(check_number("draws", draws, low=100, integer=True))
        self.seed = int(check_number("seed", seed, low=0, integer=True))
        # Moves are candidates only when the shell can resume a copy from another's checkpoint and says what a move
        # costs in start-up (``restartSeconds``); without it adaptive copies from scratch only.
        self.restart = None if restart is None else check_number("restartSeconds", restart, low=0.0)
        self.factors = tuple(check_number("factors", f, low=1.0) for f in factors)
        if not hedges:
            raise ValueError("stragglers.hedges: give at least one copy count (1: no hedged launches)")
        self.hedges = tuple(int(check_number("hedges", h, low=1, high=4, integer=True)) for h in hedges)
        self._choices: dict[tuple[str, float, float, int, int], Choice] = {}
        self.last_choice: Choice | None = None

    def options(self) -> Mapping[str, Any]:
        options: dict[str, Any] = {"maxExtraCost": self.max_extra_cost}
        if self.tasks:
            options["tasks"] = self.tasks
        if self.max_copies_fraction is not None:
            options["maxCopiesFraction"] = self.max_copies_fraction
        if self.restart is not None:
            options["restartSeconds"] = self.restart
        return options

    def describe(self) -> str:
        """The options, and once it has chosen, the plan it runs and the fit it chose it for (events show this)."""
        text = super().describe()
        choice = self.last_choice
        if choice is None:
            return text
        plan = choice.plan.describe() if choice.plan is not None else "no replication"
        return f"{text}: {plan} for a fitted {choice.fit.describe()}"

    def fit(self, batch: TaskBatch) -> TailFit | None:
        """The tail fitted on the batch's observations (see the module docstring) and the history."""
        copied = ~np.isnan(batch.first_copy_at)
        cancelled = batch.original_cancelled
        lasted = np.where(batch.finished, batch.task_time, batch.elapsed)
        # A hedged start (copies launched within the start-up of the original, raced, the fastest kept): ``launched``
        # draws whose least is the task time, so one exact time and the others censored there (or, while it runs,
        # every draw censored at its elapsed time): the likelihood of the least of ``launched`` draws.
        raced = copied & ~cancelled & (batch.first_copy_at - batch.start <= (self.restart or 0.0))
        exact = batch.task_time[batch.finished & (~copied | raced)]
        losers = np.where(batch.finished, batch.launched - 1, batch.launched)
        censored_raced = np.repeat(lasted[raced], losers[raced])
        at = np.where(copied & ~cancelled, batch.first_copy_at - batch.start, lasted)
        censored = np.concatenate([at[(copied & ~raced) | (batch.running & ~raced)], censored_raced])
        if self.history.size:
            exact = np.concatenate([exact, self.history])
        return fit_tail(exact, censored, min_exact=self.min_exact)

    def candidates(self, fit: TailFit, tasks: int, slots: int | None = None) -> list[Plan]:
        """Plans worth forecasting for ``tasks`` tasks on ``slots`` slots (default: one per task): distinct single
        forks when every task starts at once, per-task timeouts at the fit's quantiles; no kill if log-concave."""
        plans: list[Plan] = []
        originals: tuple[Literal["keep", "kill"], ...] = ("keep",) if fit.log_concave else ("keep", "kill")
        if slots is None or slots >= tasks:
            seen: set[int] = set()
            for fraction in sorted(self.fractions):
                done = count_of(fraction, tasks)
                if not 1 <= done < tasks or done in seen:
                    continue
                seen.add(done)
                plans += [ForkPlan(fraction, r, original) for r in self.replicas for original in originals]
        afters = sorted({_round(fit.quantile(q)) for q in self.quantiles})
        plans += [TimeoutPlan(after, r, original) for after in afters for r in self.replicas for original in originals]
        if self.restart is not None and not fit.log_concave:
            hedges = [h for h in self.hedges if (h - 1) * (slots or tasks) <= self.copies_allowed(slots or tasks)]
            plans += [MovePlan(factor, self.restart, hedge=h) for factor in self.factors for h in hedges]
        return plans

    def copies_allowed(self, slots: int) -> int:
        """Extra copies that may run at once on ``slots`` slots (``maxCopiesFraction``; unbounded without a cap). A
        hedged launch races ``hedge - 1`` extra copies on every slot: only plans the cap lets every slot race are
        candidates, for the forecasts do not model the cap."""
        if self.max_copies_fraction is None:
            return 2**31
        return max(1, math.floor(self.max_copies_fraction * slots + 1e-9))

    def choose(self, fit: TailFit, tasks: int, slots: int | None = None) -> Choice:
        """The plan to run under ``fit`` for ``tasks`` tasks on ``slots`` slots (cached per rounded fit)."""
        fit = TailFit(fit.family, _round(fit.location), _round(fit.shape), fit.loglik, fit.exact, fit.censored)
        slots = tasks if slots is None else min(slots, tasks)
        key = (fit.family, fit.location, fit.shape, tasks, slots)
        cached = self._choices.get(key)
        if cached is not None:
            return cached
        plans: list[Plan | None] = [None, *self.candidates(fit, tasks, slots)]
        forecasts = forecast(fit, tasks, plans, draws=self.draws, seed=self.seed, slots=slots)
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
        tasks = max(self.tasks or 0, batch.tasks)
        choice = self.choose(fit, tasks, int(batch.slots.max()))
        self.last_choice = choice
        plan = choice.plan
        if plan is None:
            return Decision.nothing(batch)
        if isinstance(plan, MovePlan):
            migrate = Migrate(
                factor=plan.factor, restart=plan.restart, detect=plan.detect, max_moves=plan.max_moves, hedge=plan.hedge
            )
            decision = migrate.decide(batch)
        elif isinstance(plan, TimeoutPlan):
            decision = TaskTimeout(after=plan.after, replicas=plan.replicas, original=plan.original).decide(batch)
        elif batch.tasks < tasks:  # not every task has started: a fraction of the started ones would fork too soon
            return Decision.nothing(batch)
        else:
            fork = SingleFork(when_done=plan.when_done, replicas=plan.replicas, original=plan.original)
            decision = fork.decide(batch)
        return self.capped(batch, decision)

    def capped(self, batch: TaskBatch, decision: Decision) -> Decision:
        """``decision`` within the cap on extra copies running at once (``maxCopiesFraction`` of the slots, at least
        one, as LATE caps its speculative copies): the longest-running tasks first; a copy that replaces a killed
        original adds nothing. The forecasts assume copies on machines of their own; a cap keeps that closer to true
        where copies share the slots' machines (a local run, a full cluster). Without a cap, ``decision`` as is."""
        if self.max_copies_fraction is None or not decision.copies.any():
            return decision
        cap = np.array([self.copies_allowed(int(slots)) for slots in batch.slots], dtype=np.int64)
        pruned = decision.prunes  # a decided race's slower copies stop now
        in_flight = np.where(batch.running & ~pruned, np.maximum(batch.copies - 1, 0), 0).sum(axis=1)
        allowed = np.maximum(cap - in_flight, 0)
        asked = decision.copies
        extra = np.where(decision.kill_original, asked - 1, asked)
        order = np.argsort(np.where(asked > 0, -batch.elapsed, np.inf), axis=1, kind="stable")
        within = np.cumsum(np.take_along_axis(extra, order, axis=1), axis=1) <= allowed[:, None]
        keep = np.zeros_like(within)
        np.put_along_axis(keep, order, within, axis=1)
        keep &= asked > 0
        return Decision(
            copies=np.where(keep, asked, 0).astype(np.int64),
            kill_original=decision.kill_original & keep,
            wake_at=decision.wake_at,
            resume=decision.resumes & keep,
            prune=decision.prune,
        )
