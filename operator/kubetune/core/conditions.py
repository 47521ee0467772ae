"""Phases, condition types and reasons of a TrainingJob, and how a condition list changes.

Decides: the vocabulary of status (one enum each for phases, condition types and reasons) and the rule that a
condition's ``lastTransitionTime`` moves only when its status flips. Pure: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    # Stopped on request before the end (a pruned trial, a trial cut short when its study ended): not a failure.
    STOPPED = "Stopped"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.STOPPED)

    @classmethod
    def of(cls, value: object) -> Phase:
        """The phase a status holds (Pending when it holds none, or one this version does not know)."""
        try:
            return cls(str(value)) if value else cls.PENDING
        except ValueError:
            return cls.PENDING


class ConditionType(StrEnum):
    CREATED = "Created"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"
    # Not a phase: a rank of the gang is much slower than the others (its node, usually).
    STRAGGLER = "Straggler"


class Reason(StrEnum):
    """CamelCase reasons, shared by conditions and Events."""

    WORKERS_CREATED = "WorkersCreated"
    WORKERS_PENDING = "WorkersPending"
    WORKERS_RUNNING = "WorkersRunning"
    WORKER_FAILED = "WorkerFailed"
    WORKER_PREEMPTED = "WorkerPreempted"
    WORKER_LOST = "WorkerLost"
    ALL_WORKERS_SUCCEEDED = "AllWorkersSucceeded"
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    TRAINING_DIVERGED = "TrainingDiverged"
    INVALID_CONFIG = "InvalidConfig"
    INVALID_SPEC = "InvalidSpec"
    JOB_SUSPENDED = "JobSuspended"
    JOB_RESUMED = "JobResumed"
    RESTARTED = "Restarted"
    PREEMPTION_LIMIT_EXCEEDED = "PreemptionLimitExceeded"
    FAILED_BY_POLICY = "FailedByPolicy"  # a failurePolicy rule said FailTrial
    FAIL_JOB_BY_POLICY = "FailJobByPolicy"  # a failurePolicy rule said FailJob (a study fails with its trial)
    CAPACITY_FALLBACK = "CapacityFallback"
    SLOW_RANK = "SlowRank"
    NO_SLOW_RANK = "NoSlowRank"
    STRAGGLER_RESTART = "StragglerRestart"
    # A run stopped on request (the kubetune.dev/stop annotation names the reason).
    STOPPED = "Stopped"
    PRUNED = "Pruned"
    STUDY_ENDED = "StudyEnded"
    # Studies (spec.tuning).
    TRIALS_RUNNING = "TrialsRunning"
    TRIAL_STARTED = "TrialStarted"
    TRIAL_COMPLETED = "TrialCompleted"
    TRIAL_PRUNED = "TrialPruned"
    TRIAL_FAILED = "TrialFailed"
    TRIAL_REPLICATED = "TrialReplicated"
    RACE_DECIDED = "RaceDecided"  # a hedged launch kept its fastest copy and cancelled the others
    CANCELLED = "Cancelled"  # a losing copy of a replicated trial
    GOAL_REACHED = "GoalReached"
    MAX_TRIALS_REACHED = "MaxTrialsReached"
    MAX_FAILED_TRIALS_REACHED = "MaxFailedTrialsReached"
    TIMEOUT_REACHED = "TimeoutReached"


# Which condition is True in each phase; the others in this set are False.
PHASE_CONDITION: dict[Phase, ConditionType] = {
    Phase.RUNNING: ConditionType.RUNNING,
    Phase.RESTARTING: ConditionType.RESTARTING,
    Phase.SUSPENDED: ConditionType.SUSPENDED,
    Phase.SUCCEEDED: ConditionType.SUCCEEDED,
    Phase.FAILED: ConditionType.FAILED,
    Phase.STOPPED: ConditionType.STOPPED,
}

MAX_MESSAGE = 1024


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    last_transition_time: str
    observed_generation: int

    def to_dict(self) -> dict[str, object]:
        return {
            "type": str(self.type),
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
            "observedGeneration": self.observed_generation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Condition:
        return cls(
            type=ConditionType(str(data["type"])),
            status=str(data.get("status", "Unknown")),
            reason=str(data.get("reason", "")),
            message=str(data.get("message", "")),
            last_transition_time=str(data.get("lastTransitionTime", "")),
            observed_generation=int(str(data.get("observedGeneration", 0))),
        )


def bounded(message: str) -> str:
    """A message cut to the status limit."""
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def set_condition(
    conditions: tuple[Condition, ...],
    type_: ConditionType,
    status: bool,
    reason: Reason | str,
    message: str,
    now: str,
    generation: int,
) -> tuple[Condition, ...]:
    """``conditions`` with ``type_`` set; the transition time changes only when the status flips."""
    wanted = "True" if status else "False"
    out: list[Condition] = []
    found = False
    for condition in conditions:
        if condition.type != type_:
            out.append(condition)
            continue
        found = True
        moved = now if condition.status != wanted else condition.last_transition_time
        out.append(
            replace(
                condition,
                status=wanted,
                reason=str(reason),
                message=bounded(message),
                last_transition_time=moved,
                observed_generation=generation,
            )
        )
    if not found:
        out.append(Condition(type_, wanted, str(reason), bounded(message), now, generation))
    order = list(ConditionType)
    return tuple(sorted(out, key=lambda condition: order.index(condition.type)))


def for_phase(
    conditions: tuple[Condition, ...], phase: Phase, reason: Reason, message: str, now: str, generation: int
) -> tuple[Condition, ...]:
    """The condition list for ``phase``: its condition True, the other phase conditions False (if present)."""
    target = PHASE_CONDITION.get(phase)
    present = {condition.type for condition in conditions}
    for type_ in PHASE_CONDITION.values():
        if type_ == target:
            conditions = set_condition(conditions, type_, True, reason, message, now, generation)
        elif type_ in present:
            conditions = set_condition(conditions, type_, False, reason, message, now, generation)
    return conditions
