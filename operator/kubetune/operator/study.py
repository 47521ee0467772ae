"""One level-triggered pass over a study (a TrainingJob with ``spec.tuning``): observe, plan, act, write status.

Decides: the order of a study's pass in the cluster — resolve the study's storage (the spec's URL, a Secret, the
operator's ``--study-storage``, else a journal file under the operator's study directory), open the study once per
process (kept in the :class:`StudyMemory`), read the child TrainingJobs from the index into the core's vocabulary,
call :func:`kubetune.core.study.plan_study`, and carry out its actions: ``AskTrial`` through Optuna, ``StartTrial``
as a child TrainingJob owned by the study (create-if-absent; deleting the study garbage-collects its trials),
``StopTrial`` as the ``kubetune.dev/stop`` annotation on the child (its own pass stops its pods gracefully),
``TellTrial`` through Optuna. The storage is the source of truth: a restarted operator adopts the children that
exist and never asks twice for a slot. At the end it logs the study into its MLflow parent run.

Imports no kopf (the handlers call it); talks to the API only through the adapter it is given; optuna through
:mod:`kubetune.tuning`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from kubetune import tracking
from kubetune.api import SpecError, TrainingJob, parse
from kubetune.core import STOP_ANNOTATION, Event
from kubetune.core.study import (
    REPLICA_LABEL,
    TRIAL_LABEL,
    AskTrial,
    ChildRun,
    StartTrial,
    StopTrial,
    StudyPlan,
    TellTrial,
    plan_study,
)
from kubetune.operator.settings import OperatorSettings
from kubetune.tuning.controller import StudyController, study_name
from kubetune.tuning.space import child_manifest
from kubetune.tuning.storage import journal_url

logger = logging.getLogger(__name__)
MAX_ASKS_PER_PASS = 64


class StudyAdapter(Protocol):
    def create_if_absent(self, obj: dict[str, Any], owner: Mapping[str, Any]) -> bool: ...

    def annotate_trainingjob(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None: ...

    def read_secret(self, namespace: str, name: str, key: str) -> str: ...

    def record_event(self, owner: Mapping[str, Any], event: Event) -> None: ...


@dataclass
class StudyMemory:
    """What this process keeps of one study between passes: its opened Optuna objects and the invalid trials."""

    controller: StudyController | None = None
    invalid: dict[int, ChildRun] = field(default_factory=dict)
    logged: bool = False


def storage_url(job: TrainingJob, settings: OperatorSettings, adapter: StudyAdapter) -> str:
    """Where the study lives: the spec's URL, its Secret, the operator's default, else a journal file."""
    assert job.spec.tuning is not None
    storage = job.spec.tuning.storage
    if storage.url:
        return storage.url
    if storage.secret_ref is not None:
        return adapter.read_secret(job.namespace, storage.secret_ref.name, storage.secret_ref.key)
    if settings.study_storage:
        return settings.study_storage
    return journal_url(Path(settings.study_dir) / f"{study_name(job)}.journal")


def child_runs(
    children: Iterable[Mapping[str, Any]],
) -> tuple[dict[int, ChildRun], dict[int, tuple[ChildRun, ...]]]:
    """The study's child TrainingJobs (from the index) as each trial's original run and its replicas."""
    originals: dict[int, ChildRun] = {}
    replicas: dict[int, list[ChildRun]] = {}
    for child in children:
        metadata = child.get("metadata") or {}
        labels = metadata.get("labels") or {}
        try:
            number = int(labels[TRIAL_LABEL])
        except (KeyError, ValueError):
            continue
        run = ChildRun.from_status(
            str(metadata.get("name")), child.get("status") or {}, metadata.get("annotations") or {}
        )
        replica = int(labels.get(REPLICA_LABEL, "0") or 0)
        if replica == 0:
            originals[number] = run
        else:
            replicas.setdefault(number, []).append(replace(run, replica=replica))
    return originals, {n: tuple(sorted(r, key=lambda c: c.replica)) for n, r in replicas.items()}


def _advance(copy: ChildRun) -> float:
    return copy.epoch if copy.epoch is not None else -1.0


def reconcile_study(
    job: TrainingJob,
    body: Mapping[str, Any],
    status: dict[str, Any],
    children: Iterable[Mapping[str, Any]],
    adapter: StudyAdapter,
    settings: OperatorSettings,
    now: datetime,
    memory: StudyMemory,
) -> StudyPlan:
    """Plan the study once and carry the plan out; returns the plan (its status is the one to write)."""
    if memory.controller is None:
        url = storage_url(job, settings, adapter)
        memory.controller = StudyController(job, url)
    controller = memory.controller
    status = {**status, "study": {"name": controller.name, "storage": controller.storage_shown}}
    _parent_run(job, status, settings, adapter, body)
    originals, replicas = child_runs(children)
    originals = {**memory.invalid, **originals}
    leads = {
        n: max((c for c in (child, *replicas.get(n, ())) if not c.finished), key=_advance, default=child)
        for n, child in originals.items()
    }
    decided: StudyPlan | None = None
    for _ in range(MAX_ASKS_PER_PASS):
        observed = replace(controller.observe(leads, status), children=originals, replicas=replicas)
        decided = plan_study(job, observed, now)
        asks = [a for a in decided.actions if isinstance(a, AskTrial)]
        if not asks:
            break
        for _ask in asks:
            controller.ask()  # then plan again: the new RUNNING trials get their children by the restart rule
    assert decided is not None
    ref = tracking.RunRef.from_dict(status.get("mlflow"))
    for action in decided.actions:
        if isinstance(action, StartTrial):
            _start(job, action, body, adapter, controller, memory, ref)
        elif isinstance(action, StopTrial):
            adapter.annotate_trainingjob(job.namespace, action.name, {STOP_ANNOTATION: action.reason})
        elif isinstance(action, TellTrial):
            controller.tell(action)
            memory.invalid.pop(action.number, None)
    for event in decided.events:
        adapter.record_event(body, Event(event.type, event.reason, event.message))
    decided = replace(decided, status={**decided.status, "study": status["study"], **_kept(status)})
    if decided.terminal and not memory.logged:
        _finish(job, decided, controller)
        memory.logged = True
    return decided


def _kept(status: Mapping[str, Any]) -> dict[str, Any]:
    return {"mlflow": status["mlflow"]} if "mlflow" in status else {}


def _start(
    job: TrainingJob,
    action: StartTrial,
    body: Mapping[str, Any],
    adapter: StudyAdapter,
    controller: StudyController,
    memory: StudyMemory,
    ref: tracking.RunRef | None,
) -> None:
    manifest = child_manifest(
        job,
        action.number,
        action.params,
        parent_run_id=ref.run_id if ref else None,
        replica=action.replica,
        resume_from=action.resume_from,
    )
    try:
        parse(manifest)
    except SpecError as error:  # the API server would refuse it (CEL): the trial fails, not the study
        memory.invalid[action.number] = ChildRun(action.name, "Failed", "InvalidSpec", f"invalid trial: {error}")
        return
    if action.replica == 0:
        controller.set_child(action.number, action.name)
    adapter.create_if_absent(manifest, body)


def _parent_run(
    job: TrainingJob, status: dict[str, Any], settings: OperatorSettings, adapter: StudyAdapter, body: Mapping[str, Any]
) -> None:
    """The study's MLflow parent run, created once (its id lives in the status)."""
    uri = job.spec.tracking.tracking_uri or settings.tracking_uri
    error = tracking.ensure_run(job, status, uri, {"kubetune.uid": str(job.uid)})
    if error:
        adapter.record_event(body, Event("Warning", "TrackingUnavailable", error))


def _finish(job: TrainingJob, decided: StudyPlan, controller: StudyController) -> None:
    ref = tracking.RunRef.from_dict(decided.status.get("mlflow"))
    if ref is None:
        return
    from kubetune.tuning.report import log_study

    try:
        log_study(ref, job, controller, decided.status)
        tracking.end_run(ref, dict(decided.status))
    except Exception as error:  # best effort: the status already holds the result
        logger.warning("could not log study %s to MLflow: %s", job.name, error)
