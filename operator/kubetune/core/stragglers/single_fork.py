"""The ``singleFork`` straggler policy: fork once, at a fraction of tasks done or at a time.

Decides, per job: the first time at least ``floor(when_done * n)`` tasks are done (or the job's clock reaches
``at_time``), launch ``replicas`` fresh copies of every unfinished task, and either keep the original running
(``keep``: whichever copy finishes first wins) or kill it at the fork (``kill``: only the new copies remain). It
forks at most once per job (a job with any task copied has forked). This is the policy family of Wang, Joshi and
Wornell, "Efficient straggler replication in large-scale parallel computing" (closed forms in
:mod:`kubetune.core.stragglers.theory`).

Pure: numpy only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np

from kubetune.core.stragglers.base import Decision, StragglerPolicy, TaskBatch, check_number
from kubetune.core.stragglers.order_statistics import count_of

Original = Literal["keep", "kill"]


class SingleFork(StragglerPolicy):
    """Fork once: ``replicas`` new copies of each unfinished task, keeping or killing the original."""

    name: ClassVar[str] = "singleFork"
    OPTIONS: ClassVar[dict[str, str]] = {
        "forkWhenDone": "when_done",
        "forkAtTime": "at_time",
        "replicas": "replicas",
        "original": "original",
    }

    def __init__(
        self,
        when_done: float | None = None,
        at_time: float | None = None,
        replicas: int = 1,
        original: str = "keep",
    ) -> None:
        if (when_done is None) == (at_time is None):
            raise ValueError("stragglers.forkWhenDone: give exactly one of forkWhenDone (a fraction) or forkAtTime")
        self.when_done = None if when_done is None else check_number("forkWhenDone", when_done, low=0.0, high=1.0)
        self.at_time = None if at_time is None else check_number("forkAtTime", at_time, low=0.0)
        self.replicas = int(check_number("replicas", replicas, low=1, integer=True))
        if original not in ("keep", "kill"):
            raise ValueError(f"stragglers.original: must be 'keep' or 'kill', got {original!r}")
        self.original: Original = "keep" if original == "keep" else "kill"

    def options(self) -> Mapping[str, Any]:
        fork = {"forkWhenDone": self.when_done} if self.when_done is not None else {"forkAtTime": self.at_time}
        return {**fork, "replicas": self.replicas, "original": self.original}

    def decide(self, batch: TaskBatch) -> Decision:
        forked = (batch.launched > 1).any(axis=1)
        wake_at = np.full(batch.jobs, np.inf)
        if self.when_done is not None:
            ready = batch.done >= count_of(self.when_done, batch.tasks)
        else:
            at_time = float(self.at_time or 0.0)
            ready = batch.now >= at_time
            wake_at = np.where(~forked & ~ready, at_time, np.inf)
        fork = (~forked & ready)[:, None] & batch.running
        return Decision(
            copies=np.where(fork, self.replicas, 0).astype(np.int64),
            kill_original=fork & (self.original == "kill"),
            wake_at=wake_at,
        )
