"""The study policy of a tuning TrainingJob (``spec.tuning``): ``plan_study(job, observed, now) -> StudyPlan``.

Decides, from scratch on every call (level-triggered), what a study's controller does next: which trials to
start (a trial recorded RUNNING in the study's storage without its child run gets one; free slots get new trials
asked for), which running trials to stop (pruned by the pruner's verdict, or cut short when the study ends), what to
tell the storage about each finished child (COMPLETE with its objective values, PRUNED, or FAIL with the reason,
so the sampler learns that a region fails), when the study ends (GoalReached, MaxTrialsReached,
MaxFailedTrialsReached, TimeoutReached), and the parent's bounded status (counts by state, the best trial or the
Pareto front, the top trials).

The storage is the source of truth: child names derive from trial numbers (``<study>-t<number>``), a re-plan adopts
the children that exist, and new trials are asked for only for slots that no RUNNING trial holds, so a controller
restarted at any point never runs a trial twice nor asks twice for the same slot.

The sampler and the pruner are Optuna's and stay in the shell (:mod:`kubetune.tuning`): the shell reports each
trial's per-epoch metric to the storage and hands this plan the pruner's verdicts. Pure: imports only the standard
library and kubetune.api / kubetune.core (no kopf, kubernetes, optuna, mlflow: an import-linter contract holds this).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from kubetune.api import TrainingJob
from kubetune.api.trainingjob import Objective, Tuning
from kubetune.core.actions import STOP_ANNOTATION
from kubetune.core.conditions import Condition, Phase, Reason, bounded, for_phase
from kubetune.core.gang import _cpus_per_worker, _parse_time, timestamp
from kubetune.core.stragglers import StragglerPolicy, TaskBatch, TaskState, build_policy

TrialState = Literal["RUNNING", "WAITING", "COMPLETE", "PRUNED", "FAIL"]
FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")
MAX_TOP_TRIALS = 5
MAX_PARETO = 10
# Child runs carry their study and trial number as labels, and their MLflow parent run as an annotation.
STUDY_LABEL = "kubetune.dev/study"
TRIAL_LABEL = "kubetune.dev/trial"
REPLICA_LABEL = "kubetune.dev/replica"
PARENT_RUN_ANNOTATION = "kubetune.dev/mlflow-parent-run"
# Metrics the controller measures for every trial (objectives may name them, e.g. minimise worker_seconds).
CONTROLLER_METRICS = ("duration_s", "worker_seconds", "gpu_seconds")


def trial_name(study: str, number: int, replica: int = 0) -> str:
    """The deterministic name of trial ``number``'s child run: ``<study>-t<number>`` (replicas: ``...r<replica>``)."""
    return f"{study}-t{number}" if replica == 0 else f"{study}-t{number}r{replica}"


# --- what the shell observed ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the study's storage records it."""

    number: int
    state: TrialState
    params: Mapping[str, Any]
    values: tuple[float, ...] | None = None
    last_step: int | None = None
    started: float | None = None  # unix seconds (the storage's start and completion times)
    finished: float | None = None


