"""Closed forms for single-fork replication of a job of n i.i.d. tasks ``X = shift + Exp(rate)``.

Decides: the expected latency ``E[T]`` (when the last task finishes) and expected cost ``E[C]`` (machine time of every
copy, from its launch until it finishes or is cancelled) of a job with no replication, and of a single fork at the
``(n - k)``-th completion (``k`` stragglers left, ``1 <= n - k``, so the fork comes after the shift and the residual
times are memoryless) that launches ``r`` fresh copies of each straggler and keeps or kills the original
(Wang, Joshi and Wornell, "Efficient straggler replication in large-scale parallel computing"). With
``H_n`` the harmonic number, ``mu`` the rate, ``D`` the shift and ``q = exp(-mu D)``:

- none: ``E[T] = D + H_n / mu``, ``E[C] = n (D + 1/mu)``;
- keep: ``E[T] = D + H_n/mu - r/((r+1) mu) sum_{i=1..k} [1 - (1-q)^i] / i``, ``E[C] = n (D + 1/mu) + k r (1-q)/mu``;
- kill: ``E[T] = 2D + (H_n - H_k)/mu + H_k/(r mu)``, ``E[C] = n (D + 1/mu) + k r D``.

Pure: standard library only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Forecast:
    """Expected latency and expected cost of a job under a policy."""

    mean_latency: float
    mean_cost: float


def harmonic(n: int) -> float:
    """``H_n = 1 + 1/2 + ... + 1/n`` (``H_0 = 0``)."""
    if n < 0:
        raise ValueError(f"harmonic: n must be >= 0, got {n}")
    return math.fsum(1.0 / i for i in range(1, n + 1))


def _check(tasks: int, shift: float, rate: float) -> None:
    if tasks < 1:
        raise ValueError(f"tasks: must be >= 1, got {tasks}")
    if shift < 0:
        raise ValueError(f"shift: must be >= 0, got {shift}")
    if rate <= 0:
        raise ValueError(f"rate: must be > 0, got {rate}")


def _check_fork(tasks: int, stragglers: int, replicas: int) -> None:
    if not 0 <= stragglers <= tasks - 1:
        raise ValueError(
            f"stragglers: must be in [0, {tasks - 1}] (the fork comes after a completion), got {stragglers}"
        )
    if replicas < 1:
        raise ValueError(f"replicas: must be >= 1, got {replicas}")


def baseline(tasks: int, shift: float, rate: float) -> Forecast:
    """No replication: ``E[T] = D + H_n/mu``, ``E[C] = n (D + 1/mu)``."""
    _check(tasks, shift, rate)
    return Forecast(shift + harmonic(tasks) / rate, tasks * (shift + 1.0 / rate))


def single_fork_keep(tasks: int, stragglers: int, replicas: int, shift: float, rate: float) -> Forecast:
    """Fork at the ``(n - k)``-th completion, ``r`` new copies of each of the ``k`` stragglers, originals kept."""
    _check(tasks, shift, rate)
    _check_fork(tasks, stragglers, replicas)
    q = math.exp(-rate * shift)
    saving = math.fsum((1.0 - (1.0 - q) ** i) / i for i in range(1, stragglers + 1))
    latency = shift + harmonic(tasks) / rate - replicas / ((replicas + 1) * rate) * saving
    cost = tasks * (shift + 1.0 / rate) + stragglers * replicas * (1.0 - q) / rate
    return Forecast(latency, cost)


def single_fork_kill(tasks: int, stragglers: int, replicas: int, shift: float, rate: float) -> Forecast:
    """Fork at the ``(n - k)``-th completion, kill the ``k`` stragglers' originals, start ``r`` fresh copies each."""
    _check(tasks, shift, rate)
    _check_fork(tasks, stragglers, replicas)
    if stragglers == 0:
        return baseline(tasks, shift, rate)
    h_k = harmonic(stragglers)
    latency = 2 * shift + (harmonic(tasks) - h_k) / rate + h_k / (replicas * rate)
    cost = tasks * (shift + 1.0 / rate) + stragglers * replicas * shift
    return Forecast(latency, cost)


def single_fork(
    tasks: int, stragglers: int, replicas: int, original: Literal["keep", "kill"], shift: float, rate: float
) -> Forecast:
    """:func:`single_fork_keep` or :func:`single_fork_kill`."""
    if original == "keep":
        return single_fork_keep(tasks, stragglers, replicas, shift, rate)
    return single_fork_kill(tasks, stragglers, replicas, shift, rate)
