"""The ``none`` straggler policy: never copy a task (the no-replication baseline).

Decides: nothing to launch, ever. Pure: numpy only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

from typing import ClassVar

from kubetune.core.stragglers.base import Decision, StragglerPolicy, TaskBatch


class NoReplication(StragglerPolicy):
    """Never replicate: every task runs as its original copy only."""

    name: ClassVar[str] = "none"
    OPTIONS: ClassVar[dict[str, str]] = {}

    def decide(self, batch: TaskBatch) -> Decision:
        return Decision.nothing(batch)