@dataclass(frozen=True)
class ChildRun:
    """The child TrainingJob (or local run) of one trial, as observed now."""

    name: str
    phase: str  # a TrainingJob phase, or "" before its controller wrote a status
    reason: str | None = None
    message: str = ""
    final_metrics: Mapping[str, float] = field(default_factory=dict)
    stop_requested: str | None = None  # the kubetune.dev/stop annotation, if set
    duration_s: float | None = None
    epoch: int | None = None  # the newest finished epoch, and its metrics (the trial's intermediate values)
    epoch_metrics: Mapping[str, float] = field(default_factory=dict)
    replica: int = 0  # 0 for the trial's original run, r for its replica <study>-t<number>r<r>
    started: float | None = None  # unix seconds
    finished_at: float | None = None
    progress: float | None = None  # fraction done (the slowest rank's)
    cpu_seconds: float = 0.0  # compute of the attempts already closed (status.cost)
    rate: float | None = None  # fractions per second over the last heartbeat window (the slowest rank's)

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed", "Stopped")

    @classmethod
    def from_status(cls, name: str, status: Mapping[str, Any], annotations: Mapping[str, str]) -> ChildRun:
        """Read a child TrainingJob's status (as either shell keeps it) and its stop annotation."""
        phase = str(status.get("phase", ""))
        reason = next(
            (str(c.get("reason")) for c in status.get("conditions", ()) if c.get("type") == phase and c.get("reason")),
            None,
        )
        start, end = _parse_time(status.get("startTime")), _parse_time(status.get("completionTime"))
        raw = status.get("epochMetrics")
        epoch: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        progress = str(status.get("progress", "")).rstrip("%")
        fraction, rate = status.get("progressFraction"), status.get("progressRate")
        cost = status.get("cost") if isinstance(status.get("cost"), Mapping) else {}
        cpu = (cost or {}).get("cpuSeconds") or {}
        replica = name.rsplit("r", 1)[-1] if re.search(r"-t\d+r\d+$", name) else "0"
        return cls(
            name=name,
            phase=phase,
            reason=reason,
            message=str(status.get("message", "")),
            final_metrics={k: float(v) for k, v in (status.get("finalMetrics") or {}).items()},
            stop_requested=annotations.get(STOP_ANNOTATION),
            duration_s=(end - start).total_seconds() if start and end else None,
            epoch=int(epoch["epoch"]) if isinstance(epoch.get("epoch"), int) else None,
            epoch_metrics={k: float(v) for k, v in (epoch.get("metrics") or {}).items()},
            replica=int(replica),
            started=start.timestamp() if start else None,
            finished_at=end.timestamp() if end else None,
            progress=float(fraction)
            if isinstance(fraction, int | float)
            else float(progress) / 100
            if progress.replace(".", "", 1).isdigit()
            else None,
            cpu_seconds=sum(float(v) for v in cpu.values()) if isinstance(cpu, Mapping) else 0.0,
            rate=float(rate) if isinstance(rate, int | float) and rate > 0 else None,
        )


@dataclass(frozen=True)
class StudyObserved:
    """Everything :func:`plan_study` needs: the storage's trials, the children, the pruner's verdicts."""

    trials: tuple[TrialRecord, ...]
    children: Mapping[int, ChildRun]
    prune: frozenset[int] = frozenset()  # running trials whose latest intermediate value the pruner would prune
    status: Mapping[str, Any] = field(default_factory=dict)  # the parent's last written status
    slots: int | None = None  # the shell's own cap on parallel trials (local: the machine's cores)
    replicas: Mapping[int, tuple[ChildRun, ...]] = field(default_factory=dict)  # each trial's extra copies

    def copies(self, number: int) -> tuple[ChildRun, ...]:
        """Every observed copy of a trial: its original run first, then its replicas."""
        original = self.children.get(number)
        return (*((original,) if original is not None else ()), *self.replicas.get(number, ()))


# --- what the plan asks for -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AskTrial:
    """Ask the sampler for one new trial (the shell then re-plans, and the new RUNNING trial gets its child)."""


@dataclass(frozen=True)
class StartTrial:
    """Create trial ``number``'s child run with ``params`` fixed in its spec, unless it exists."""

    number: int
    name: str
    params: Mapping[str, Any]
    replica: int = 0  # > 0: a replica (same values and seed) racing the original
    resume_from: str | None = None  # a copy that starts from this run's newest checkpoint (a move)


@dataclass(frozen=True)
class StopTrial:
    """Stop a running trial's child gracefully (annotate it ``kubetune.dev/stop=<reason>``)."""

    number: int
    name: str
    reason: Literal["Pruned", "StudyEnded", "Cancelled"]


@dataclass(frozen=True)
class TellTrial:
    """Finish trial ``number`` in the storage."""

    number: int
    state: Literal["COMPLETE", "PRUNED", "FAIL"]
    values: tuple[float, ...] | None = None
    message: str = ""


StudyAction = AskTrial | StartTrial | StopTrial | TellTrial


@dataclass(frozen=True)
class StudyEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class StudyPlan:
    actions: tuple[StudyAction, ...]
    status: Mapping[str, Any]
    events: tuple[StudyEvent, ...] = ()

    @property
    def terminal(self) -> bool:
        return self.status.get("phase") in ("Succeeded", "Failed")


