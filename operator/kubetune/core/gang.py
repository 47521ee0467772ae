"""The gang policy of a TrainingJob: ``plan(job, observed, now) -> Plan``.

Decides, from scratch on every call (level-triggered), what the job's workers should be and what its status says:
create the missing ranks of the current attempt; when a rank fails, tear the gang down and start attempt+1 from the
last checkpoint (counted against ``backoffLimit``); when a rank is preempted or lost, do the same without counting;
when a rank diverges or is misconfigured, fail at once; succeed when every rank has succeeded. A new attempt starts
only once every worker of the old one is gone, so that the old gang's SIGTERM checkpoint is the one resumed.
Terminal phases never un-terminate.

The plan never sleeps and never does I/O; ``now`` is given. Imports only the standard library and kubetune.api /
kubetune.core (no kopf, kubernetes, optuna, mlflow: an import-linter contract holds this).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubetune.api import Problem, TrainingJob
from kubetune.api.trainingjob import Capacity, FailureRule
from kubetune.core.actions import STOP_ANNOTATION, Action, CreateWorker, DeleteWorker, Event, Plan, worker_name
from kubetune.core.capacity import MAX_AVOIDED_NODES, capacity_for, placement
from kubetune.core.conditions import (
    Condition,
    ConditionType,
    Phase,
    Reason,
    bounded,
    for_phase,
    set_condition,
)
from kubetune.core.cost import Ledger
from kubetune.core.observed import Observed, WorkerObservation
from kubetune.core.outcomes import Outcome, classify, describe

MAX_WORKER_SUMMARIES = 32
MAX_METRICS = 32
# Status keys that belong to the shells (for example the MLflow run), carried over untouched.
PASSTHROUGH_KEYS = ("mlflow",)


def timestamp(now: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as Kubernetes writes times."""
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class _Draft:
    """The status being built, with the previous one's counters."""

    phase: Phase
    attempt: int
    restarts: int
    preemptions: int
    start_time: str | None
    completion_time: str | None
    conditions: tuple[Condition, ...]
    message: str
    last_checkpoint: dict[str, Any] | None
    final_metrics: dict[str, float]
    passthrough: dict[str, Any]
    capacity: Capacity | None
    avoid_nodes: list[str]
    ledger: Ledger
    straggler_restarts: int
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> _Draft:
        phase = Phase.of(status.get("phase"))
        return cls(
            phase=phase,
            attempt=int(status.get("attempt", 0)),
            restarts=int(status.get("restarts", 0)),
            preemptions=int(status.get("preemptions", 0)),
            start_time=status.get("startTime"),
            completion_time=status.get("completionTime"),
            conditions=tuple(Condition.from_dict(c) for c in status.get("conditions", ())),
            message=str(status.get("message", "")),
            last_checkpoint=dict(status["lastCheckpoint"]) if status.get("lastCheckpoint") else None,
            final_metrics=dict(status.get("finalMetrics") or {}),
            passthrough={key: status[key] for key in PASSTHROUGH_KEYS if key in status},
            capacity=status.get("capacity") if status.get("capacity") in ("spot", "onDemand") else None,
            avoid_nodes=[str(n) for n in status.get("avoidNodes", ())],
            ledger=Ledger.from_status(status.get("cost")),
            straggler_restarts=int(status.get("stragglerRestarts", 0)),
        )


