"""The kopf handlers: thin registrations that keep indexes and run one reconcile loop per TrainingJob.

Decides: only wiring. Indexes hold each job's pods and services by the ``kubetune.dev/job`` label; one daemon per
TrainingJob re-plans from scratch whenever its pods or the job change and at least every ``resync_seconds`` while the
job is not finished (level-triggered; a finished job with nothing left to do waits for its next change); the work of a
pass is :func:`kubetune.operator.reconcile.reconcile`, run in a worker thread because the adapter's client blocks, with
the job's :class:`~kubetune.operator.reconcile.JobMemory` (what this process's earlier passes did to it). A pass that
would make no request (:func:`~kubetune.operator.reconcile.quiet_pass`: a watch event that changes nothing the plan
acts on) is decided on the event loop instead, without the hop to a thread and back. At most ``PARALLEL_PASSES``
passes run in threads at once and each takes its snapshot of the indexes when it starts, so that the events that
arrive while a job waits for a thread or while its pass runs coalesce into one more pass; the watch event of the
job's own status patch wakes nobody (it brings nothing the memory does not hold). The index and wake-up handlers are
coroutines, so kopf runs them on its event loop instead of handing each watch event to a thread. kopf's finalizer and
annotations live under ``kubetune.dev``. There are no change handlers (``on.create``/``update``/``delete``/``resume``):
nothing reads kopf's diff base, so kopf is not made to deep-copy every watched body twice per event to build one
(:class:`EssenceFreeDiffBase`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from kubetune.api import GROUP, PLURAL, VERSION
from kubetune.core import Plan
from kubetune.core.study import STUDY_LABEL, StudyPlan
from kubetune.operator.adapter import KubernetesAdapter
from kubetune.operator.metrics import OperatorMetrics
from kubetune.operator.reconcile import JobMemory, quiet_pass, reconcile
from kubetune.operator.settings import JOB_LABEL, OperatorSettings

logger = logging.getLogger(__name__)

Key = tuple[str, str]
# Passes running at once, each in a thread of its own (they mostly wait on the API server).
PARALLEL_PASSES = 24


@dataclass
class _Loop:
    """One TrainingJob's reconcile loop: what wakes it, and what its passes remember."""

    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    memory: JobMemory = field(default_factory=JobMemory)


_loops: dict[Key, _Loop] = {}


def _wake(namespace: str | None, name: str | None) -> None:
    loop = _loops.get((str(namespace), str(name)))
    if loop is not None:
        loop.wakeup.set()


def _pod_snapshot(body: kopf.Body) -> dict[str, Any]:
    raw = dict(body)  # the watched JSON itself: kopf's views resolve their path again on every access
    metadata = raw.get("metadata") or {}
    return {
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "labels": dict(metadata.get("labels") or {}),
            "annotations": dict(metadata.get("annotations") or {}),
            "deletionTimestamp": metadata.get("deletionTimestamp"),
        },
        "spec": {"nodeName": (raw.get("spec") or {}).get("nodeName")},
        "status": dict(raw.get("status") or {}),
    }


class EssenceFreeDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation diff base, whose freshly built essence is empty.

    kopf builds the essence of every watched body on every event (a deep copy of the body, then another to clear
    its progress annotations) only to diff it with the stored one: the diff feeds change handlers, and daemons and
    timers learn only whether it is empty. Without change handlers nothing is ever stored, so the diff is never
    empty either way; an empty essence keeps that and costs nothing. Only for a registry without change handlers
    (:func:`configure` checks).
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()


def _has_change_handlers(registry: kopf.OperatorRegistry) -> bool:
    return bool(registry._changing.get_all_handlers())


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    storage = kopf.AnnotationsDiffBaseStorage
    if not _has_change_handlers(kopf.get_default_registry()):
        storage = EssenceFreeDiffBase
    settings.persistence.diffbase_storage = storage(prefix=GROUP, key="last-handled-configuration")
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
    memo.setdefault("passes", asyncio.Semaphore(PARALLEL_PASSES))
    memo.setdefault("pass_threads", ThreadPoolExecutor(PARALLEL_PASSES, thread_name_prefix="kubetune-pass"))
    if ours.metrics_port:
        memo.metrics.serve(ours.metrics_port)


@kopf.on.cleanup()
async def release(memo: kopf.Memo, **_: Any) -> None:
    threads = memo.get("pass_threads")
    if threads is not None:
        threads.shutdown(wait=False, cancel_futures=True)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster credentials, else ``$KUBECONFIG`` read now (the kubernetes client reads it only at import)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.index("pods", labels={JOB_LABEL: kopf.PRESENT}, id="pods_by_job")
