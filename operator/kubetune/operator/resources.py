"""The Kubernetes objects of a TrainingJob: one headless Service and one Pod per worker (pure builders).

Decides: everything a worker pod carries — image and command, the trainer contract's environment
(``MASTER_ADDR=<rank-0 pod>.<service>``), GPU resources, placement (nodeSelector, tolerations, affinity),
``restartPolicy: Never`` (the operator owns restarts), a grace period long enough for a SIGTERM checkpoint, the
checkpoint volume, a locked-down security context with writable scratch, labels, and Kueue pod-group labels.
Owner references are added by the caller (``kopf.adopt``). Pure: no I/O, no kopf or kubernetes imports.
"""

from __future__ import annotations

import copy
from typing import Any

from kubetune.api import TrainingJob
from kubetune.core import worker_name
from kubetune.core.capacity import CapacityPlacement
from kubetune.core.workerenv import Placement, cpu_threads, worker_env
from kubetune.operator.settings import (
    ATTEMPT_LABEL,
    CAPACITY_LABEL,
    JOB_LABEL,
    MANAGED_BY,
    RANK_LABEL,
    OperatorSettings,
)

TRAINER_COMMAND = ["python", "-m", "kubetune_trainer"]
RUN_AS_USER = 65532


def service_name(job: TrainingJob) -> str:
    """The headless Service that gives every worker a stable DNS name: ``<pod>.<service>``."""
    return job.name


def job_labels(job: TrainingJob) -> dict[str, str]:
    return {JOB_LABEL: job.name, MANAGED_BY[0]: MANAGED_BY[1]}


def build_service(job: TrainingJob, settings: OperatorSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service_name(job), "namespace": job.namespace, "labels": job_labels(job)},
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_LABEL: job.name},
            # Workers must resolve each other before they are Ready (rendezvous happens at start-up).
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": settings.master_port, "targetPort": settings.master_port}],
        },
    }


def _resources(job: TrainingJob) -> dict[str, dict[str, Any]]:
    out = {kind: dict(values) for kind, values in job.spec.resources.items()}
    gpus = job.spec.parallelism.gpus_per_worker
    if gpus:
        out.setdefault("limits", {})["nvidia.com/gpu"] = gpus
        out.setdefault("requests", {})["nvidia.com/gpu"] = gpus
    return out


