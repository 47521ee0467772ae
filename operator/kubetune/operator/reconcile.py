"""One level-triggered pass over one TrainingJob: observe, plan, act, write status.

Decides: the order of a pass — parse the spec (a bad one fails the job with ``InvalidSpec`` instead of crashing the
operator), make sure the headless Service and the MLflow run exist, call :func:`kubetune.core.plan` on what the
indexes hold, carry out its actions through the adapter, record its Events, and patch the status only when it
changed. Nothing here depends on having seen a particular event: running it again on the same world is a no-op.

A pass can run before the watches show what the previous pass did (its status patch, the pods it created). A
:class:`JobMemory` per job, kept by the caller, covers that window, as Kubernetes controllers' expectations do: the
status last written stands in for the job's own until the watch brings a newer version of the job (so the same
transition is neither planned twice, with a second Event, nor written twice), and the children created or deleted
are not created or deleted again until the indexes show them or ``EXPECTATION_SECONDS`` pass. The memory also keeps
the last parse of the job, reused while nothing that parsing reads has changed (a status patch or a new
resourceVersion alone does not re-parse the spec).
Imports no kopf (the handlers call it) and talks to the API only through the adapter it is given.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from kubetune import tracking
from kubetune.api import Problem, SpecError, TrainingJob, parse
from kubetune.core import CreateWorker, DeleteWorker, Event, Observed, Plan, WorkerObservation, plan, plan_invalid
from kubetune.core.study import StudyPlan
from kubetune.operator.metrics import OperatorMetrics
from kubetune.operator.observe import observe_pod
from kubetune.operator.resources import build_pod, build_service
from kubetune.operator.settings import OperatorSettings
from kubetune.operator.study import StudyMemory, reconcile_study

logger = logging.getLogger(__name__)

# How long a child this process created (or deleted) is taken as created (or deleted) without the index showing it.
EXPECTATION_SECONDS = 15.0
# The status fields whose change lets the next plan act without anything else changing (a new attempt's workers are
# created once the old ones are gone, a suspended or resumed job acts on it): a pass that moves them is followed by
# another at once. The others (worker summaries, metrics, progress) only describe what the watches will bring anyway.
DECISIVE_KEYS = ("phase", "attempt")
TERMINAL = ("Succeeded", "Failed", "Stopped")
# Metadata that changes with writes and that the parsed job does not use (only its copy of the manifest holds it):
# it does not call for a new parse.
_VOLATILE_METADATA = frozenset({"resourceVersion", "managedFields", "finalizers"})


class Adapter(Protocol):
    def create_if_absent(self, obj: dict[str, Any], owner: Mapping[str, Any]) -> bool: ...

    def delete_pod_if_present(self, namespace: str, name: str) -> bool: ...

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> Mapping[str, Any] | None: ...

    def record_event(self, owner: Mapping[str, Any], event: Event) -> None: ...

    def annotate_trainingjob(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None: ...

    def read_secret(self, namespace: str, name: str, key: str) -> str: ...


def _mlflow(
    job: TrainingJob, status: dict[str, Any], settings: OperatorSettings, adapter: Adapter, body: Mapping[str, Any]
) -> None:
    """Create the job's MLflow run once (its id lives in the status, so a restart of the operator keeps it)."""
    uri = job.spec.tracking.tracking_uri or settings.tracking_uri
    error = tracking.ensure_run(job, status, uri, {"kubetune.uid": str(job.uid)})
    if error:
        adapter.record_event(body, Event("Warning", "TrackingUnavailable", error))


