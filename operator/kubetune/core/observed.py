"""What a shell observed of one job's workers: pod or process facts, the last heartbeat and the final result.

Decides: nothing; it is the vocabulary in which the shells (kopf handlers, the local runner) hand observations to
:func:`kubetune.core.plan`, and in which heartbeats and results (see docs/trainer-contract.md) are read.
Pure: standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

WorkerPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]


def _metrics(raw: Any) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[str(key)] = float(value)
    return out


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Heartbeat:
    """The newest progress report of one worker."""

    step: int
    time: float
    kind: str = "heartbeat"
    total_steps: int | None = None
    epoch: int | None = None
    samples_per_s: float | None = None
    steps_per_s: float | None = None  # over the window since the previous record (None in a worker's first)
    metrics: Mapping[str, float] = field(default_factory=dict)
    checkpoint_step: int | None = None
    # The newest finished epoch and its metrics (validation accuracy, ...): a study's intermediate values.
    last_epoch: int | None = None
    epoch_metrics: Mapping[str, float] = field(default_factory=dict)
    # Seconds per step this rank spends on its own work (forward, data, any slowness of its node), not waiting for
    # the others: in a synchronous gang every rank steps at the same rate, so only this tells the slow rank apart.
    local_step_s: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Heartbeat:
        rate = data.get("samples_per_s")
        last = data.get("last_epoch")
        last = last if isinstance(last, Mapping) else {}
        return cls(
            step=int(data.get("step") or 0),
            time=float(data.get("time") or 0.0),
            kind=str(data.get("kind") or "heartbeat"),
            total_steps=_int_or_none(data.get("total_steps")),
            epoch=_int_or_none(data.get("epoch")),
            samples_per_s=float(rate) if isinstance(rate, int | float) else None,
            steps_per_s=float(steps) if isinstance(steps := data.get("steps_per_s"), int | float) else None,
            metrics=_metrics(data.get("metrics")),
            checkpoint_step=_int_or_none(data.get("checkpoint_step")),
            last_epoch=_int_or_none(last.get("epoch")),
            epoch_metrics=_metrics(last.get("metrics")),
            local_step_s=float(local) if isinstance(local := data.get("local_step_s"), int | float) else None,
        )


@dataclass(frozen=True)
class Result:
    """A worker's final word: the termination message in a pod, the result file locally."""

    outcome: Literal["succeeded", "preempted", "failed"]
    step: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    checkpoint_step: int | None = None
    reason: str | None = None
    message: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result | None:
        outcome = data.get("outcome")
        if outcome not in ("succeeded", "preempted", "failed"):
            return None
        return cls(
            outcome=outcome,
            step=_int_or_none(data.get("step")),
            metrics=_metrics(data.get("metrics")),
            checkpoint_step=_int_or_none(data.get("checkpoint_step")),
            reason=str(data["reason"]) if data.get("reason") else None,
            message=str(data["message"]) if data.get("message") else None,
        )


@dataclass(frozen=True)
class WorkerObservation:
    """One worker (pod or process) as observed now."""

    name: str
    rank: int
    attempt: int
    phase: WorkerPhase
    exit_code: int | None = None
    # The container's terminated reason (OOMKilled, Error, ...) or the pod's reason (Evicted, NodeShutdown, ...).
    reason: str | None = None
    # The reason of a True DisruptionTarget pod condition (PreemptionByScheduler, ...), if any.
    disruption: str | None = None
    terminating: bool = False
    heartbeat: Heartbeat | None = None
    result: Result | None = None
    node: str | None = None
    # When its container started and finished (unix seconds), for cost accounting.
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every reason known for how it ended: the trainer's, the container's or pod's, the disruption's."""
        found = (self.result.reason if self.result else None, self.reason, self.disruption)
        return tuple(r for r in found if r)

    @property
    def live(self) -> bool:
        """Still running or about to (neither finished nor being torn down)."""
        return self.phase in ("Pending", "Running", "Unknown") and not self.terminating

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


@dataclass(frozen=True)
class Observed:
    """Everything a plan needs to know about the world: the job's workers and the job's last written status."""

    workers: tuple[WorkerObservation, ...]
    status: Mapping[str, Any] = field(default_factory=dict)
    # The shell's price table, per hour of one CPU or GPU by capacity: {"cpu": {"spot": 0.01, "onDemand": 0.04}}.
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