def plan(job: TrainingJob, observed: Observed, now: datetime) -> Plan:
    """Decide the actions and the status of ``job`` given what was ``observed`` at ``now``."""
    draft = _Draft.from_status(observed.status)
    ts = timestamp(now)
    generation = job.generation
    workers = observed.workers
    current = {w.rank: w for w in workers if w.attempt == draft.attempt}
    stale = [w for w in workers if w.attempt != draft.attempt]
    draft.actions += [DeleteWorker(w.name, "stale attempt") for w in stale if w.live]

    if draft.phase.terminal:
        draft.actions += [DeleteWorker(w.name, f"job {draft.phase}") for w in current.values() if w.live]
    elif _past_deadline(job, draft, now):
        _fail(
            draft,
            current,
            Reason.DEADLINE_EXCEEDED,
            f"the job ran longer than activeDeadlineSeconds={job.spec.active_deadline_seconds}",
            ts,
            generation,
        )
    elif stop := job.annotations.get(STOP_ANNOTATION):
        _stop(draft, current, stale, stop, ts, generation)
    elif job.spec.suspend:
        _suspend(draft, current, ts, generation)
    else:
        if draft.phase == Phase.SUSPENDED:
            _transition(draft, Phase.PENDING, Reason.JOB_RESUMED, "resumed from the last checkpoint", ts, generation)
        _reconcile_gang(job, draft, current, stale, observed, now)

    if draft.phase.terminal:
        _close_attempt(job, draft, current, observed, now, preempted=False)
    status = _status(job, draft, current, observed.status)
    return Plan(actions=tuple(draft.actions), status=status, events=tuple(draft.events))


def _close_attempt(
    job: TrainingJob,
    draft: _Draft,
    current: dict[int, WorkerObservation],
    observed: Observed,
    now: datetime,
    *,
    preempted: bool,
) -> None:
    """Count the compute of the attempt that ends now (once: the ledger remembers the last attempt counted)."""
    checkpoint = _parse_time((draft.last_checkpoint or {}).get("time"))
    draft.ledger.close_attempt(
        attempt=draft.attempt,
        workers=list(current.values()),
        capacity=draft.capacity or capacity_for(job, draft.preemptions),
        cpus=_cpus_per_worker(job),
        gpus=job.spec.parallelism.gpus_per_worker,
        now=now.timestamp(),
        lost_since=(checkpoint.timestamp() if checkpoint else 0.0) if preempted else None,
        prices=observed.prices,
    )


def _cpus_per_worker(job: TrainingJob) -> float:
    """The CPUs a worker is charged for: its request (or limit), else 1."""
    for kind in ("requests", "limits"):
        cores = job.spec.cpus(kind)
        if cores is not None:
            return max(0.0, cores)
    return 1.0


def plan_invalid(generation: int, problems: Sequence[Problem], observed: Observed, now: datetime) -> Plan:
    """The plan for a TrainingJob whose spec cannot be accepted: stop its workers and fail with ``InvalidSpec``."""
    draft = _Draft.from_status(observed.status)
    ts = timestamp(now)
    message = "; ".join(str(problem) for problem in problems)
    if not draft.phase.terminal:
        draft.actions += [DeleteWorker(w.name, "invalid spec") for w in observed.workers if w.live]
        _transition(draft, Phase.FAILED, Reason.INVALID_SPEC, f"invalid spec: {message}", ts, generation)
        draft.completion_time = ts
    status = _status(None, draft, {}, observed.status, generation=generation)
    return Plan(actions=tuple(draft.actions), status=status, events=tuple(draft.events))


# --- decisions --------------------------------------------------------------------------------------------------------


def _past_deadline(job: TrainingJob, draft: _Draft, now: datetime) -> bool:
    limit = job.spec.active_deadline_seconds
    started = _parse_time(draft.start_time)
    return limit is not None and started is not None and (now - started).total_seconds() > limit


def _matching_rule(job: TrainingJob, workers: list[WorkerObservation]) -> tuple[FailureRule, WorkerObservation] | None:
    """The first failurePolicy rule (in spec order) that matches one of the ended workers."""
    for rule in job.spec.resilience.failure_rules:
        for worker in workers:
            if rule.matches(worker.exit_code, worker.reasons):
                return rule, worker
    return None


def _avoid(draft: _Draft, worker: WorkerObservation) -> None:
    if worker.node and worker.node not in draft.avoid_nodes:
        draft.avoid_nodes = [*draft.avoid_nodes, worker.node][-MAX_AVOIDED_NODES:]