@dataclass
class JobMemory:
    """What this process last did to one TrainingJob, for the passes that run before the watches show it."""

    status: dict[str, Any] | None = None  # the status as the last patch left it
    written_rv: str | None = None  # the job's resourceVersion after that patch (None: the adapter did not say)
    base_rv: str | None = None  # the job's resourceVersion the pass that wrote it had seen
    expected: dict[str, float] = field(default_factory=dict)  # "Kind/name" created -> monotonic deadline
    deleted: dict[str, float] = field(default_factory=dict)  # pod name deleted -> monotonic deadline
    study: StudyMemory | None = None  # a study's opened Optuna objects
    parsed: tuple[Any, TrainingJob | list[Problem]] | None = None  # (what parsing read, the job or its problems)
    replan: bool = False  # the last pass moved the job's phase or attempt: plan again at once (it may go on)

    def current_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The job's status: the one last written while the watched ``body`` is older than that write."""
        seen = dict(body.get("status") or {})
        if self.status is None:
            return seen
        rv = str((body.get("metadata") or {}).get("resourceVersion") or "")
        if rv and rv == self.base_rv:
            return dict(self.status)  # the very version the write was planned from: stale
        if rv.isdigit() and (self.written_rv or "").isdigit() and int(rv) < int(self.written_rv or 0):
            return dict(self.status)  # older than the write (the API server's versions are ordered)
        self.status = None  # the watch has caught up: from now on the body is the truth
        return seen

    def written(self, body: Mapping[str, Any], status: Mapping[str, Any], answer: Mapping[str, Any] | None) -> None:
        self.base_rv = str((body.get("metadata") or {}).get("resourceVersion") or "") or None
        if answer is not None and isinstance(answer.get("status"), Mapping):
            self.status = dict(answer["status"])
            self.written_rv = str((answer.get("metadata") or {}).get("resourceVersion") or "") or None
        else:
            self.status, self.written_rv = dict(status), None

    def parse(self, body: Mapping[str, Any]) -> TrainingJob:
        """:func:`kubetune.api.parse` of the job, again only when its input changed; raises its SpecError."""
        metadata = body.get("metadata") or {}
        key = (
            body.get("apiVersion"),
            body.get("kind"),
            body.get("spec"),
            {k: v for k, v in metadata.items() if k not in _VOLATILE_METADATA},
        )
        if self.parsed is None or self.parsed[0] != key:
            try:
                self.parsed = (copy.deepcopy(key), parse(dict(body)))
            except SpecError as error:
                self.parsed = (copy.deepcopy(key), error.problems)
        outcome = self.parsed[1]
        if isinstance(outcome, list):
            raise SpecError(outcome)
        return outcome

    def is_written(self, rv: str | None) -> bool:
        """Whether a job version is the one this process's last status patch produced (its watch event brings
        nothing new)."""
        return rv is not None and rv == self.written_rv

    def expect(self, table: dict[str, float], key: str) -> None:
        table[key] = time.monotonic() + EXPECTATION_SECONDS

    def pending(self, table: dict[str, float], key: str) -> bool:
        deadline = table.get(key)
        if deadline is None:
            return False
        if deadline < time.monotonic():
            del table[key]
            return False
        return True

    def observed(self, pods: Iterable[str], has_service: bool, service: str) -> None:
        """What the indexes show now satisfies the expectations about it."""
        present = set(pods)
        for name in present:
            self.expected.pop(f"Pod/{name}", None)
        for name in [n for n in self.deleted if n not in present]:  # gone: nothing left to delete
            del self.deleted[name]
        if has_service:
            self.expected.pop(f"Service/{service}", None)


def _changes(current: Mapping[str, Any], patch: Mapping[str, Any]) -> bool:
    """Whether a JSON merge patch would change ``current``."""
    for key, value in patch.items():
        if value is None:
            if key in current:
                return True
        elif isinstance(value, Mapping) and isinstance(current.get(key), Mapping):
            if _changes(current[key], value):
                return True
        elif key not in current or current[key] != value:
            return True
    return False


