"""What a worker pod and the job's service carry, and how pods are read back (pure builders and readers)."""

from __future__ import annotations

import json
from typing import Any

from kubetune.api import parse
from kubetune.operator.observe import observe_pod
from kubetune.operator.resources import build_pod, build_service
from kubetune.operator.settings import OperatorSettings

SETTINGS = OperatorSettings()


def job(**spec: Any) -> Any:
    return parse(
        {
            "apiVersion": "kubetune.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": "mnist", "namespace": "team-a", "generation": 1},
            "spec": {"trainer": {"model": {"family": "cnn"}}, "parallelism": {"workers": 2}, **spec},
        }
    )


def env_of(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["spec"]["containers"][0]["env"]}


def test_worker_pod_has_the_trainer_contract_and_stable_dns() -> None:
    pod = build_pod(job(), 1, 3, SETTINGS, run_id="r1", tracking_uri="http://mlflow:5000")
    assert pod["metadata"]["name"] == "mnist-w1-a3"
    assert pod["metadata"]["labels"] == {
        "kubetune.dev/job": "mnist",
        "app.kubernetes.io/managed-by": "kubetune",
        "kubetune.dev/rank": "1",
        "kubetune.dev/attempt": "3",
    }
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["hostname"] == "mnist-w1-a3" and spec["subdomain"] == "mnist"
    assert spec["terminationGracePeriodSeconds"] >= 60
    env = env_of(pod)
    assert env["MASTER_ADDR"] == "mnist-w0-a3.mnist" and env["PET_MASTER_ADDR"] == "mnist-w0-a3.mnist"
    assert env["MASTER_PORT"] == "29500" and env["RANK"] == "1" and env["WORLD_SIZE"] == "2"
    assert env["KUBETUNE_MODEL_FAMILY"] == "cnn" and env["KUBETUNE_ATTEMPT"] == "3"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000" and env["KUBETUNE_MLFLOW_RUN_ID"] == "r1"
    assert env["KUBETUNE_PROGRESS"] == "k8s:"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    container = spec["containers"][0]
    assert container["command"] == ["python", "-m", "kubetune_trainer"]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/var/lib/kubetune/checkpoints": "checkpoints", "/tmp": "scratch"}