def _volumes(job: TrainingJob) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The checkpoint volume (a PVC: each TrainingJob in its own folder of it, ``subPath`` its name, so that a study's
    trials sharing one claim never read each other's checkpoints; else an emptyDir), the source copy's folder read-only
    when the job resumes from another one (``checkpoint.resumeFrom``, only with a PVC), scratch, and shared memory."""
    claim = job.spec.checkpoint.persistent_volume_claim
    checkpoints: dict[str, Any] = (
        {"name": "checkpoints", "persistentVolumeClaim": {"claimName": claim}}
        if claim
        else {"name": "checkpoints", "emptyDir": {}}
    )
    volumes = [checkpoints, {"name": "scratch", "emptyDir": {}}]
    own: dict[str, Any] = {"name": "checkpoints", "mountPath": job.spec.checkpoint.path}
    if claim:
        own["subPath"] = job.name
    mounts = [own, {"name": "scratch", "mountPath": "/tmp"}]
    if resume_dir(job):
        source = job.spec.checkpoint.resume_from
        mounts.append({"name": "checkpoints", "mountPath": RESUME_PATH, "subPath": source, "readOnly": True})
    if job.spec.parallelism.gpus_per_worker:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    return volumes, mounts


def _place(spec: dict[str, Any], capacity: CapacityPlacement) -> None:
    """Add the capacity's node selector, tolerations and required node-affinity terms to a pod spec."""
    if capacity.node_selector:
        spec["nodeSelector"] = {**spec.get("nodeSelector", {}), **capacity.node_selector}
    if capacity.tolerations:
        spec["tolerations"] = [*spec.get("tolerations", []), *(dict(t) for t in capacity.tolerations)]
    if capacity.node_expressions:
        affinity = spec.setdefault("affinity", {})
        required = affinity.setdefault("nodeAffinity", {}).setdefault(
            "requiredDuringSchedulingIgnoredDuringExecution", {"nodeSelectorTerms": [{}]}
        )
        terms = required.setdefault("nodeSelectorTerms", [{}]) or [{}]
        required["nodeSelectorTerms"] = terms
        for term in terms:  # terms are ORed: each must also hold the capacity's expressions
            term["matchExpressions"] = [
                *term.get("matchExpressions", []),
                *(dict(e) for e in capacity.node_expressions),
            ]


RESUME_PATH = "/var/lib/kubetune/resume-from"


def resume_dir(job: TrainingJob) -> str | None:
    """Where a worker finds the checkpoints it resumes from (``checkpoint.resumeFrom``): the source job's folder of
    the same PVC; None without a PVC (an emptyDir died with the source's pods: the job starts over)."""
    if job.spec.checkpoint.resume_from and job.spec.checkpoint.persistent_volume_claim:
        return RESUME_PATH
    return None


def build_pod(
    job: TrainingJob,
    rank: int,
    attempt: int,
    settings: OperatorSettings,
    run_id: str | None = None,
    tracking_uri: str | None = None,
    capacity: CapacityPlacement | None = None,
) -> dict[str, Any]:
    """The Pod of worker ``rank`` in gang ``attempt`` (on ``capacity``'s nodes when the plan chose them)."""
    name = worker_name(job.name, rank, attempt)
    master = f"{worker_name(job.name, 0, attempt)}.{service_name(job)}"
    placement = Placement(
        master_addr=master,
        master_port=settings.master_port,
        checkpoint_dir=job.spec.checkpoint.path,
        resume_dir=resume_dir(job),
        progress="k8s:",
        tracking_uri=tracking_uri,
        run_id=run_id,
        threads=cpu_threads(job),
    )
    env = worker_env(job, rank, attempt, placement)
    env["KUBETUNE_PROGRESS_INTERVAL"] = str(settings.progress_interval_seconds)
    env_list: list[dict[str, Any]] = [{"name": key, "value": value} for key, value in env.items()]
    env_list += [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    trainer = job.spec.trainer
    volumes, mounts = _volumes(job)
    labels = {**job_labels(job), RANK_LABEL: str(rank), ATTEMPT_LABEL: str(attempt)}
    annotations: dict[str, str] = {}
    if job.spec.queue_name:
        labels["kueue.x-k8s.io/queue-name"] = job.spec.queue_name
        labels["kueue.x-k8s.io/pod-group-name"] = f"{job.name}-a{attempt}"
        annotations["kueue.x-k8s.io/pod-group-total-count"] = str(job.spec.parallelism.workers)
    container: dict[str, Any] = {
        "name": "trainer",
        "image": job.spec.worker_image,
        "command": list(trainer.command) if trainer.command else list(TRAINER_COMMAND),
        "env": env_list,
        "ports": [{"name": "rendezvous", "containerPort": settings.master_port}],
        "resources": _resources(job),
        "volumeMounts": mounts,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if trainer.args:
        container["args"] = list(trainer.args)
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "hostname": name,
        "subdomain": service_name(job),
        "serviceAccountName": settings.trainer_service_account,
        "terminationGracePeriodSeconds": settings.termination_grace_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if job.spec.node_selector:
        spec["nodeSelector"] = dict(job.spec.node_selector)
    if job.spec.tolerations:
        spec["tolerations"] = [
            {
                key: value
                for key, value in (
                    ("key", t.key),
                    ("operator", t.operator),
                    ("value", t.value),
                    ("effect", t.effect),
                    ("tolerationSeconds", t.toleration_seconds),
                )
                if value is not None
            }
            for t in job.spec.tolerations
        ]
    if job.spec.affinity:
        spec["affinity"] = copy.deepcopy(dict(job.spec.affinity))
    if capacity is not None:
        _place(spec, capacity)
        labels[CAPACITY_LABEL] = capacity.capacity
    metadata: dict[str, Any] = {"name": name, "namespace": job.namespace, "labels": labels}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
