"""Cost accounting of a run: compute by capacity type, the share wasted by cause, and its price.

Decides what a run's compute is: each worker's container time (from its start to its end, or to now when it is
gone without an end), times the CPUs it requested and the GPUs it holds, summed by capacity type (spot or
on-demand) once per gang attempt, when the attempt ends (so status changes at attempt boundaries only, never on
every pass); what is wasted: on a preemption, the work since the last checkpoint (it is redone); and, with a
price table (per CPU-hour and GPU-hour by capacity), what it cost. Studies add the waste of pruned trials and
cancelled replicas from their children's ledgers.

Pure: standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubetune.core.observed import WorkerObservation


def _numbers(raw: Any) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float) and not isinstance(v, bool)}


@dataclass
class Ledger:
    """The running totals kept in ``status.cost``."""

    cpu_seconds: dict[str, float] = field(default_factory=dict)
    gpu_seconds: dict[str, float] = field(default_factory=dict)
    wasted_seconds: dict[str, float] = field(default_factory=dict)
    price: float | None = None
    closed_attempt: int = -1

    @classmethod
    def from_status(cls, raw: Any) -> Ledger:
        if not isinstance(raw, Mapping):
            return cls()
        price = raw.get("price")
        return cls(
            cpu_seconds=_numbers(raw.get("cpuSeconds")),
            gpu_seconds=_numbers(raw.get("gpuSeconds")),
            wasted_seconds=_numbers(raw.get("wastedSeconds")),
            price=float(price) if isinstance(price, int | float) else None,
            closed_attempt=int(raw.get("closedAttempt", -1)),
        )

    def close_attempt(
        self,
        *,
        attempt: int,
        workers: Sequence[WorkerObservation],
        capacity: str,
        cpus: float,
        gpus: int,
        now: float,
        lost_since: float | None,
        prices: Mapping[str, Mapping[str, float]],
    ) -> None:
        """Add attempt ``attempt``'s compute (once); ``lost_since``: a preemption lost the work after this time."""
        if attempt <= self.closed_attempt:
            return
        self.closed_attempt = attempt
        busy = 0.0
        lost = 0.0
        for worker in workers:
            if worker.started_at is None:
                continue
            end = worker.finished_at if worker.finished_at is not None else now
            busy += max(0.0, end - worker.started_at)
            if lost_since is not None:
                lost += max(0.0, end - max(lost_since, worker.started_at))
        if busy <= 0:
            return
        self.cpu_seconds[capacity] = self.cpu_seconds.get(capacity, 0.0) + busy * cpus
        if gpus:
            self.gpu_seconds[capacity] = self.gpu_seconds.get(capacity, 0.0) + busy * gpus
        if lost > 0:
            self.add_waste("preemption", lost * (gpus or cpus))
        if prices:
            hourly = cpus * prices.get("cpu", {}).get(capacity, 0.0) + gpus * prices.get("gpu", {}).get(capacity, 0.0)
            self.price = (self.price or 0.0) + busy / 3600 * hourly

    def add_waste(self, cause: str, seconds: float) -> None:
        self.wasted_seconds[cause] = self.wasted_seconds.get(cause, 0.0) + seconds

    def to_status(self) -> dict[str, Any]:
        if not (self.cpu_seconds or self.gpu_seconds or self.wasted_seconds):
            return {}
        out: dict[str, Any] = {
            "cpuSeconds": {k: round(v, 3) for k, v in sorted(self.cpu_seconds.items())},
            "closedAttempt": self.closed_attempt,
        }
        if self.gpu_seconds:
            out["gpuSeconds"] = {k: round(v, 3) for k, v in sorted(self.gpu_seconds.items())}
        if self.wasted_seconds:
            out["wastedSeconds"] = {k: round(v, 3) for k, v in sorted(self.wasted_seconds.items())}
        if self.price is not None:
            out["price"] = round(self.price, 6)
        return out


def total_seconds(cost: Mapping[str, Any], kind: str = "cpuSeconds") -> float:
    """The sum over capacity types of one kind of seconds in a ``status.cost``."""
    return sum(_numbers(cost.get(kind)).values())