def test_gpus_placement_pvc_and_kueue() -> None:
    the_job = job(
        parallelism={"workers": 2, "gpusPerWorker": 1},
        resources={"requests": {"cpu": "4"}, "limits": {"memory": "16Gi"}},
        nodeSelector={"cloud.google.com/gke-spot": "true"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        checkpoint={"persistentVolumeClaim": "ckpt"},
        queueName="gpu-queue",
    )
    pod = build_pod(the_job, 0, 0, SETTINGS)
    container = pod["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "4", "nvidia.com/gpu": 1},
        "limits": {"memory": "16Gi", "nvidia.com/gpu": 1},
    }
    assert env_of(pod)["KUBETUNE_BACKEND"] == "nccl" and env_of(pod)["KUBETUNE_DEVICE"] == "cuda"
    assert pod["spec"]["nodeSelector"] == {"cloud.google.com/gke-spot": "true"}
    assert pod["spec"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["checkpoints"]["persistentVolumeClaim"] == {"claimName": "ckpt"}
    # Each TrainingJob in its own folder of the claim: a study's trials sharing it never read each other's.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/var/lib/kubetune/checkpoints"] == {
        "name": "checkpoints",
        "mountPath": "/var/lib/kubetune/checkpoints",
        "subPath": "mnist",
    }
    assert "KUBETUNE_RESUME_FROM" not in env_of(pod)
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory"}
    assert pod["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert pod["metadata"]["labels"]["kueue.x-k8s.io/pod-group-name"] == "mnist-a0"
    assert pod["metadata"]["annotations"]["kueue.x-k8s.io/pod-group-total-count"] == "2"


def test_bring_your_own_trainer_keeps_command_image_and_env() -> None:
    the_job = job(
        trainer={
            "image": "me/train:1",
            "command": ["torchrun"],
            "args": ["train.py"],
            "env": [{"name": "FOO", "value": "bar"}],
        }
    )
    container = build_pod(the_job, 0, 0, SETTINGS)["spec"]["containers"][0]
    assert container["image"] == "me/train:1"
    assert container["command"] == ["torchrun"] and container["args"] == ["train.py"]
    assert {"name": "FOO", "value": "bar"} in container["env"]


def test_headless_service_selects_the_job_and_publishes_not_ready_addresses() -> None:
    service = build_service(job(), SETTINGS)
    assert service["metadata"]["name"] == "mnist"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"kubetune.dev/job": "mnist"}
    assert service["spec"]["publishNotReadyAddresses"] is True


def pod(phase: str = "Running", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {
            "name": "mnist-w1-a3",
            "labels": {"kubetune.dev/rank": "1", "kubetune.dev/attempt": "3"},
            "annotations": {},
        },
        "spec": {"nodeName": "spot-1"},
        "status": {"phase": phase},
    }
    for key, value in extra.items():
        body[key].update(value) if isinstance(value, dict) else body.__setitem__(key, value)
    return body


def test_observe_reads_heartbeat_annotation_and_termination_message() -> None:
    beat = {"kind": "heartbeat", "step": 40, "total_steps": 100, "time": 1.0, "metrics": {"train_loss": 0.3}}
    running = observe_pod(pod(metadata={"annotations": {"kubetune.dev/progress": json.dumps(beat)}}))
    assert running is not None and running.heartbeat is not None
    assert (running.rank, running.attempt, running.phase, running.node) == (1, 3, "Running", "spot-1")
    assert running.heartbeat.step == 40 and running.heartbeat.metrics == {"train_loss": 0.3}
    message = json.dumps({"outcome": "preempted", "step": 40, "checkpoint_step": 40})
    ended = observe_pod(
        pod(
            "Failed",
            status={
                "containerStatuses": [
                    {"state": {"terminated": {"exitCode": 143, "reason": "Error", "message": message}}}
                ]
            },
        )
    )
    assert ended is not None and ended.result is not None
    assert ended.exit_code == 143 and ended.result.outcome == "preempted" and ended.result.checkpoint_step == 40


def test_observe_reads_disruption_and_deletion() -> None:
    conditions = [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]
    seen = observe_pod(pod(status={"conditions": conditions}, metadata={"deletionTimestamp": "2026-01-01T00:00:00Z"}))
    assert seen is not None and seen.disruption == "PreemptionByScheduler" and seen.terminating and not seen.live


def test_observe_ignores_pods_without_worker_labels_and_bad_annotations() -> None:
    assert observe_pod({"metadata": {"name": "x", "labels": {}}}) is None
    seen = observe_pod(pod(metadata={"annotations": {"kubetune.dev/progress": "{not json"}}))
    assert seen is not None and seen.heartbeat is None


def test_prometheus_endpoint_serves_the_operator_metrics() -> None:
    import socket
    import urllib.request

    from kubetune.core import Event
    from kubetune.operator.metrics import OperatorMetrics

    metrics = OperatorMetrics()
    metrics.observe(("ns", "a"), "Running", [Event("Normal", "WorkersCreated", "")], 2)
    metrics.observe(("ns", "a"), "Restarting", [Event("Warning", "WorkerPreempted", "")], 2)
    metrics.observe(("ns", "b"), "Failed", [Event("Warning", "BackoffLimitExceeded", "")], 1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    metrics.serve(port)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "kubetune_trainingjobs_created_total 1.0" in text
    assert "kubetune_trainingjobs_failed_total 1.0" in text
    assert "kubetune_trainingjobs_succeeded_total 0.0" in text
    assert 'kubetune_pods_restarted_total{reason="WorkerPreempted"} 2.0' in text
    assert 'kubetune_trainingjobs{phase="Restarting"} 1.0' in text
    assert 'kubetune_trainingjobs{phase="Failed"} 1.0' in text


THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def test_cpu_threads_follow_the_containers_cpu_limit_else_its_request() -> None:
    def threads(**spec: Any) -> set[str | None]:
        env = env_of(build_pod(job(**spec), 0, 0, SETTINGS))
        return {env.get(name) for name in THREADS}

    assert threads(resources={"requests": {"cpu": "1"}, "limits": {"cpu": 4}}) == {"4"}
    assert threads(resources={"limits": {"cpu": "2500m"}}) == {"3"}  # rounded up
    assert threads(resources={"requests": {"cpu": "500m"}}) == {"1"}  # at least one
    assert threads(resources={"requests": {"memory": "1Gi"}}) == {None}  # no cpu: torch's own default
    assert threads() == {None}
    mine = {"limits": {"cpu": "8"}}
    env = env_of(
        build_pod(
            job(
                resources=mine, trainer={"model": {"family": "cnn"}, "env": [{"name": "OMP_NUM_THREADS", "value": "2"}]}
            ),
            0,
            0,
            SETTINGS,
        )
    )
    assert env["OMP_NUM_THREADS"] == "2" and env["MKL_NUM_THREADS"] == "8"  # trainer.env wins, name by name


def test_a_moved_copy_reads_its_source_folder_of_the_claim_read_only() -> None:
    moved = job(checkpoint={"persistentVolumeClaim": "ckpt", "resumeFrom": "study-t3"})
    pod = build_pod(moved, 0, 0, SETTINGS)
    mounts = {m["mountPath"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/var/lib/kubetune/resume-from"] == {
        "name": "checkpoints",
        "mountPath": "/var/lib/kubetune/resume-from",
        "subPath": "study-t3",
        "readOnly": True,
    }
    assert env_of(pod)["KUBETUNE_RESUME_FROM"] == "/var/lib/kubetune/resume-from"
    # Without a claim the source's emptyDir died with its pods: nothing to read, the copy starts over.
    alone = build_pod(job(checkpoint={"resumeFrom": "study-t3"}), 0, 0, SETTINGS)
    assert "KUBETUNE_RESUME_FROM" not in env_of(alone)
    assert [m["mountPath"] for m in alone["spec"]["containers"][0]["volumeMounts"]] == [
        "/var/lib/kubetune/checkpoints",
        "/tmp",
    ]
