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

Hedged launches (``hedge`` h > 1): every launch of a task (its start, and each move) is h copies at once, raced
until their speeds show (the same ``restart + detect * typical``; ``restart`` alone before ``typical`` is known),
then only the fastest is kept (``Decision.prune``) and the others are cancelled. Where the slowdown belongs to the
machine, the kept copy runs at the best of h draws: under a Pareto tail of index a, the best of h is Pareto of
index h * a, so its mean drops from ``a / (a - 1)`` to ``h a / (h a - 1)`` times the minimum (a = 2: 2 -> 1.33 for
h = 2) for the price of h - 1 short races, and a heavy tail's mean is where the compute goes: latency and compute
can drop together (the course's log-convex case). ``typical`` then means a hedged launch's time (tasks finished
without a move: ``launched <= hedge``), which is what a move (itself hedged) is compared with; a task has moved
``(launched - hedge) // hedge`` times.

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
        "hedge": "hedge",
    }

    def __init__(
        self,
        factor: float = 1.5,
        restart: float = 0.0,
        detect: float = 0.1,
        max_moves: int = 3,
        min_exact: int = 3,
        hedge: int = 1,
    ) -> None:
        self.factor = check_number("factor", factor, low=1.0)
        self.restart = check_number("restartSeconds", restart, low=0.0)
        self.detect = check_number("detect", detect, low=0.0, high=1.0)
        self.max_moves = int(check_number("maxMoves", max_moves, low=1, integer=True))
        self.min_exact = int(check_number("minExact", min_exact, low=1, integer=True))
        self.hedge = int(check_number("hedge", hedge, low=1, high=4, integer=True))

    def options(self) -> Mapping[str, Any]:
        options: dict[str, Any] = {
            "factor": self.factor,
            "restartSeconds": self.restart,
            "detect": self.detect,
            "maxMoves": self.max_moves,
            "minExact": self.min_exact,
        }
        if self.hedge > 1:
            options["hedge"] = self.hedge
        return options

    @property
    def copies_needed(self) -> int:
        """Copies of one task at most: its hedged launch and ``max_moves`` hedged moves."""
        return self.hedge * (1 + self.max_moves)

    def typical(self, batch: TaskBatch) -> np.ndarray[Any, np.dtype[np.float64]]:
        """``(J,)``: the median time of each job's tasks that finished on their first (hedged) launch; NaN with too
        few."""
        exact = batch.finished & (batch.launched <= self.hedge)
        count = exact.sum(axis=1)
        ordered = np.sort(np.where(exact, batch.task_time, np.inf), axis=1)  # the exact times first, in order
        rows = np.arange(batch.jobs)
        low, high = np.maximum(count - 1, 0) // 2, np.where(count > 0, count // 2, 0)
        median = 0.5 * (ordered[rows, low] + ordered[rows, high])
        return np.where(count >= self.min_exact, median, np.nan)

    def decide(self, batch: TaskBatch) -> Decision:
        hedge = self.hedge
        typical = self.typical(batch)[:, None]
        if hedge == 1 and not np.isfinite(typical).any():
            return Decision.nothing(batch)
        known = np.isfinite(typical)
        # A copy's speed shows after its start-up and a few steps (before ``typical`` is known: its start-up).
        watch = self.restart + self.detect * np.where(known, typical, 0.0)
        watch_ = watch * (1.0 - 1e-9)  # a wake-up at ``watch`` sees the moment, whatever the float rounding
        elapsed = batch.copy_elapsed
        moved = np.maximum(batch.launched - hedge, 0) // hedge
        movable = batch.running & (moved < self.max_moves) & known
        shown = batch.running & (elapsed >= watch_) & np.isfinite(batch.rate) & (batch.rate > 0)
        seen = movable & shown
        progress = np.where(seen, batch.progress, 0.0)
        fresh = self.restart + (1.0 - progress) * np.maximum(typical - self.restart, 0.0)
        move = seen & (batch.time_left > self.factor * fresh)
        # The task's hedged start; a task already past its start-up when hedging began (an adaptive policy that
        # chose it late) races copies resuming from its checkpoint instead.
        launch = batch.running & (batch.launched == 1) & (hedge > 1) & ~move
        late = launch & (elapsed >= self.restart * (1.0 - 1e-9))
        # A race is decided once its newest copies show their speed: a move's copies all start together; a first
        # race's extra copies start at the task's first copy.
        newest = np.where(batch.launched <= hedge, np.fmax(batch.first_copy_at, batch.now[:, None] - elapsed), np.nan)
        raced = np.where(np.isfinite(newest), batch.now[:, None] - newest, elapsed)
        decided = batch.running & (batch.copies > 1) & (raced >= watch_) & np.isfinite(batch.rate)
        prune = decided & ~move
        # Copies whose speed does not show yet are looked at again once it does.
        pending = (movable & ~shown & (elapsed < watch_)) | (batch.running & (batch.copies > 1) & ~decided)
        pending |= launch | move  # copies launched now show their speed ``watch`` from now
        wait = np.where(launch | move, watch, np.where(batch.copies > 1, watch - raced, watch - elapsed))
        due = np.where(pending & np.isfinite(wait), batch.now[:, None] + np.maximum(wait, 0.0), np.inf)
        return Decision(
            copies=np.where(move, hedge, np.where(launch, hedge - 1, 0)).astype(np.int64),
            kill_original=move,
            wake_at=due.min(axis=1) if batch.tasks else np.full(batch.jobs, np.inf),
            resume=move | late,
            prune=prune if hedge > 1 else None,
        )