async def pods_by_job(
    body: kopf.Body, namespace: str | None, labels: Mapping[str, str], **_: Any
) -> dict[Key, dict[str, Any]]:
    """A pod's snapshot in its job's index; it also wakes the job's loop. kopf stores what an index handler returns
    before any other task runs (nothing between the coroutine's return and the store suspends), so the pass this
    wakes sees the pod as the event left it, and the event needs no second handler (kopf's handling of an
    ``on.event`` handler costs more than the wake-up itself)."""
    _wake(namespace, labels[JOB_LABEL])
    return {(str(namespace), labels[JOB_LABEL]): _pod_snapshot(body)}


@kopf.index("services", labels={JOB_LABEL: kopf.PRESENT}, id="services_by_job")
async def services_by_job(namespace: str | None, labels: Mapping[str, str], name: str, **_: Any) -> dict[Key, str]:
    return {(str(namespace), labels[JOB_LABEL]): name}


@kopf.index(GROUP, VERSION, PLURAL, labels={STUDY_LABEL: kopf.PRESENT}, id="trials_by_study")
async def trials_by_study(
    body: kopf.Body, namespace: str | None, labels: Mapping[str, str], **_: Any
) -> dict[Key, dict[str, Any]]:
    return {
        (str(namespace), labels[STUDY_LABEL]): {
            "metadata": {
                "name": body.metadata.name,
                "labels": dict(body.metadata.labels),
                "annotations": dict(body.metadata.annotations),
            },
            "status": dict(body.status),
        }
    }


@kopf.on.event(GROUP, VERSION, PLURAL, labels={STUDY_LABEL: kopf.PRESENT}, id="wake-study-on-trial")
async def wake_study_on_trial(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
    _wake(namespace, labels.get(STUDY_LABEL))


def _deleted(**kwargs: Any) -> bool:
    """A deleted pod leaves its index without a call to the index handler: only its DELETED event wakes the job."""
    return bool(kwargs.get("type") == "DELETED")


@kopf.on.event("pods", labels={JOB_LABEL: kopf.PRESENT}, id="wake-on-pod", when=_deleted)
async def wake_on_pod(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
    _wake(namespace, labels.get(JOB_LABEL))


def _news(namespace: str | None, name: str, meta: Mapping[str, Any], **_: Any) -> bool:
    """False for the watch event of the job's own last status patch (nothing in it is news to its loop)."""
    loop = _loops.get((str(namespace), name))
    return loop is None or not loop.memory.is_written(meta.get("resourceVersion"))


@kopf.on.event(GROUP, VERSION, PLURAL, id="wake-on-job", when=_news)
async def wake_on_job(namespace: str | None, name: str, **_: Any) -> None:
    _wake(namespace, name)


@kopf.daemon(GROUP, VERSION, PLURAL, id="reconcile", cancellation_timeout=10, backoff=1.0)
async def run_job(
    body: kopf.Body, namespace: str | None, name: str, stopped: kopf.DaemonStopped, memo: Any, **kwargs: Any
) -> None:
    pods_by_job: kopf.Index[Key, dict[str, Any]] = kwargs["pods_by_job"]
    services_by_job: kopf.Index[Key, str] = kwargs["services_by_job"]
    trials_by_study: kopf.Index[Key, dict[str, Any]] = kwargs["trials_by_study"]
    key = (str(namespace), name)
    loop = _loops.setdefault(key, _Loop())
    settings: OperatorSettings = memo.settings
    stopping = asyncio.ensure_future(stopped.wait())
    try:
        while not stopped:
            idle = False
            try:
                loop.wakeup.clear()
                decided: Plan | StudyPlan | None = quiet_pass(
                    dict(body),
                    [dict(pod) for pod in pods_by_job.get(key, [])],
                    bool(list(services_by_job.get(key, []))),
                    settings,
                    datetime.now(UTC),
                    memo.metrics,
                    loop.memory,
                )
                if decided is None:  # it makes requests: a thread's pass
                    async with memo.passes:  # the snapshot is taken when a thread is free: never stale in a queue
                        loop.wakeup.clear()
                        pods = [dict(pod) for pod in pods_by_job.get(key, [])]
                        has_service = bool(list(services_by_job.get(key, [])))
                        trials = [dict(trial) for trial in trials_by_study.get(key, [])]
                        decided = await asyncio.get_running_loop().run_in_executor(
                            memo.pass_threads,
                            reconcile,
                            dict(body),
                            pods,
                            has_service,
                            memo.adapter,
                            settings,
                            datetime.now(UTC),
                            memo.metrics,
                            loop.memory,
                            trials,
                        )
                idle = decided.terminal and not decided.actions
            except Exception:
                logger.exception("reconcile of %s/%s failed; retrying", namespace, name)
            if loop.memory.replan:
                continue  # it moved the phase or attempt: plan again at once (its own watch event wakes nobody)
            woken = asyncio.ensure_future(loop.wakeup.wait())
            timeout = None if idle else settings.resync_seconds
            await asyncio.wait({woken, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
    finally:
        stopping.cancel()
        if _loops.get(key) is loop:
            del _loops[key]
        memo.metrics.forget(key)