def _reconcile_gang(
    job: TrainingJob,
    draft: _Draft,
    current: dict[int, WorkerObservation],
    stale: list[WorkerObservation],
    observed: Observed,
    now: datetime,
) -> None:
    ts, generation = timestamp(now), job.generation
    n = job.spec.parallelism.workers
    outcomes = {rank: classify(worker) for rank, worker in current.items()}
    by_outcome: dict[Outcome, list[WorkerObservation]] = {}
    for rank, outcome in sorted(outcomes.items()):
        by_outcome.setdefault(outcome, []).append(current[rank])
    lost = _lost_ranks(job, draft.attempt, current, observed.status)
    ended = [
        *by_outcome.get(Outcome.FATAL, ()),
        *by_outcome.get(Outcome.FAILED, ()),
        *by_outcome.get(Outcome.PREEMPTED, ()),
    ]
    ruled = _matching_rule(job, ended)

    if ruled is not None and ruled[0].action in ("FailTrial", "FailJob"):
        rule, worker = ruled
        reason = Reason.FAILED_BY_POLICY if rule.action == "FailTrial" else Reason.FAIL_JOB_BY_POLICY
        _fail(draft, current, reason, f"{describe(worker)}; failurePolicy says {rule.action}", ts, generation)
    elif ruled is not None and classify(ruled[1]) != Outcome.PREEMPTED:
        rule, worker = ruled  # Retry or RelaunchElsewhere: a failure counted against backoffLimit, even a fatal one
        if draft.restarts >= job.spec.backoff_limit:
            message = f"{describe(worker)}; {draft.restarts} restart(s) reached backoffLimit {job.spec.backoff_limit}"
            _fail(draft, current, Reason.BACKOFF_LIMIT_EXCEEDED, message, ts, generation)
        else:
            if rule.action == "RelaunchElsewhere":
                _avoid(draft, worker)
            draft.restarts += 1
            _close_attempt(job, draft, current, observed, now, preempted=False)
            cause = f"{describe(worker)}; failurePolicy says {rule.action}"
            _restart(job, draft, current, Reason.WORKER_FAILED, cause, ts, generation)
    elif fatal := by_outcome.get(Outcome.FATAL):
        trainer_reason = fatal[0].result.reason if fatal[0].result else None
        reason = Reason.TRAINING_DIVERGED if trainer_reason == "Diverged" else Reason.INVALID_CONFIG
        _fail(
            draft,
            current,
            reason,
            f"{describe(fatal[0])}; not retried: the same settings would end the same way",
            ts,
            generation,
        )
    elif failed := by_outcome.get(Outcome.FAILED):
        if draft.restarts >= job.spec.backoff_limit:
            _fail(
                draft,
                current,
                Reason.BACKOFF_LIMIT_EXCEEDED,
                f"{describe(failed[0])}; {draft.restarts} restart(s) reached backoffLimit {job.spec.backoff_limit}",
                ts,
                generation,
            )
        else:
            draft.restarts += 1
            _close_attempt(job, draft, current, observed, now, preempted=False)
            _restart(job, draft, current, Reason.WORKER_FAILED, describe(failed[0]), ts, generation)
    elif preempted := by_outcome.get(Outcome.PREEMPTED):
        if ruled is not None and ruled[0].action == "RelaunchElsewhere":
            _avoid(draft, ruled[1])
        _preempted(job, draft, current, observed, now, Reason.WORKER_PREEMPTED, describe(preempted[0]))
    elif lost:
        cause = f"worker {worker_name(job.name, lost[0], draft.attempt)} disappeared"
        _preempted(job, draft, current, observed, now, Reason.WORKER_LOST, cause)
    elif len(by_outcome.get(Outcome.SUCCEEDED, ())) == n:
        draft.final_metrics = _merged_metrics(w.result.metrics if w.result else {} for _, w in sorted(current.items()))
        _transition(
            draft,
            Phase.SUCCEEDED,
            Reason.ALL_WORKERS_SUCCEEDED,
            f"all {n} worker(s) succeeded",
            ts,
            generation,
        )
        draft.completion_time = ts
    elif not _straggler(job, draft, current, observed, now):
        _start_missing(job, draft, current, stale, ts, generation)


