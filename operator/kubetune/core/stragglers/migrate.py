"""The ``migrate`` straggler policy: move a task off a slow machine, keeping its progress (checkpoint and resume).

Decides, per running task: when its most advanced live copy has run long enough to show its speed, and at that
speed the copy's time left (LATE's ``(1 - progress) / rate``) is more than ``factor`` times what a fresh copy
resuming from the task's checkpoint would need, cancel the copy and launch one that resumes (``kill_original`` +
``resume``: a move). A fresh copy is expected to need ``restart + (1 - progress) * (typical - restart)``, where
``typical`` is the median time of the job's tasks that finished on their first copy (at least ``min_exact`` of
them; before that the policy waits) and ``restart`` is the start-up a moved copy pays again (the fitted shift of a
shifted distribution; 0 by default). A task is moved at most ``max_moves`` times.

Why it pays where copying from scratch cannot: when the slowdown belongs to the machine (a slow node, a noisy
neighbour, a throttled spot instance) and the progress to the task, a heavy-tailed slowdown (Pareto) is cut off as
soon as it shows, for the price of one start-up and the work since the last checkpoint, and the slow copy's
remaining machine time is saved rather than spent: compute goes down, not up. A fork from scratch (``timeout``,
``singleFork``) must repeat the work done, so it pays only late in the tail and always costs extra.

When to look: a copy's speed is known once it has run ``restart`` plus ``detect`` times ``typical`` (its start-up,
then a few heartbeats' worth of steps); the policy asks to be woken at the next such moment, so a slow copy is
moved early, not at the next completion. Its decisions depend only on the batch (no state between calls).

Pure: numpy only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from kubetune.core.stragglers.base import Decision, StragglerPolicy, TaskBatch, check_number


class Migrate(StragglerPolicy):
    """Move a task whose copy is much slower than a fresh one would be: cancel it, resume from its checkpoint."""

    name: ClassVar[str] = "migrate"
    OPTIONS: ClassVar[dict[str, str]] = {
        "factor": "factor",
        "restartSeconds": "restart",
        "detect": "detect",
        "maxMoves": "max_moves",
        "minExact": "min_exact",
    }

    def __init__(
        self,
        factor: float = 1.5,
        restart: float = 0.0,
        detect: float = 0.1,
        max_moves: int = 3,
        min_exact: int = 3,
    ) -> None:
        self.factor = check_number("factor", factor, low=1.0)
        self.restart = check_number("restartSeconds", restart, low=0.0)
        self.detect = check_number("detect", detect, low=0.0, high=1.0)
        self.max_moves = int(check_number("maxMoves", max_moves, low=1, integer=True))
        self.min_exact = int(check_number("minExact", min_exact, low=1, integer=True))

    def options(self) -> Mapping[str, Any]:
        return {
            "factor": self.factor,
            "restartSeconds": self.restart,
            "detect": self.detect,
            "maxMoves": self.max_moves,
            "minExact": self.min_exact,
        }

    def typical(self, batch: TaskBatch) -> np.ndarray[Any, np.dtype[np.float64]]:
        """``(J,)``: the median time of each job's tasks that finished on their first copy; NaN with too few."""
        exact = batch.finished & (batch.launched == 1)
        count = exact.sum(axis=1)
        ordered = np.sort(np.where(exact, batch.task_time, np.inf), axis=1)  # the exact times first, in order
        rows = np.arange(batch.jobs)
        low, high = np.maximum(count - 1, 0) // 2, np.where(count > 0, count // 2, 0)
        median = 0.5 * (ordered[rows, low] + ordered[rows, high])
        return np.where(count >= self.min_exact, median, np.nan)

    def decide(self, batch: TaskBatch) -> Decision:
        decision = Decision.nothing(batch)
        typical = self.typical(batch)[:, None]
        if not np.isfinite(typical).any():
            return decision
        watch = self.restart + self.detect * typical  # a copy's speed shows after its start-up and a few steps
        elapsed = batch.copy_elapsed
        movable = batch.running & (batch.launched <= self.max_moves) & np.isfinite(typical)
        seen = movable & (elapsed >= watch) & np.isfinite(batch.rate) & (batch.rate > 0)
        progress = np.where(seen, batch.progress, 0.0)
        fresh = self.restart + (1.0 - progress) * np.maximum(typical - self.restart, 0.0)
        move = seen & (batch.time_left > self.factor * fresh)
        # Copies whose speed does not show yet are looked at again once it does.
        pending = movable & ~seen & np.isfinite(elapsed) & (elapsed < watch)
        due = np.where(pending, batch.now[:, None] - elapsed + watch, np.inf)
        return Decision(
            copies=move.astype(np.int64),
            kill_original=move,
            wake_at=due.min(axis=1) if batch.tasks else decision.wake_at,
            resume=move,
        )