# --- the plan ---------------------------------------------------------------------------------------------------------


def objective_values(tuning: Tuning, child: ChildRun, workers: int, gpus: int) -> tuple[float, ...] | str:
    """The objective values of a succeeded child, or why there are none (a missing or non-finite metric)."""
    metrics = dict(child.final_metrics)
    if child.duration_s is not None:
        metrics.setdefault("duration_s", child.duration_s)
        metrics.setdefault("worker_seconds", child.duration_s * workers)
        metrics.setdefault("gpu_seconds", child.duration_s * workers * gpus)
    values = []
    for objective in tuning.objectives:
        value = metrics.get(objective.metric)
        if value is None:
            known = ", ".join(sorted(metrics)) or "none"
            return f"the trial reported no metric {objective.metric!r} (reported: {known})"
        if not math.isfinite(value):
            return f"the trial's {objective.metric} is {value}"
        values.append(float(value))
    return tuple(values)


def _better(objective: Objective, a: float, b: float) -> bool:
    return a > b if objective.direction == "maximize" else a < b


def _dominates(objectives: Sequence[Objective], a: Sequence[float], b: Sequence[float]) -> bool:
    no_worse = all(not _better(o, y, x) for o, x, y in zip(objectives, a, b, strict=True))
    return no_worse and any(_better(o, x, y) for o, x, y in zip(objectives, a, b, strict=True))


@dataclass
class _Study:
    """The status being built."""

    phase: Phase
    conditions: tuple[Condition, ...]
    message: str
    start_time: str | None
    completion_time: str | None
    ending: str | None  # the reason the study is ending, once decided
    passthrough: dict[str, Any]
    cost: dict[str, dict[str, float]]
    actions: list[StudyAction] = field(default_factory=list)
    events: list[StudyEvent] = field(default_factory=list)

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> _Study:
        phase = Phase.of(status.get("phase"))
        return cls(
            phase=phase,
            conditions=tuple(Condition.from_dict(c) for c in status.get("conditions", ())),
            message=str(status.get("message", "")),
            start_time=status.get("startTime"),
            completion_time=status.get("completionTime"),
            ending=status.get("ending"),
            cost={
                key: {str(k): float(v) for k, v in (status.get("cost") or {}).get(key, {}).items()}
                for key in ("cpuSeconds", "wastedSeconds")
            },
            passthrough={key: status[key] for key in ("mlflow", "study") if key in status},
        )

    def transition(self, phase: Phase, reason: Reason, message: str, ts: str, generation: int) -> None:
        if self.phase != phase:
            self.events.append(StudyEvent("Warning" if phase == Phase.FAILED else "Normal", str(reason), message))
        self.phase = phase
        self.message = bounded(message)
        self.conditions = for_phase(self.conditions, phase, reason, message, ts, generation)