MAX_STRAGGLER_RESTARTS = 3


def _straggler(
    job: TrainingJob, draft: _Draft, current: dict[int, WorkerObservation], observed: Observed, now: datetime
) -> bool:
    """Report a rank whose own work per step is ``slowRankFactor`` times the others' median (condition Straggler,
    an Event when it appears); with ``restartSlowGang``, restart the gang from its checkpoint away from that rank's
    node (at most 3 times, never counted against backoffLimit). True when it restarted the gang."""
    spec = job.spec.resilience.stragglers
    times = {
        rank: w.heartbeat.local_step_s
        for rank, w in current.items()
        if w.phase == "Running" and w.heartbeat is not None and w.heartbeat.local_step_s
    }
    slow: list[tuple[int, float]] = []
    for rank, seconds in sorted(times.items()):
        others = [t for r, t in times.items() if r != rank]
        if others and seconds > spec.slow_rank_factor * statistics.median(others):
            slow.append((rank, seconds / statistics.median(others)))
    ts, generation = timestamp(now), job.generation
    present = any(c.type == ConditionType.STRAGGLER for c in draft.conditions)
    if not slow:
        if present:
            message = "no rank is slower than the others"
            draft.conditions = set_condition(
                draft.conditions, ConditionType.STRAGGLER, False, Reason.NO_SLOW_RANK, message, ts, generation
            )
        return False
    rank, factor = max(slow, key=lambda item: item[1])
    worker = current[rank]
    message = f"rank {rank} ({worker.name} on {worker.node or 'an unknown node'}) is {factor:.1f}x slower per step"
    was = next((c for c in draft.conditions if c.type == ConditionType.STRAGGLER), None)
    if was is None or was.status != "True":
        draft.events.append(Event("Warning", str(Reason.SLOW_RANK), message))
    draft.conditions = set_condition(
        draft.conditions, ConditionType.STRAGGLER, True, Reason.SLOW_RANK, message, ts, generation
    )
    if not spec.restart_slow_gang or draft.straggler_restarts >= MAX_STRAGGLER_RESTARTS:
        return False
    _avoid(draft, worker)
    draft.straggler_restarts += 1
    _close_attempt(job, draft, current, observed, now, preempted=True)
    _restart(
        job, draft, current, Reason.STRAGGLER_RESTART, f"{message}; relaunching away from its node", ts, generation
    )
    return True


def _preempted(
    job: TrainingJob,
    draft: _Draft,
    current: dict[int, WorkerObservation],
    observed: Observed,
    now: datetime,
    reason: Reason,
    cause: str,
) -> None:
    """A preemption (or a lost pod): relaunch from the checkpoint, never counted against backoffLimit."""
    ts = timestamp(now)
    _close_attempt(job, draft, current, observed, now, preempted=True)
    draft.preemptions += 1
    limit = job.spec.resilience.spot.max_preemptions
    if limit is not None and draft.preemptions > limit:
        message = f"{cause}; {draft.preemptions} preemption(s) exceed resilience.spot.maxPreemptions {limit}"
        _fail(draft, current, Reason.PREEMPTION_LIMIT_EXCEEDED, message, ts, job.generation)
        return
    _restart(job, draft, current, reason, cause, ts, job.generation)


