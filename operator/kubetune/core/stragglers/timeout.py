"""The ``timeout`` straggler policy: copy each task once it has run longer than a fixed time.

Decides, per running task never copied before: once ``after`` seconds have passed since its original was launched,
launch ``replicas`` fresh copies of it, keeping the original running beside them (``keep``) or cancelling it
(``kill``: a relaunch); and asks to be woken when the next uncopied task reaches ``after``. Each task is judged on
its own clock, so a queue of tasks (a study with more trials than slots) has every straggler caught, early ones and
late ones alike, where a single fork happens once per job. It is the plan family the ``adaptive`` policy picks
from for queued jobs, with ``after`` set to a quantile of the fitted task time.

Pure: numpy only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from kubetune.core.stragglers.base import Decision, StragglerPolicy, TaskBatch, check_number
from kubetune.core.stragglers.single_fork import Original


class TaskTimeout(StragglerPolicy):
    """Copy every task still running ``after`` seconds after its launch: ``replicas`` copies, keep or kill."""

    name: ClassVar[str] = "timeout"
    OPTIONS: ClassVar[dict[str, str]] = {"afterSeconds": "after", "replicas": "replicas", "original": "original"}

    def __init__(self, after: float, replicas: int = 1, original: str = "keep") -> None:
        self.after = check_number("afterSeconds", after, low=0.0)
        self.replicas = int(check_number("replicas", replicas, low=1, integer=True))
        if original not in ("keep", "kill"):
            raise ValueError(f"stragglers.original: must be 'keep' or 'kill', got {original!r}")
        self.original: Original = "keep" if original == "keep" else "kill"

    def options(self) -> Mapping[str, Any]:
        return {"afterSeconds": self.after, "replicas": self.replicas, "original": self.original}

    def decide(self, batch: TaskBatch) -> Decision:
        # ``now >= start + after`` (not ``now - start >= after``): the engine wakes a job at exactly ``start + after``
        # as computed here, so the comparison holds at that instant whatever the rounding.
        due = batch.start + self.after
        uncopied = batch.running & (batch.launched <= 1)
        fork = uncopied & (batch.now[:, None] >= due)
        waiting = np.where(uncopied & ~fork, due, np.inf)
        wake_at = waiting.min(axis=1) if batch.tasks else np.full(batch.jobs, np.inf)
        return Decision(
            copies=np.where(fork, self.replicas, 0).astype(np.int64),
            kill_original=fork & (self.original == "kill"),
            wake_at=wake_at,
        )