def plan_study(job: TrainingJob, observed: StudyObserved, now: datetime) -> StudyPlan:
    """Decide the study's next actions and its status."""
    tuning = job.spec.tuning
    if tuning is None:
        raise ValueError(f"TrainingJob {job.name} has no spec.tuning")
    draft = _Study.from_status(observed.status)
    ts = timestamp(now)
    generation = job.generation
    trials = {trial.number: trial for trial in observed.trials}
    if draft.start_time is None:
        draft.start_time = ts
    if draft.phase.terminal:
        # A finished study keeps its verdict; stragglers of it are only stopped.
        _stop_running(job, draft, trials, observed, "StudyEnded")
        return StudyPlan(tuple(draft.actions), _status(job, tuning, draft, trials), tuple(draft.events))

    # 1. A trial whose copy succeeded (the first to finish wins), or whose every copy ended, is told to the storage.
    told: dict[int, TrialState] = {}
    for number, trial in sorted(trials.items()):
        copies = observed.copies(number)
        if trial.state != "RUNNING" or not copies:
            continue
        winner = _winner(copies)
        if winner is None and not all(c.finished for c in copies):
            continue
        lead = winner or _deciding_copy(copies)
        tell = _tell(job, tuning, number, lead)
        draft.actions.append(tell)
        told[number] = tell.state
        draft.events.append(_trial_event(tell, lead))
        for copy in copies:
            if not copy.finished and not copy.stop_requested:
                draft.actions.append(StopTrial(number, copy.name, "Cancelled"))
        _account(job, draft, copies, lead if winner is not None else None, tell.state, now.timestamp())
    states = {number: told.get(number, trial.state) for number, trial in trials.items()}
    trials = {n: dataclasses.replace(t, state=states[n]) for n, t in trials.items()}
    for action in draft.actions:
        if isinstance(action, TellTrial) and action.values is not None:
            trials[action.number] = dataclasses.replace(trials[action.number], values=action.values)

    # 2. Does the study end?
    counts = _counts(trials)
    if draft.ending is None:
        draft.ending = _ending(tuning, trials, counts, draft.start_time, now)
    running = [n for n, t in sorted(trials.items()) if t.state in ("RUNNING", "WAITING")]

    if draft.ending is not None:
        # Stop what runs; a trial without a child yet is failed at once. Finish when nothing runs.
        for number in running:
            if number not in observed.children:
                draft.actions.append(TellTrial(number, "FAIL", message="the study ended before the trial started"))
                trials[number] = TrialRecord(number, "FAIL", trials[number].params)
        _stop_running(job, draft, trials, observed, "StudyEnded")
        counts = _counts(trials)
        if counts["running"] == 0:
            _finish(draft, tuning, trials, counts, ts, generation)
        else:
            draft.transition(
                Phase.RUNNING,
                Reason(draft.ending),
                f"{_ending_message(tuning, draft.ending, counts)}; stopping {counts['running']} running trial(s)",
                ts,
                generation,
            )
    else:
        # 3. Adopt or start every running trial's child; prune on the pruner's verdict.
        for number in running:
            trial = trials[number]
            child = observed.children.get(number)
            name = trial_name(job.name, number)
            if child is None:
                draft.actions.append(StartTrial(number, name, dict(trial.params)))
                draft.events.append(StudyEvent("Normal", str(Reason.TRIAL_STARTED), _describe_start(number, trial)))
            elif number in observed.prune and not child.stop_requested and not child.finished:
                draft.actions += [
                    StopTrial(number, c.name, "Pruned")
                    for c in observed.copies(number)
                    if not c.stop_requested and not c.finished
                ]
        # 4. Ask for trials for the free slots, within maxTrials.
        slots = tuning.parallel_trials if observed.slots is None else min(tuning.parallel_trials, observed.slots)
        free = max(0, slots - len(running))
        remaining = max(0, tuning.max_trials - len(trials))
        draft.actions += [AskTrial() for _ in range(min(free, remaining))]
        # 3b. Replicate stragglers (the straggler policy of spec.resilience) once no slot waits for a new trial:
        # a plan that asks is followed at once by one that sees the new trials, and the policy must see those.
        if not free or not remaining:
            _replicate(job, draft, trials, observed, now, slots)
        draft.transition(
            Phase.RUNNING,
            Reason.TRIALS_RUNNING,
            f"{counts['running'] + min(free, remaining)} trial(s) running, {_done(counts)} of {tuning.max_trials} done",
            ts,
            generation,
        )
    return StudyPlan(tuple(draft.actions), _status(job, tuning, draft, trials), tuple(draft.events))


MAX_REPLICAS = 8


def _winner(copies: Sequence[ChildRun]) -> ChildRun | None:
    """The copy that succeeded first, if any."""
    done = [c for c in copies if c.phase == "Succeeded"]
    return min(done, key=lambda c: (c.finished_at or math.inf, c.replica)) if done else None


def _deciding_copy(copies: Sequence[ChildRun]) -> ChildRun:
    """When no copy succeeded: a pruned copy, else a copy that failed on its own (not cancelled), else the first."""
    for copy in copies:
        if copy.phase == "Stopped" and (copy.reason == str(Reason.PRUNED) or copy.stop_requested == "Pruned"):
            return copy
    for copy in copies:
        if copy.stop_requested != "Cancelled":
            return copy
    return copies[0]