def _lost_ranks(
    job: TrainingJob, attempt: int, current: dict[int, WorkerObservation], previous: Mapping[str, Any]
) -> list[int]:
    """Ranks of this attempt that were observed before and are gone now (pod deleted, node lost)."""
    lost = []
    for summary in previous.get("workers", ()):
        rank = summary.get("rank")
        if (
            isinstance(rank, int)
            and summary.get("name") == worker_name(job.name, rank, attempt)
            and summary.get("phase") not in (None, "Missing")
            and rank not in current
        ):
            lost.append(rank)
    return sorted(lost)


def _start_missing(
    job: TrainingJob,
    draft: _Draft,
    current: dict[int, WorkerObservation],
    stale: list[WorkerObservation],
    ts: str,
    generation: int,
) -> None:
    n = job.spec.parallelism.workers
    missing = [rank for rank in range(n) if rank not in current]
    old_alive = [w for w in stale if not w.finished]
    if missing and not old_alive:
        capacity = capacity_for(job, draft.preemptions)
        if draft.capacity is not None and capacity != draft.capacity:
            message = f"attempt {draft.attempt} runs on {capacity} capacity after {draft.preemptions} preemption(s)"
            draft.events.append(Event("Normal", str(Reason.CAPACITY_FALLBACK), message))
        draft.capacity = capacity
        where = placement(job, capacity, draft.avoid_nodes)
        draft.actions += [
            CreateWorker(worker_name(job.name, r, draft.attempt), r, draft.attempt, where) for r in missing
        ]
        if draft.start_time is None:
            draft.start_time = ts
        if not any(c.type == ConditionType.CREATED for c in draft.conditions):
            draft.conditions = set_condition(
                draft.conditions,
                ConditionType.CREATED,
                True,
                Reason.WORKERS_CREATED,
                f"created {n} worker(s)",
                ts,
                generation,
            )
            draft.events.append(Event("Normal", str(Reason.WORKERS_CREATED), f"created {n} worker(s)"))
    running = [w for w in current.values() if w.phase in ("Running", "Succeeded")]
    if len(running) == n:
        _transition(
            draft,
            Phase.RUNNING,
            Reason.WORKERS_RUNNING,
            f"all {n} worker(s) running (attempt {draft.attempt})",
            ts,
            generation,
        )
    elif draft.phase not in (Phase.RESTARTING, Phase.PENDING):
        _transition(
            draft,
            Phase.PENDING,
            Reason.WORKERS_PENDING,
            f"{len(running)}/{n} worker(s) running",
            ts,
            generation,
        )


def _restart(
    job: TrainingJob,
    draft: _Draft,
    current: dict[int, WorkerObservation],
    reason: Reason,
    cause: str,
    ts: str,
    generation: int,
) -> None:
    draft.actions += [DeleteWorker(w.name, f"gang restart: {reason}") for w in current.values() if w.live]
    draft.attempt += 1
    message = (
        f"{cause}; restarting the gang as attempt {draft.attempt} from the last checkpoint "
        f"({draft.restarts} restart(s), {draft.preemptions} preemption(s))"
    )
    draft.events.append(Event("Warning", str(reason), bounded(message)))
    _transition(draft, Phase.RESTARTING, reason, message, ts, generation, event=False)


def _suspend(draft: _Draft, current: dict[int, WorkerObservation], ts: str, generation: int) -> None:
    live = [w for w in current.values() if w.live]
    draft.actions += [DeleteWorker(w.name, "suspended") for w in live]
    if draft.phase != Phase.SUSPENDED:
        if current:
            draft.attempt += 1  # the next start is a fresh gang that resumes from the checkpoint
        _transition(
            draft,
            Phase.SUSPENDED,
            Reason.JOB_SUSPENDED,
            "spec.suspend is true: workers stopped",
            ts,
            generation,
        )