def _plan_valid(
    job: TrainingJob,
    workers: tuple[WorkerObservation, ...],
    status: dict[str, Any],
    has_service: bool,
    adapter: Adapter,
    settings: OperatorSettings,
    now: datetime,
    body: Mapping[str, Any],
    memory: JobMemory,
) -> Plan:
    if status.get("phase") not in TERMINAL:
        key = f"Service/{job.name}"
        if not has_service and not memory.pending(memory.expected, key):
            adapter.create_if_absent(build_service(job, settings), body)
            memory.expect(memory.expected, key)
        _mlflow(job, status, settings, adapter, body)
    return plan(job, Observed(workers, status, settings.prices), now)


def _observe(
    pods: Iterable[Mapping[str, Any]], has_service: bool, name: str, memory: JobMemory
) -> tuple[WorkerObservation, ...]:
    """The workers the indexed pods stand for (and what they show of the memory's expectations)."""
    workers = tuple(w for w in (observe_pod(pod) for pod in pods) if w is not None)
    memory.observed((w.name for w in workers), has_service, name)
    return workers


def _parse(
    body: Mapping[str, Any],
    workers: tuple[WorkerObservation, ...],
    status: dict[str, Any],
    now: datetime,
    memory: JobMemory,
) -> tuple[TrainingJob | None, Plan | None]:
    """The job parsed from ``body`` (and no plan yet), or no job and the plan of an invalid spec (InvalidSpec)."""
    try:
        return memory.parse(body), None
    except SpecError as error:
        generation = int(body.get("metadata", {}).get("generation") or 1)
        return None, plan_invalid(generation, error.problems, Observed(workers, status), now)


def _requests(
    job: TrainingJob, status: Mapping[str, Any], has_service: bool, settings: OperatorSettings, memory: JobMemory
) -> bool:
    """Whether :func:`_plan_valid` would make a request before planning: create the Service, start the MLflow run
    (the conditions of :func:`kubetune.tracking.ensure_run`)."""
    if status.get("phase") in TERMINAL:
        return False
    if not has_service and not memory.pending(memory.expected, f"Service/{job.name}"):
        return True
    uri = job.spec.tracking.tracking_uri or settings.tracking_uri
    return bool(job.spec.tracking.enabled and uri and tracking.RunRef.from_dict(status.get("mlflow")) is None)


def _acts(action: object, job: TrainingJob | None, memory: JobMemory) -> bool:
    """Whether :func:`reconcile` would carry ``action`` out now (not already done by an earlier pass)."""
    if isinstance(action, CreateWorker):
        return job is not None and not memory.pending(memory.expected, f"Pod/{action.name}")
    if isinstance(action, DeleteWorker):
        return not memory.pending(memory.deleted, action.name)
    return True


def quiet_pass(
    body: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    has_service: bool,
    settings: OperatorSettings,
    now: datetime,
    metrics: OperatorMetrics | None,
    memory: JobMemory,
) -> Plan | None:
    """The pass of :func:`reconcile` over the same world when it would make no request at all — nothing to create
    or delete, no Event, no status change — done here without an adapter (cheap enough for the caller's event
    loop); None when it would make one (then run :func:`reconcile`) or the job is a study."""
    if (body.get("spec") or {}).get("tuning") is not None:
        return None
    metadata = body.get("metadata", {})
    namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
    status = memory.current_status(body)
    previous = dict(status)
    workers = _observe(pods, has_service, name, memory)
    job, decided = _parse(body, workers, status, now, memory)
    if job is not None:
        if _requests(job, status, has_service, settings, memory):
            return None
        decided = plan(job, Observed(workers, status, settings.prices), now)
    assert decided is not None
    if decided.events or _changes(previous, decided.status) or any(_acts(a, job, memory) for a in decided.actions):
        return None
    memory.replan = False
    if metrics is not None:
        metrics.observe(
            (namespace, name), str(decided.status.get("phase")), (), job.spec.parallelism.workers if job else 0
        )
    return decided