def _compute(job: TrainingJob, copy: ChildRun, now: float) -> float:
    """A copy's CPU-seconds: its closed ledger when finished, else its running time so far."""
    if copy.finished and copy.cpu_seconds:
        return copy.cpu_seconds
    if copy.started is None:
        return 0.0
    end = copy.finished_at if copy.finished_at is not None else now
    return max(0.0, end - copy.started) * job.spec.parallelism.workers * _cpus_per_worker(job)


def _account(
    job: TrainingJob, draft: _Study, copies: Sequence[ChildRun], winner: ChildRun | None, state: str, now: float
) -> None:
    """Add a told trial's compute to the study's cost; pruned trials and losing copies are waste."""
    spent = {copy.name: _compute(job, copy, now) for copy in copies}
    cpu, wasted = draft.cost.setdefault("cpuSeconds", {}), draft.cost.setdefault("wastedSeconds", {})
    cpu["trials"] = cpu.get("trials", 0.0) + sum(spent.values())
    if state == "PRUNED":
        wasted["pruned"] = wasted.get("pruned", 0.0) + sum(spent.values())
    elif len(copies) > 1:
        keep = winner.name if winner is not None else copies[0].name
        extra = sum(seconds for name, seconds in spent.items() if name != keep)
        wasted["replicas"] = wasted.get("replicas", 0.0) + extra


def _task_state(trial: TrialRecord, copies: Sequence[ChildRun], origin: float, now: float) -> TaskState:
    """One trial as a straggler policy sees it (times relative to the study's start)."""
    original = next((c for c in copies if c.replica == 0), None)
    start = (original.started if original and original.started else trial.started) or now
    finished_at = None
    if trial.state in FINISHED_STATES:
        ends = [c.finished_at for c in copies if c.finished_at is not None]
        finished_at = trial.finished or (min(ends) if ends else now)
    live = [c for c in copies if not c.finished and not c.stop_requested]
    progress = rate = None
    ahead = _ahead(live)
    if ahead is not None and ahead.progress is not None:
        # The heartbeats' windowed rate, unknown until a copy's second heartbeat: an average since launch would count
        # its start-up as slowness (and credit a resumed copy with the progress it inherited).
        progress, rate = ahead.progress, ahead.rate
    replicas = [c for c in copies if c.replica > 0]
    first_copy = min((c.started for c in replicas if c.started is not None), default=None)
    # The policy cancelled the original (a move, or a copy replacing it) if it was stopped as Cancelled before the
    # trial finished: the losers of a finished trial are cancelled too, but only after its winner finished.
    cancelled = (
        original is not None
        and original.stop_requested == "Cancelled"
        and (finished_at is None or (original.finished_at is not None and original.finished_at < finished_at))
    )
    return TaskState(
        start=start - origin,
        finished_at=None if finished_at is None else finished_at - origin,
        progress=progress,
        rate=rate,
        copies=max(1, len(live)) if finished_at is None else 0,
        launched=1 + max((c.replica for c in copies), default=0),
        first_copy_at=None if first_copy is None else first_copy - origin,
        copy_start=None if ahead is None or ahead.started is None else ahead.started - origin,
        cancelled=cancelled,
    )


def _ahead(live: Sequence[ChildRun]) -> ChildRun | None:
    """The most advanced of a trial's live copies (the one a straggler policy judges, and a move resumes)."""
    return max(live, key=lambda c: c.progress or 0.0, default=None)


def _fastest(live: Sequence[ChildRun]) -> ChildRun:
    """The live copy expected to finish first (the shortest ``(1 - progress) / rate``; copies whose rate is unknown
    come last, then the most advanced): what a hedged launch keeps once its copies' speeds show."""

    def time_left(copy: ChildRun) -> tuple[float, float]:
        if copy.progress is None or not copy.rate or copy.rate <= 0:
            return math.inf, -(copy.progress or 0.0)
        return (1.0 - copy.progress) / copy.rate, -copy.progress

    return min(live, key=time_left)


