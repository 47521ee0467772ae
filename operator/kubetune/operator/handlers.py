"""The kopf handlers: thin registrations that keep indexes and run one reconcile loop per TrainingJob.

Decides: only wiring. Indexes hold each job's pods and services by the ``kubetune.dev/job`` label; one daemon per
TrainingJob re-plans from scratch whenever its pods or the job change and at least every ``resync_seconds``
(level-triggered); the work of a pass is :func:`kubetune.operator.reconcile.reconcile`, run in a worker thread
because the adapter's client blocks. kopf's finalizer and annotations live under ``kubetune.dev``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from kubetune.api import GROUP, PLURAL, VERSION
from kubetune.operator.adapter import KubernetesAdapter
from kubetune.operator.metrics import OperatorMetrics
from kubetune.operator.reconcile import reconcile
from kubetune.operator.settings import JOB_LABEL, OperatorSettings

logger = logging.getLogger(__name__)

Key = tuple[str, str]
_wakeups: dict[Key, asyncio.Event] = {}


def _wake(namespace: str | None, name: str | None) -> None:
    event = _wakeups.get((str(namespace), str(name)))
    if event is not None:
        event.set()


def _pod_snapshot(body: kopf.Body) -> dict[str, Any]:
    return {
        "metadata": {
            "name": body.metadata.name,
            "namespace": body.metadata.namespace,
            "labels": dict(body.metadata.labels),
            "annotations": dict(body.metadata.annotations),
            "deletionTimestamp": body.metadata.get("deletionTimestamp"),
        },
        "spec": {"nodeName": body.spec.get("nodeName")},
        "status": dict(body.status),
    }


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 10
    settings.peering.name = "kubetune"
    settings.peering.mandatory = False
    settings.posting.enabled = False  # our Events are explicit, one per transition
    settings.execution.max_workers = 32
    ours: OperatorSettings = memo.settings
    memo.setdefault("metrics", OperatorMetrics())
    memo.setdefault("adapter", KubernetesAdapter())
    if ours.metrics_port:
        memo.metrics.serve(ours.metrics_port)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster credentials, else ``$KUBECONFIG`` read now (the kubernetes client reads it only at import)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.index("pods", labels={JOB_LABEL: kopf.PRESENT}, id="pods_by_job")
def pods_by_job(
    body: kopf.Body, namespace: str | None, labels: Mapping[str, str], **_: Any
) -> dict[Key, dict[str, Any]]:
    return {(str(namespace), labels[JOB_LABEL]): _pod_snapshot(body)}


@kopf.index("services", labels={JOB_LABEL: kopf.PRESENT}, id="services_by_job")
def services_by_job(namespace: str | None, labels: Mapping[str, str], name: str, **_: Any) -> dict[Key, str]:
    return {(str(namespace), labels[JOB_LABEL]): name}


@kopf.on.event("pods", labels={JOB_LABEL: kopf.PRESENT}, id="wake-on-pod")
def wake_on_pod(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
    _wake(namespace, labels.get(JOB_LABEL))


@kopf.on.event(GROUP, VERSION, PLURAL, id="wake-on-job")
def wake_on_job(namespace: str | None, name: str, **_: Any) -> None:
    _wake(namespace, name)


@kopf.daemon(GROUP, VERSION, PLURAL, id="reconcile", cancellation_timeout=10, backoff=1.0)
async def run_job(
    body: kopf.Body, namespace: str | None, name: str, stopped: kopf.DaemonStopped, memo: Any, **kwargs: Any
) -> None:
    pods_by_job: kopf.Index[Key, dict[str, Any]] = kwargs["pods_by_job"]
    services_by_job: kopf.Index[Key, str] = kwargs["services_by_job"]
    key = (str(namespace), name)
    wakeup = _wakeups.setdefault(key, asyncio.Event())
    settings: OperatorSettings = memo.settings
    try:
        while not stopped:
            wakeup.clear()
            pods = [dict(pod) for pod in pods_by_job.get(key, [])]
            has_service = bool(list(services_by_job.get(key, [])))
            try:
                await asyncio.to_thread(
                    reconcile, dict(body), pods, has_service, memo.adapter, settings, datetime.now(UTC), memo.metrics
                )
            except Exception:
                logger.exception("reconcile of %s/%s failed; retrying", namespace, name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout=settings.resync_seconds)
    finally:
        _wakeups.pop(key, None)
        memo.metrics.forget(key)
