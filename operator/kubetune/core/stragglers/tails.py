"""Online fit of the task-time tail: shifted exponential (light, log-concave) or Pareto (heavy, log-convex).

Decides, from exact task times and right-censored ones (tasks still running, or copied: only known to exceed some
time), which family explains them better by maximum likelihood, and its parameters. Both families are fitted by
censored maximum likelihood, in closed form, with the location at the smallest exact time:

- shifted exponential ``shift + Exp(rate)``: ``rate = d / sum(max(t - shift, 0))`` over all observations
  (``d`` exact ones), log-likelihood ``d log(rate) - d``;
- Pareto ``(xm, alpha)``: ``alpha = d / sum(log(max(t, xm) / xm))``, log-likelihood
  ``d log(alpha) - d - sum(log t_exact)``.

Both have two parameters, so the higher log-likelihood wins. A shifted exponential is log-concave (replicas should
keep the original); a Pareto is not (killing the original can pay).

Pure: numpy only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from kubetune.core.stragglers.base import Floats

Family = Literal["shiftedexp", "pareto"]


@dataclass(frozen=True)
class TailFit:
    """A fitted task-time distribution: ``shift + Exp(rate)`` (location=shift, shape=rate) or Pareto
    (location=xm, shape=alpha)."""

    family: Family
    location: float
    shape: float
    loglik: float
    exact: int
    censored: int

    @property
    def log_concave(self) -> bool:
        return self.family == "shiftedexp"

    def sample(self, rng: np.random.Generator, size: tuple[int, ...]) -> Floats:
        """Draws from the fitted distribution."""
        if self.family == "shiftedexp":
            return self.location + rng.exponential(1.0 / self.shape, size)
        return self.location * (1.0 + rng.pareto(self.shape, size))

    def quantile(self, q: float) -> float:
        """The time below which a fraction ``q`` (0 <= q < 1) of the fitted task times fall."""
        if not 0.0 <= q < 1.0:
            raise ValueError(f"quantile: must be in [0, 1), got {q}")
        if self.family == "shiftedexp":
            return self.location - math.log1p(-q) / self.shape
        return float(self.location * (1.0 - q) ** (-1.0 / self.shape))

    def describe(self) -> str:
        if self.family == "shiftedexp":
            return f"shiftedexp:{self.location:.4g},{self.shape:.4g}"
        return f"pareto:{self.location:.4g},{self.shape:.4g}"


def _arrays(exact: Sequence[float] | Floats, censored: Sequence[float] | Floats) -> tuple[Floats, Floats]:
    done = np.asarray(exact, dtype=np.float64).ravel()
    running = np.asarray(censored, dtype=np.float64).ravel()
    return done[np.isfinite(done)], running[np.isfinite(running)]


def fit_shifted_exp(exact: Sequence[float] | Floats, censored: Sequence[float] | Floats = ()) -> TailFit | None:
    """Censored MLE of ``shift + Exp(rate)``; ``None`` without exact times or spread."""
    done, running = _arrays(exact, censored)
    if done.size == 0:
        return None
    shift = float(done.min())
    exposure = float(np.maximum(done - shift, 0.0).sum() + np.maximum(running - shift, 0.0).sum())
    if exposure <= 0:
        return None
    d = done.size
    rate = d / exposure
    return TailFit("shiftedexp", shift, rate, d * math.log(rate) - d, d, running.size)


def fit_pareto(exact: Sequence[float] | Floats, censored: Sequence[float] | Floats = ()) -> TailFit | None:
    """Censored MLE of a Pareto ``(xm, alpha)``; ``None`` without positive exact times or spread."""
    done, running = _arrays(exact, censored)
    if done.size == 0 or done.min() <= 0:
        return None
    xm = float(done.min())
    exposure = float(np.log(np.maximum(done, xm) / xm).sum() + np.log(np.maximum(running, xm) / xm).sum())
    if exposure <= 0:
        return None
    d = done.size
    alpha = d / exposure
    loglik = d * math.log(alpha) - d - float(np.log(done).sum())
    return TailFit("pareto", xm, alpha, loglik, d, running.size)


def fit_tail(
    exact: Sequence[float] | Floats, censored: Sequence[float] | Floats = (), *, min_exact: int = 3
) -> TailFit | None:
    """The better of :func:`fit_shifted_exp` and :func:`fit_pareto` by likelihood; ``None`` below ``min_exact``
    exact times."""
    done, running = _arrays(exact, censored)
    if done.size < min_exact:
        return None
    fits = [fit for fit in (fit_shifted_exp(done, running), fit_pareto(done, running)) if fit is not None]
    if not fits:
        return None
    return max(fits, key=lambda fit: fit.loglik)
