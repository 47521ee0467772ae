"""The online tail fit recovers the family and its parameters, also from censored (still running) tasks."""

from __future__ import annotations

import numpy as np
import pytest
from kubetune.core.stragglers import fit_pareto, fit_shifted_exp, fit_tail


def test_shifted_exponential_is_recognised_and_recovered() -> None:
    rng = np.random.default_rng(1)
    times = 1.5 + rng.exponential(1 / 2.0, 20_000)
    fit = fit_tail(times)
    assert fit is not None
    assert fit.family == "shiftedexp" and fit.log_concave
    assert fit.location == pytest.approx(1.5, rel=0.01)
    assert fit.shape == pytest.approx(2.0, rel=0.03)


def test_pareto_is_recognised_and_recovered() -> None:
    rng = np.random.default_rng(2)
    times = 2.0 * (1 + rng.pareto(1.5, 20_000))
    fit = fit_tail(times)
    assert fit is not None
    assert fit.family == "pareto" and not fit.log_concave
    assert fit.location == pytest.approx(2.0, rel=0.01)
    assert fit.shape == pytest.approx(1.5, rel=0.03)


def test_censored_observations_are_used() -> None:
    rng = np.random.default_rng(3)
    times = 1.0 + rng.exponential(1.0, 20_000)
    cut = 2.0  # everything still running at 2.0 is only known to exceed it
    fit = fit_shifted_exp(times[times <= cut], np.full(int((times > cut).sum()), cut))
    assert fit is not None
    assert fit.shape == pytest.approx(1.0, rel=0.03)
    naive = fit_shifted_exp(times[times <= cut])
    assert naive is not None and naive.shape > 1.5  # ignoring censoring overestimates the rate
    pareto = fit_pareto(2.0 * (1 + rng.pareto(2.0, 20_000)).clip(max=6.0))
    assert pareto is not None


def test_too_few_or_degenerate_observations() -> None:
    assert fit_tail([1.0, 2.0], min_exact=3) is None
    assert fit_shifted_exp([]) is None
    assert fit_shifted_exp([2.0, 2.0, 2.0]) is None
    assert fit_pareto([0.0, 1.0]) is None
    fit = fit_tail([0.0, 1.0, 2.0, 3.0])
    assert fit is not None and fit.family == "shiftedexp"