def _stop(
    draft: _Draft,
    current: dict[int, WorkerObservation],
    stale: list[WorkerObservation],
    why: str,
    ts: str,
    generation: int,
) -> None:
    """Stop on request: every worker gets SIGTERM (and checkpoints); once none runs, the job is Stopped."""
    try:
        reason = Reason(why)
    except ValueError:
        reason = Reason.STOPPED
    draft.actions += [DeleteWorker(w.name, f"stopped: {why}") for w in current.values() if w.live]
    if all(w.finished for w in [*current.values(), *stale]):
        _transition(draft, Phase.STOPPED, reason, f"stopped on request ({STOP_ANNOTATION}={why})", ts, generation)
        draft.completion_time = ts


def _fail(
    draft: _Draft,
    current: dict[int, WorkerObservation],
    reason: Reason,
    message: str,
    ts: str,
    generation: int,
) -> None:
    draft.actions += [DeleteWorker(w.name, f"job failed: {reason}") for w in current.values() if w.live]
    _transition(draft, Phase.FAILED, reason, message, ts, generation)
    draft.completion_time = ts


def _transition(
    draft: _Draft, phase: Phase, reason: Reason, message: str, ts: str, generation: int, *, event: bool = True
) -> None:
    if draft.phase != phase and event:
        draft.events.append(Event("Warning" if phase == Phase.FAILED else "Normal", str(reason), bounded(message)))
    draft.phase = phase
    draft.message = bounded(message)
    draft.conditions = for_phase(draft.conditions, phase, reason, message, ts, generation)


# --- status -----------------------------------------------------------------------------------------------------------


def _merged_metrics(sources: Any) -> dict[str, float]:
    merged: dict[str, float] = {}
    for metrics in sources:
        for key, value in metrics.items():
            if len(merged) < MAX_METRICS:
                merged.setdefault(key, value)
    return merged


def _headline(final: Mapping[str, float], latest: Mapping[str, float]) -> str:
    for metrics in (final, latest):
        for key in ("test_accuracy", "val_accuracy", "train_loss", "loss"):
            if key in metrics:
                return f"{key}={metrics[key]:.4g}"
    return ""


def _worker_summary(worker: WorkerObservation) -> dict[str, Any]:
    summary: dict[str, Any] = {"rank": worker.rank, "name": worker.name, "phase": worker.phase}
    beat = worker.heartbeat
    if beat is not None:
        summary["step"] = beat.step
        if beat.samples_per_s is not None:
            summary["samplesPerSecond"] = round(beat.samples_per_s, 1)
        loss = beat.metrics.get("train_loss", beat.metrics.get("loss"))
        if loss is not None:
            summary["loss"] = round(loss, 6)
        summary["lastHeartbeat"] = _utc(beat.time)
    if worker.node:
        summary["node"] = worker.node
    if worker.exit_code is not None:
        summary["exitCode"] = worker.exit_code
    reason = (worker.result.reason if worker.result else None) or worker.disruption or worker.reason
    if reason:
        summary["reason"] = reason
    return summary


def _utc(seconds: float) -> str:
    return timestamp(datetime.fromtimestamp(seconds, tz=UTC))


def _progress(job: TrainingJob | None, current: dict[int, WorkerObservation], phase: Phase) -> str:
    """The slowest rank's share of its total steps (a rank without a heartbeat counts as 0)."""
    if phase == Phase.SUCCEEDED:
        return "100%"
    if job is None:
        return ""
    fractions = [0.0] * job.spec.parallelism.workers
    for rank, worker in current.items():
        beat = worker.heartbeat
        if beat is not None and beat.total_steps and rank < len(fractions):
            fractions[rank] = min(1.0, beat.step / beat.total_steps)
    return f"{int(100 * min(fractions))}%"


