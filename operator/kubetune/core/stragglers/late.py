"""The ``late`` straggler policy: LATE (Longest Approximate Time to End, Zaharia et al., OSDI 2008).

Decides, per job, at each decision point (a slot came free): among running tasks not copied yet, with a known rate,
running for at least ``min_elapsed``, and whose progress rate is in the slowest ``slow_quantile`` (25%) of the
running tasks' rates, copy the ones with the longest estimated time left ``(1 - progress) / rate`` (one copy each),
as long as the job's concurrent copies stay within ``cap`` (10%) of its slots (at least one) and a slot is free
(the job's live copies are fewer than its slots: LATE only speculates when a slot asks for work and no task is left
to start). The original keeps running; the first copy to finish wins.

Pure: numpy only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from kubetune.core.stragglers.base import Decision, StragglerPolicy, TaskBatch, check_number
from kubetune.core.stragglers.order_statistics import masked_quantile


class Late(StragglerPolicy):
    """Copy the slow task with the longest estimated time left, within a cap on concurrent copies."""

    name: ClassVar[str] = "late"
    OPTIONS: ClassVar[dict[str, str]] = {
        "slowQuantile": "slow_quantile",
        "cap": "cap",
        "minElapsed": "min_elapsed",
    }

    def __init__(self, slow_quantile: float = 0.25, cap: float = 0.1, min_elapsed: float = 0.0) -> None:
        self.slow_quantile = check_number("slowQuantile", slow_quantile, low=0.0, high=1.0)
        self.cap = check_number("cap", cap, low=0.0, high=1.0, low_open=True)
        self.min_elapsed = check_number("minElapsed", min_elapsed, low=0.0)

    def options(self) -> Mapping[str, Any]:
        return {"slowQuantile": self.slow_quantile, "cap": self.cap, "minElapsed": self.min_elapsed}

    def decide(self, batch: TaskBatch) -> Decision:
        decision = Decision.nothing(batch)
        left = batch.time_left
        known = batch.running & np.isfinite(left) & np.isfinite(batch.rate)
        if not known.any():
            return decision
        slow_rate = masked_quantile(batch.rate, known, self.slow_quantile)
        candidates = (
            known & (batch.rate <= slow_rate[:, None]) & (batch.launched == 1) & (batch.elapsed >= self.min_elapsed)
        )
        cap = np.maximum(1, np.floor(self.cap * batch.slots + 1e-9)).astype(np.int64)
        in_flight = np.where(batch.running, np.maximum(batch.copies - 1, 0), 0).sum(axis=1)
        free = batch.slots - np.where(batch.running, batch.copies, 0).sum(axis=1)
        allowed = np.maximum(np.minimum(cap - in_flight, free), 0)
        key = np.where(candidates, -left, np.inf)
        if allowed.max() <= 1:  # the usual case (cap 10% of under 20 slots): one copy at most, the argmin
            chosen = np.zeros_like(candidates)
            rows = np.flatnonzero(allowed >= 1)
            chosen[rows, np.argmin(key[rows], axis=1)] = True
            chosen &= candidates
        else:
            rank = np.argsort(np.argsort(key, axis=1, kind="stable"), axis=1, kind="stable")
            chosen = candidates & (rank < allowed[:, None])
        return Decision(copies=chosen.astype(np.int64), kill_original=decision.kill_original, wake_at=decision.wake_at)