def _replicate(
    job: TrainingJob,
    draft: _Study,
    trials: Mapping[int, TrialRecord],
    observed: StudyObserved,
    now: datetime,
    slots: int,
) -> None:
    """Ask the straggler policy which running trials to copy (same values, same seed) and carry it into actions."""
    policy = straggler_policy(job)
    if policy is None or not trials:
        return
    assert job.spec.tuning is not None
    origin = _parse_time(draft.start_time) or now
    numbers = sorted(trials)
    tasks = [_task_state(trials[n], observed.copies(n), origin.timestamp(), now.timestamp()) for n in numbers]
    batch = TaskBatch.from_tasks(now.timestamp() - origin.timestamp(), tasks, slots=slots)
    for replicate in policy.decide(batch).for_job(0):
        number = numbers[replicate.task]
        trial, copies = trials[number], observed.copies(number)
        if trial.state != "RUNNING" or not copies:
            continue
        live = [c for c in copies if not c.finished and not c.stop_requested]
        if replicate.prune and len(live) > 1 and not replicate.kill_original:
            keep = _fastest(live)
            draft.actions += [StopTrial(number, c.name, "Cancelled") for c in live if c is not keep]
            message = f"trial {number}: kept {keep.name}, the fastest of {len(live)} racing copies"
            message += f" ({policy.describe()})"
            draft.events.append(StudyEvent("Normal", str(Reason.RACE_DECIDED), message))
            live = [keep]
        launched = 1 + max(c.replica for c in copies)
        count = min(replicate.copies, MAX_REPLICAS + 1 - launched)
        if count <= 0:
            continue
        source = _ahead(live) if replicate.resume else None
        if replicate.kill_original:
            draft.actions += [StopTrial(number, c.name, "Cancelled") for c in live]
        for replica in range(launched, launched + count):
            name = trial_name(job.name, number, replica)
            resume_from = source.name if source is not None else None
            draft.actions.append(StartTrial(number, name, dict(trial.params), replica, resume_from))
        killed = ", original cancelled" if replicate.kill_original else ""
        if source is not None:
            killed += f", resuming from {source.name}'s checkpoint"
        message = f"trial {number}: {count} replica(s) launched by {policy.describe()}{killed}"
        draft.events.append(StudyEvent("Normal", str(Reason.TRIAL_REPLICATED), message))


def straggler_policy(job: TrainingJob) -> StragglerPolicy | None:
    """The straggler policy ``spec.resilience.stragglers`` selects (None for ``none``)."""
    spec = job.spec.resilience.stragglers
    options: dict[str, Any]
    if spec.policy == "none":
        return None
    if spec.policy == "spark":
        options = {"quantile": spec.quantile, "multiplier": spec.multiplier}
    elif spec.policy == "late":
        options = {"cap": spec.max_copies_fraction}
    elif spec.policy == "singleFork":
        fork = {"forkWhenDone": spec.fork_when_done} if spec.fork_when_done is not None else {}
        if spec.fork_at_seconds is not None:
            fork = {"forkAtTime": spec.fork_at_seconds}
        options = {**fork, "replicas": spec.replicas, "original": spec.original}
    elif spec.policy == "timeout":
        options = {"afterSeconds": spec.after_seconds, "replicas": spec.replicas, "original": spec.original}
    elif spec.policy == "migrate":
        options = {
            "factor": spec.factor,
            "restartSeconds": spec.restart_seconds,
            "maxMoves": spec.max_moves,
            "hedge": spec.hedge,
        }
    else:  # adaptive forecasts the whole study: maxTrials trials, though only the ones asked so far are in a batch
        tasks = job.spec.tuning.max_trials if job.spec.tuning is not None else None
        options = {
            "maxExtraCost": spec.max_extra_cost,
            "maxCopiesFraction": spec.max_copies_fraction,
            "restartSeconds": spec.restart_seconds,  # moves are candidates: both shells resume a moved copy
            **({"tasks": tasks} if tasks else {}),
        }
    return build_policy(spec.policy, **options)


def _tell(job: TrainingJob, tuning: Tuning, number: int, child: ChildRun) -> TellTrial:
    if child.phase == "Succeeded":
        gpus = job.spec.parallelism.gpus_per_worker
        values = objective_values(tuning, child, job.spec.parallelism.workers, gpus)
        if isinstance(values, str):
            return TellTrial(number, "FAIL", message=values)
        return TellTrial(number, "COMPLETE", values)
    if child.phase == "Stopped" and (child.reason == str(Reason.PRUNED) or child.stop_requested == "Pruned"):
        return TellTrial(number, "PRUNED", message="pruned on its intermediate values")
    why = child.reason or child.phase
    return TellTrial(number, "FAIL", message=bounded(f"{why}: {child.message}" if child.message else why))


