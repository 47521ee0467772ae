"""One level-triggered pass over one TrainingJob: observe, plan, act, write status.

Decides: the order of a pass — parse the spec (a bad one fails the job with ``InvalidSpec`` instead of crashing the
operator), make sure the headless Service and the MLflow run exist, call :func:`kubetune.core.plan` on what the
indexes hold, carry out its actions through the adapter, record its Events, and patch the status only when it
changed. Nothing here depends on having seen a particular event: running it again on the same world is a no-op.
Imports no kopf (the handlers call it) and talks to the API only through the adapter it is given.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from kubetune import tracking
from kubetune.api import SpecError, TrainingJob, parse
from kubetune.core import CreateWorker, DeleteWorker, Event, Observed, Plan, WorkerObservation, plan, plan_invalid
from kubetune.operator.metrics import OperatorMetrics
from kubetune.operator.observe import observe_pod
from kubetune.operator.resources import build_pod, build_service
from kubetune.operator.settings import OperatorSettings

logger = logging.getLogger(__name__)


class Adapter(Protocol):
    def create_if_absent(self, obj: dict[str, Any], owner: Mapping[str, Any]) -> bool: ...

    def delete_pod_if_present(self, namespace: str, name: str) -> bool: ...

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None: ...

    def record_event(self, owner: Mapping[str, Any], event: Event) -> None: ...


def _mlflow(
    job: TrainingJob, status: dict[str, Any], settings: OperatorSettings, adapter: Adapter, body: Mapping[str, Any]
) -> None:
    """Create the job's MLflow run once (its id lives in the status, so a restart of the operator keeps it)."""
    if not job.spec.tracking.enabled or tracking.RunRef.from_dict(status.get("mlflow")) is not None:
        return
    uri = job.spec.tracking.tracking_uri or settings.tracking_uri
    if not uri:
        return
    try:
        status["mlflow"] = tracking.start_run(job, uri, tags={"kubetune.uid": str(job.uid)}).to_dict()
    except Exception as error:  # MLflow being down must not stop training
        adapter.record_event(body, Event("Warning", "TrackingUnavailable", f"MLflow at {uri}: {error}"[:1024]))


def _plan_valid(
    job: TrainingJob,
    workers: tuple[WorkerObservation, ...],
    status: dict[str, Any],
    has_service: bool,
    adapter: Adapter,
    settings: OperatorSettings,
    now: datetime,
    body: Mapping[str, Any],
) -> Plan:
    if status.get("phase") not in ("Succeeded", "Failed"):
        if not has_service:
            adapter.create_if_absent(build_service(job, settings), body)
        _mlflow(job, status, settings, adapter, body)
    return plan(job, Observed(workers, status), now)


def reconcile(
    body: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    has_service: bool,
    adapter: Adapter,
    settings: OperatorSettings,
    now: datetime,
    metrics: OperatorMetrics | None = None,
) -> Plan:
    """Drive one TrainingJob one step towards its plan."""
    metadata = body.get("metadata", {})
    namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
    status = dict(body.get("status") or {})
    workers = tuple(w for w in (observe_pod(pod) for pod in pods) if w is not None)
    job: TrainingJob | None
    try:
        job = parse(dict(body))
    except SpecError as error:
        decided = plan_invalid(int(metadata.get("generation") or 1), error.problems, Observed(workers, status), now)
        job = None
    else:
        decided = _plan_valid(job, workers, status, has_service, adapter, settings, now, body)
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
            )
            adapter.create_if_absent(pod, body)
        elif isinstance(action, DeleteWorker):
            adapter.delete_pod_if_present(namespace, action.name)
    for event in decided.events:
        adapter.record_event(body, event)
    if dict(decided.status) != dict(body.get("status") or {}):
        adapter.patch_status(namespace, name, decided.status)
    if metrics is not None:
        metrics.observe(
            (namespace, name),
            str(decided.status.get("phase")),
            decided.events,
            job.spec.parallelism.workers if job else 0,
        )
    if decided.terminal and ref is not None and (body.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
        _end_run(ref, dict(decided.status))
    return decided


def _end_run(ref: tracking.RunRef, status: dict[str, Any]) -> None:
    try:
        tracking.end_run(ref, status)
    except Exception as error:  # best effort: the status already says how the job ended
        logger.warning("could not end MLflow run %s: %s", ref.run_id, error)
