"""Order statistics over the masked rows of a batch: per-job quantiles and "how many tasks is a fraction of n".

Decides: the row-wise quantile of the masked entries of a ``(jobs, tasks)`` array, the way ``numpy.quantile``
(linear interpolation) would compute it for each row's selected entries, without a Python loop over jobs; and the
count ``floor(fraction * n)`` robust to binary rounding (``0.29 * 100`` is 29, not 28).

Pure: numpy only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

import math

import numpy as np

from kubetune.core.stragglers.base import Bools, Floats

# Rounding slack for fraction * n: a fraction given in decimal is never meant to fall just below an integer.
_COUNT_SLACK = 1e-9


def count_of(fraction: float, tasks: int) -> int:
    """``floor(fraction * tasks)``, tolerant of binary rounding."""
    return math.floor(fraction * tasks + _COUNT_SLACK)


def masked_quantile(values: Floats, mask: Bools, q: float) -> Floats:
    """``(J,)``: the ``q`` quantile (linear interpolation) of each row's entries where ``mask``; NaN for empty rows."""
    ordered = np.sort(np.where(mask, values, np.inf), axis=1)
    counts = mask.sum(axis=1)
    position = q * np.maximum(counts - 1, 0)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, np.maximum(counts - 1, 0))
    low_value = np.take_along_axis(ordered, low[:, None], axis=1)[:, 0]
    high_value = np.take_along_axis(ordered, high[:, None], axis=1)[:, 0]
    with np.errstate(invalid="ignore"):
        result = low_value + (position - low) * (high_value - low_value)
    result = np.where(high == low, low_value, result)
    return np.where(counts > 0, result, np.nan)


def masked_median(values: Floats, mask: Bools) -> Floats:
    """``(J,)``: each row's median of the entries where ``mask``; NaN for empty rows."""
    return masked_quantile(values, mask, 0.5)