def _trial_event(tell: TellTrial, child: ChildRun) -> StudyEvent:
    if tell.state == "COMPLETE":
        shown = ", ".join(f"{v:.4g}" for v in tell.values or ())
        return StudyEvent(
            "Normal", str(Reason.TRIAL_COMPLETED), f"trial {tell.number} ({child.name}) completed: {shown}"
        )
    if tell.state == "PRUNED":
        return StudyEvent("Normal", str(Reason.TRIAL_PRUNED), f"trial {tell.number} ({child.name}) pruned")
    return StudyEvent("Warning", str(Reason.TRIAL_FAILED), bounded(f"trial {tell.number} failed: {tell.message}"))


def _describe_start(number: int, trial: TrialRecord) -> str:
    shown = ", ".join(f"{k}={_show(v)}" for k, v in sorted(trial.params.items()))
    return bounded(f"trial {number} started: {shown}")


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _stop_running(
    job: TrainingJob,
    draft: _Study,
    trials: Mapping[int, TrialRecord],
    observed: StudyObserved,
    reason: Literal["StudyEnded"],
) -> None:
    for number, trial in sorted(trials.items()):
        if trial.state not in ("RUNNING", "WAITING"):
            continue
        for copy in observed.copies(number):
            if not copy.finished and not copy.stop_requested:
                draft.actions.append(StopTrial(number, copy.name, reason))


def _counts(trials: Mapping[int, TrialRecord]) -> dict[str, int]:
    states = [t.state for t in trials.values()]
    return {
        "total": len(states),
        "running": sum(s in ("RUNNING", "WAITING") for s in states),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
    }


def _done(counts: Mapping[str, int]) -> int:
    return counts["complete"] + counts["pruned"] + counts["failed"]


def _ending(
    tuning: Tuning, trials: Mapping[int, TrialRecord], counts: Mapping[str, int], started: str | None, now: datetime
) -> str | None:
    """Why the study ends now, if it does (a Reason's value)."""
    goals = [o for o in tuning.objectives if o.goal is not None]
    if goals:
        for trial in trials.values():
            if trial.state != "COMPLETE" or trial.values is None:
                continue
            if all(o.reached(v) for o, v in zip(tuning.objectives, trial.values, strict=True) if o.goal is not None):
                return str(Reason.GOAL_REACHED)
    if tuning.max_failed_trials is not None and counts["failed"] >= tuning.max_failed_trials:
        return str(Reason.MAX_FAILED_TRIALS_REACHED)
    start = _parse_time(started)
    if (
        tuning.timeout_seconds is not None
        and start is not None
        and (now - start).total_seconds() >= tuning.timeout_seconds
    ):
        return str(Reason.TIMEOUT_REACHED)
    if _done(counts) >= tuning.max_trials:
        return str(
            Reason.MAX_FAILED_TRIALS_REACHED if counts["failed"] >= tuning.max_trials else Reason.MAX_TRIALS_REACHED
        )
    return None


def _ending_message(tuning: Tuning, ending: str, counts: Mapping[str, int]) -> str:
    if ending == Reason.GOAL_REACHED:
        goals = ", ".join(
            f"{o.metric} {'>=' if o.direction == 'maximize' else '<='} {o.goal:g}"
            for o in tuning.objectives
            if o.goal is not None
        )
        return f"a trial reached the goal ({goals})"
    if ending == Reason.MAX_FAILED_TRIALS_REACHED:
        limit = tuning.max_failed_trials if tuning.max_failed_trials is not None else tuning.max_trials
        return f"{counts['failed']} trial(s) failed, reaching the limit of {limit}"
    if ending == Reason.TIMEOUT_REACHED:
        return f"the study ran past timeoutSeconds={tuning.timeout_seconds}"
    return f"all {tuning.max_trials} trial(s) finished"


