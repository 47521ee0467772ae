"""How a worker ended: succeeded, preempted, failed (worth a retry) or fatal (no retry can help).

Decides: the classification every restart policy rests on. A preemption (a ``DisruptionTarget`` condition, an
eviction, a node shutdown, or the trainer's own ``preempted`` result after SIGTERM) is never a failure and never
counts against ``backoffLimit``; a diverged loss or a bad configuration is fatal, because rerunning the same
hyperparameters reproduces it. Pure: standard library only.
"""

from __future__ import annotations

from enum import StrEnum

from kubetune.core.observed import WorkerObservation

# Reasons of a True DisruptionTarget pod condition (Kubernetes >= 1.26).
DISRUPTION_REASONS = frozenset(
    {
        "PreemptionByScheduler",
        "DeletionByTaintManager",
        "EvictionByEvictionAPI",
        "DeletionByPodGC",
        "TerminationByKubelet",
    }
)
# Pod or container reasons that mean the node went away under the pod.
PREEMPTED_POD_REASONS = frozenset({"Evicted", "NodeShutdown", "Terminated", "NodeLost", "Preempted"})
# Result reasons of the trainer that no retry can fix.
FATAL_RESULT_REASONS = frozenset({"Diverged", "InvalidConfig"})
# The trainer's exit codes (docs/trainer-contract.md).
EXIT_PREEMPTED = 143
EXIT_INVALID_CONFIG = 2


class Outcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PREEMPTED = "preempted"
    FAILED = "failed"
    FATAL = "fatal"


def classify(worker: WorkerObservation) -> Outcome:
    """The outcome of one observed worker."""
    if worker.disruption in DISRUPTION_REASONS:
        return Outcome.SUCCEEDED if worker.phase == "Succeeded" else Outcome.PREEMPTED
    result = worker.result
    if worker.phase == "Succeeded":
        return Outcome.SUCCEEDED
    if worker.phase != "Failed":
        return Outcome.RUNNING
    if result is not None and result.outcome == "preempted":
        return Outcome.PREEMPTED
    if result is not None and result.reason in FATAL_RESULT_REASONS:
        return Outcome.FATAL
    if worker.reason in PREEMPTED_POD_REASONS:
        return Outcome.PREEMPTED
    if worker.exit_code == EXIT_INVALID_CONFIG and result is not None and result.reason == "InvalidConfig":
        return Outcome.FATAL
    return Outcome.FAILED


def describe(worker: WorkerObservation) -> str:
    """One line on how a worker ended, for conditions and Events."""
    parts = [f"worker {worker.name} (rank {worker.rank})"]
    if worker.disruption:
        parts.append(f"disrupted: {worker.disruption}")
    if worker.exit_code is not None:
        parts.append(f"exit code {worker.exit_code}")
    if worker.reason:
        parts.append(f"reason {worker.reason}")
    if worker.result is not None and worker.result.reason:
        parts.append(f"trainer: {worker.result.reason}")
    if worker.result is not None and worker.result.message:
        parts.append(worker.result.message)
    return ", ".join(parts)