def _progress_detail(job: TrainingJob | None, current: dict[int, WorkerObservation], phase: Phase) -> dict[str, float]:
    """While running: the slowest rank's exact fraction done (``progressFraction``) and, once every rank's heartbeat
    carries a step rate, the slowest rank's rate in fractions per second (``progressRate``): what a straggler
    policy needs to estimate a trial's time left; nothing before every rank has reported."""
    if job is None or phase.terminal or len(current) < job.spec.parallelism.workers:
        return {}
    fractions, rates = [], []
    for worker in current.values():
        beat = worker.heartbeat
        if beat is None or not beat.total_steps:
            return {}
        fractions.append(min(1.0, beat.step / beat.total_steps))
        if beat.steps_per_s is not None:
            rates.append(beat.steps_per_s / beat.total_steps)
    detail = {"progressFraction": round(min(fractions), 6)}
    if len(rates) == len(fractions):
        detail["progressRate"] = round(min(rates), 9)
    return detail


def _last_checkpoint(draft: _Draft, current: dict[int, WorkerObservation]) -> dict[str, Any] | None:
    best = draft.last_checkpoint
    for worker in current.values():
        for step, when in (
            (worker.heartbeat.checkpoint_step, worker.heartbeat.time) if worker.heartbeat else (None, 0.0),
            (worker.result.checkpoint_step, None) if worker.result else (None, None),
        ):
            if step is not None and (best is None or step > int(best.get("step", -1))):
                best = {"step": step}
                if when:
                    best["time"] = _utc(when)
    return best


def _epoch_metrics(current: dict[int, WorkerObservation], previous: Mapping[str, Any]) -> dict[str, Any] | None:
    """The newest finished epoch's metrics of any rank (a study's intermediate values), kept across restarts."""
    best = previous.get("epochMetrics")
    best_epoch = best.get("epoch", -1) if isinstance(best, Mapping) else -1
    for _, worker in sorted(current.items()):
        beat = worker.heartbeat
        if beat is not None and beat.last_epoch is not None and beat.epoch_metrics and beat.last_epoch > best_epoch:
            best = {"epoch": beat.last_epoch, "metrics": dict(list(beat.epoch_metrics.items())[:MAX_METRICS])}
            best_epoch = beat.last_epoch
    return dict(best) if isinstance(best, Mapping) else None


def _status(
    job: TrainingJob | None,
    draft: _Draft,
    current: dict[int, WorkerObservation],
    previous: Mapping[str, Any],
    generation: int | None = None,
) -> dict[str, Any]:
    latest = _merged_metrics(w.heartbeat.metrics for _, w in sorted(current.items()) if w.heartbeat)
    if not latest:
        latest = dict(previous.get("metrics") or {})
    status: dict[str, Any] = {
        "phase": str(draft.phase),
        "observedGeneration": job.generation if job is not None else generation,
        "attempt": draft.attempt,
        "restarts": draft.restarts,
        "preemptions": draft.preemptions,
        "progress": _progress(job, current, draft.phase),
        **_progress_detail(job, current, draft.phase),
        "metric": _headline(draft.final_metrics, latest),
        "message": draft.message,
        "conditions": [c.to_dict() for c in draft.conditions],
        "workers": [_worker_summary(w) for _, w in sorted(current.items())][:MAX_WORKER_SUMMARIES],
    }
    if draft.start_time:
        status["startTime"] = draft.start_time
    if draft.completion_time:
        status["completionTime"] = draft.completion_time
    if latest:
        status["metrics"] = latest
    if draft.final_metrics:
        status["finalMetrics"] = draft.final_metrics
    checkpoint = _last_checkpoint(draft, current)
    if checkpoint:
        status["lastCheckpoint"] = checkpoint
    epoch = _epoch_metrics(current, previous)
    if epoch:
        status["epochMetrics"] = epoch
    if draft.capacity is not None:
        status["capacity"] = draft.capacity
    if draft.avoid_nodes:
        status["avoidNodes"] = list(draft.avoid_nodes)
    if draft.straggler_restarts:
        status["stragglerRestarts"] = draft.straggler_restarts
    cost = draft.ledger.to_status()
    if cost:
        status["cost"] = cost
    status.update(draft.passthrough)
    return status