def _finish(
    draft: _Study,
    tuning: Tuning,
    trials: Mapping[int, TrialRecord],
    counts: Mapping[str, int],
    ts: str,
    generation: int,
) -> None:
    assert draft.ending is not None
    reason = Reason(draft.ending)
    summary = (
        f"{_ending_message(tuning, draft.ending, counts)}: {counts['complete']} complete, "
        f"{counts['pruned']} pruned, {counts['failed']} failed"
    )
    best = _best(tuning, trials)
    if reason == Reason.MAX_FAILED_TRIALS_REACHED or counts["complete"] == 0:
        if reason != Reason.MAX_FAILED_TRIALS_REACHED:
            summary += "; no trial completed"
        draft.transition(Phase.FAILED, reason, summary, ts, generation)
    else:
        if best is not None and not tuning.multi_objective:
            metric = tuning.objectives[0].metric
            summary += f"; best trial {best[0].number}: {metric}={best[0].values[0]:.4g}"  # type: ignore[index]
        draft.transition(Phase.SUCCEEDED, reason, summary, ts, generation)
    draft.completion_time = ts


# --- status -----------------------------------------------------------------------------------------------------------


def _completed(trials: Mapping[int, TrialRecord]) -> list[TrialRecord]:
    return [t for t in trials.values() if t.state == "COMPLETE" and t.values is not None]


def _best(tuning: Tuning, trials: Mapping[int, TrialRecord]) -> list[TrialRecord] | None:
    """Single objective: the completed trials best first; multi-objective: the Pareto front by number."""
    done = _completed(trials)
    if not done:
        return None
    if tuning.multi_objective:
        front = [
            t
            for t in done
            if not any(_dominates(tuning.objectives, o.values, t.values) for o in done if o is not t)  # type: ignore[arg-type]
        ]
        return sorted(front, key=lambda t: t.number)
    objective = tuning.objectives[0]
    sign = -1.0 if objective.direction == "maximize" else 1.0
    return sorted(done, key=lambda t: (sign * t.values[0], t.number))  # type: ignore[index]


def _summary(job: TrainingJob, trial: TrialRecord, multi: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "number": trial.number,
        "name": trial_name(job.name, trial.number),
        "params": dict(trial.params),
    }
    if trial.values is not None:
        if multi:
            out["values"] = list(trial.values)
        else:
            out["value"] = trial.values[0]
    return out


def _status(job: TrainingJob, tuning: Tuning, draft: _Study, trials: Mapping[int, TrialRecord]) -> dict[str, Any]:
    counts = _counts(trials)
    ranked = _best(tuning, trials) or []
    status: dict[str, Any] = {
        "phase": str(draft.phase),
        "observedGeneration": job.generation,
        "progress": f"{_done(counts)}/{tuning.max_trials} trials",
        "metric": "",
        "message": draft.message,
        "conditions": [c.to_dict() for c in draft.conditions],
        "trials": counts,
    }
    if ranked and tuning.multi_objective:
        status["paretoFront"] = [_summary(job, t, True) for t in ranked[:MAX_PARETO]]
        status["metric"] = f"{len(ranked)} Pareto-optimal"
    elif ranked:
        status["best"] = _summary(job, ranked[0], False)
        status["topTrials"] = [_summary(job, t, False) for t in ranked[:MAX_TOP_TRIALS]]
        status["metric"] = f"best {tuning.objectives[0].metric}={ranked[0].values[0]:.4g}"  # type: ignore[index]
    if draft.start_time:
        status["startTime"] = draft.start_time
    if draft.completion_time:
        status["completionTime"] = draft.completion_time
    if any(draft.cost.values()):
        status["cost"] = {
            key: {k: round(v, 3) for k, v in sorted(values.items())} for key, values in draft.cost.items()
        }
    if draft.ending and not draft.phase.terminal:
        status["ending"] = draft.ending  # decided once: trials cut short must not change why the study ends
    status.update(draft.passthrough)
    return status


__all__ = [
    "AskTrial",
    "ChildRun",
    "StartTrial",
    "StopTrial",
    "StudyAction",
    "StudyEvent",
    "StudyObserved",
    "StudyPlan",
    "TellTrial",
    "TrialRecord",
    "objective_values",
    "plan_study",
    "trial_name",
]
