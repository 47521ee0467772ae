"""The ``spark`` straggler policy: Spark's speculative execution.

Decides, per job: once at least ``max(floor(quantile * n), 1)`` tasks are done, each running task that has not been
copied yet gets one copy as soon as its elapsed time (since its original's launch) reaches
``max(multiplier * median(finished tasks' times), min_runtime)``; the original keeps running and the first copy to
finish wins. Where Spark polls every ``spark.speculation.interval``, this policy asks to be woken exactly when the
next running task crosses the threshold (``Decision.wake_at``). Defaults are Spark <= 3.5's (quantile 0.75,
multiplier 1.5); Spark 4.0 uses 0.9 and 3.

Pure: numpy only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from kubetune.core.stragglers.base import Decision, StragglerPolicy, TaskBatch, check_number
from kubetune.core.stragglers.order_statistics import count_of, masked_median

SPARK_3_DEFAULTS = (0.75, 1.5)
SPARK_4_DEFAULTS = (0.9, 3.0)


class Spark(StragglerPolicy):
    """Copy a running task once ``quantile`` of the tasks are done and it has run ``multiplier`` x their median."""

    name: ClassVar[str] = "spark"
    OPTIONS: ClassVar[dict[str, str]] = {
        "quantile": "quantile",
        "multiplier": "multiplier",
        "minRuntime": "min_runtime",
    }

    def __init__(
        self, quantile: float = SPARK_3_DEFAULTS[0], multiplier: float = SPARK_3_DEFAULTS[1], min_runtime: float = 0.0
    ) -> None:
        self.quantile = check_number("quantile", quantile, low=0.0, high=1.0, low_open=True)
        self.multiplier = check_number("multiplier", multiplier, low=0.0, low_open=True)
        self.min_runtime = check_number("minRuntime", min_runtime, low=0.0)

    def options(self) -> Mapping[str, Any]:
        return {"quantile": self.quantile, "multiplier": self.multiplier, "minRuntime": self.min_runtime}

    def decide(self, batch: TaskBatch) -> Decision:
        decision = Decision.nothing(batch)
        needed = max(count_of(self.quantile, batch.tasks), 1)
        speculating = batch.done >= needed
        if not speculating.any():
            return decision
        median = masked_median(batch.task_time, batch.finished)
        threshold = np.maximum(self.multiplier * median, self.min_runtime)
        eligible = speculating[:, None] & batch.running & (batch.launched == 1)
        crossing = batch.start + threshold[:, None]  # when each task's elapsed time reaches the threshold
        due = eligible & (crossing <= batch.now[:, None])
        later = np.where(eligible & ~due, crossing, np.inf)
        return Decision(
            copies=np.where(due, 1, 0).astype(np.int64),
            kill_original=decision.kill_original,
            wake_at=later.min(axis=1),
        )