def reconcile(
    body: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    has_service: bool,
    adapter: Adapter,
    settings: OperatorSettings,
    now: datetime,
    metrics: OperatorMetrics | None = None,
    memory: JobMemory | None = None,
    children: Iterable[Mapping[str, Any]] = (),
) -> Plan | StudyPlan:
    """Drive one TrainingJob one step towards its plan (``memory``: what this process's earlier passes did to it).

    A study (``spec.tuning``) is driven by :func:`kubetune.operator.study.reconcile_study` over its ``children``.
    """
    memory = memory if memory is not None else JobMemory()
    metadata = body.get("metadata", {})
    namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
    status = memory.current_status(body)
    previous = dict(status)
    if (body.get("spec") or {}).get("tuning") is not None:
        study = _study_pass(body, status, children, adapter, settings, now, memory)
        if study is not None:
            if _changes(previous, study.status):
                memory.written(body, study.status, adapter.patch_status(namespace, name, study.status))
                memory.replan = any(previous.get(key) != study.status.get(key) for key in DECISIVE_KEYS)
            else:
                memory.replan = False
            if metrics is not None:
                metrics.observe((namespace, name), str(study.status.get("phase")), (), 0)
            return study
    workers = _observe(pods, has_service, name, memory)
    job, decided = _parse(body, workers, status, now, memory)
    if job is not None:
        decided = _plan_valid(job, workers, status, has_service, adapter, settings, now, body, memory)
    assert decided is not None
    ref = tracking.RunRef.from_dict(decided.status.get("mlflow"))
    for action in decided.actions:
        if isinstance(action, CreateWorker) and job is not None:
            pod = build_pod(
                job,
                action.rank,
                action.attempt,
                settings,
                run_id=ref.run_id if ref else None,
                tracking_uri=ref.tracking_uri if ref else None,
                capacity=action.placement,
            )
            key = f"Pod/{action.name}"
            if not memory.pending(memory.expected, key):  # else created by an earlier pass: the index lags
                adapter.create_if_absent(pod, body)
                memory.expect(memory.expected, key)
        elif isinstance(action, DeleteWorker) and not memory.pending(memory.deleted, action.name):
            adapter.delete_pod_if_present(namespace, action.name)
            memory.expect(memory.deleted, action.name)
    for event in decided.events:
        adapter.record_event(body, event)
    memory.replan = False
    if _changes(previous, decided.status):
        memory.written(body, decided.status, adapter.patch_status(namespace, name, decided.status))
        memory.replan = any(previous.get(key) != decided.status.get(key) for key in DECISIVE_KEYS)
    if metrics is not None:
        metrics.observe(
            (namespace, name),
            str(decided.status.get("phase")),
            decided.events,
            job.spec.parallelism.workers if job else 0,
        )
    if decided.terminal and ref is not None and previous.get("phase") not in TERMINAL:
        _end_run(ref, dict(decided.status))
    return decided


def _study_pass(
    body: Mapping[str, Any],
    status: dict[str, Any],
    children: Iterable[Mapping[str, Any]],
    adapter: Adapter,
    settings: OperatorSettings,
    now: datetime,
    memory: JobMemory,
) -> StudyPlan | None:
    """A study's pass; None when the spec is invalid (the gang path then fails it with InvalidSpec)."""
    try:
        job = memory.parse(body)
    except SpecError:
        return None
    if status.get("phase") in ("Succeeded", "Failed") and memory.study is None:
        return StudyPlan((), status)  # a finished study before this process: nothing to open or do
    if memory.study is None:
        memory.study = StudyMemory()
    try:
        return reconcile_study(job, body, status, children, adapter, settings, now, memory.study)
    except ValueError as error:  # bad sampler/pruner options, an unusable storage: the study cannot run
        decided = plan_invalid(job.generation, [Problem("spec.tuning", str(error))], Observed((), status), now)
        memory.study = None
        return StudyPlan((), decided.status, ())


def _end_run(ref: tracking.RunRef, status: dict[str, Any]) -> None:
    try:
        tracking.end_run(ref, status)
    except Exception as error:  # best effort: the status already says how the job ended
        logger.warning("could not end MLflow run %s: %s", ref.run_id, error)
