"""The actions a plan asks a shell to carry out, and the plan itself.

Decides: the closed set of things a controller may do to the world for a TrainingJob. Every action is idempotent
when the shell carries it out as documented: create-if-absent, delete-if-present. Pure: standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kubetune.core.capacity import CapacityPlacement

# Set on a TrainingJob to stop it before its end (its value is the reason: Pruned, StudyEnded, ...): the plan
# stops every worker gracefully (SIGTERM, checkpoint) and ends the job in phase Stopped. The study controller uses it
# to enact pruning; anyone may (kubectl annotate tj NAME kubetune.dev/stop=Stopped).
STOP_ANNOTATION = "kubetune.dev/stop"


def worker_name(job: str, rank: int, attempt: int) -> str:
    """The deterministic name of a worker: ``<job>-w<rank>-a<attempt>``."""
    return f"{job}-w{rank}-a{attempt}"


@dataclass(frozen=True)
class CreateWorker:
    """Start the worker of ``rank`` for gang ``attempt`` unless it exists, on ``placement``'s capacity and nodes."""

    name: str
    rank: int
    attempt: int
    placement: CapacityPlacement | None = None


@dataclass(frozen=True)
class DeleteWorker:
    """Stop a worker (gracefully: SIGTERM, then kill after the grace period) unless it is gone."""

    name: str
    reason: str


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event (or a log line locally) for a transition."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = CreateWorker | DeleteWorker


@dataclass(frozen=True)
class Plan:
    """What to do now, what to say, and the status to write (a ``.status`` dict, camelCase)."""

    actions: tuple[Action, ...]
    status: Mapping[str, Any]
    events: tuple[Event, ...] = field(default=())

    @property
    def terminal(self) -> bool:
        return self.status.get("phase") in ("Succeeded", "Failed", "Stopped")
