"""The real kubectl works against the test API server: apply, get (tables, JSON, watch), patch, describe, wait,
delete."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from kubetune.testing.apiserver import TestAPIServer
from kubetune.testing.tools import ToolsUnavailable, ensure_tools

from .conftest import CRD_DIR, EXAMPLE, wait_for

Kubectl = Callable[..., str]


@pytest.fixture(scope="module")
def kubectl_binary() -> Path:
    try:
        return ensure_tools().kubectl
    except ToolsUnavailable as error:
        pytest.skip(f"kubectl is not available: {error}")


@pytest.fixture
def kubectl_env(kubeconfig: Path, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}


@pytest.fixture
def kubectl(kubectl_binary: Path, kubectl_env: dict[str, str]) -> Kubectl:
    def run(*args: str) -> str:
        done = subprocess.run(
            [str(kubectl_binary), *args], env=kubectl_env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"kubectl {' '.join(args)} failed: {done.stderr}"
        return done.stdout

    return run


def test_kubectl_apply_get_patch_describe_wait_delete(api: TestAPIServer, kubectl: Kubectl) -> None:
    assert "trainingjobs.kubetune.dev created" in kubectl("apply", "--validate=false", "-f", str(CRD_DIR))
    assert "trainingjob.kubetune.dev/digits-ddp created" in kubectl("apply", "--validate=false", "-f", str(EXAMPLE))
    assert "unchanged" in kubectl("apply", "--validate=false", "-f", str(EXAMPLE))

    table = kubectl("get", "tj").splitlines()
    assert table[0].split() == ["NAME", "PHASE", "WORKERS", "PROGRESS", "METRIC", "AGE"]
    assert table[1].split()[:2] == ["digits-ddp", "2"]

    as_json = json.loads(kubectl("get", "tj", "digits-ddp", "-o", "json"))
    assert as_json["kind"] == "TrainingJob" and as_json["metadata"]["generation"] == 1

    kubectl("patch", "tj", "digits-ddp", "--type", "merge", "-p", '{"spec": {"hyperparameters": {"epochs": 3}}}')
    patched = api.get("tj", "digits-ddp")
    assert patched is not None
    assert patched["spec"]["hyperparameters"]["epochs"] == 3 and patched["metadata"]["generation"] == 2

    api.patch("tj", "digits-ddp", {"status": {"phase": "Succeeded"}}, subresource="status")
    assert "condition met" in kubectl(
        "wait", "--for=jsonpath={.status.phase}=Succeeded", "tj/digits-ddp", "--timeout=10s"
    )
    assert kubectl("get", "tj").splitlines()[1].split()[:3] == ["digits-ddp", "Succeeded", "2"]

    api.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "digits-ddp.1", "namespace": "default"},
            "involvedObject": {
                "apiVersion": "kubetune.dev/v1alpha1",
                "kind": "TrainingJob",
                "name": "digits-ddp",
                "namespace": "default",
                "uid": patched["metadata"]["uid"],
            },
            "reason": "Launched",
            "message": "2 workers launched",
            "type": "Normal",
            "count": 1,
        }
    )
    described = kubectl("describe", "tj", "digits-ddp")
    assert "Name:         digits-ddp" in described and "Phase:  Succeeded" in described
    assert "Launched" in described and "2 workers launched" in described

    assert 'trainingjob.kubetune.dev "digits-ddp" deleted' in kubectl("delete", "tj", "digits-ddp")
    assert api.get("tj", "digits-ddp") is None


def test_kubectl_get_pods_prints_the_pod_columns(api: TestAPIServer, kubectl: Kubectl) -> None:
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "worker-0", "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": "x"}]},
        }
    )
    lines = kubectl("get", "pods").splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split()[:4] == ["worker-0", "0/1", "Pending", "0"]


def test_kubectl_get_watch_prints_changes(
    api: TestAPIServer, kubectl: Kubectl, kubectl_binary: Path, kubectl_env: dict[str, str]
) -> None:
    kubectl("apply", "--validate=false", "-f", str(CRD_DIR))
    kubectl("apply", "--validate=false", "-f", str(EXAMPLE))
    process = subprocess.Popen(
        [str(kubectl_binary), "get", "tj", "-w"],
        env=kubectl_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(line.startswith("digits-ddp") for line in lines), what="the first row")
        api.patch("tj", "digits-ddp", {"status": {"phase": "Running"}}, subresource="status")
        wait_for(lambda: any("Running" in line for line in lines), what="the Running row")
    finally:
        process.kill()
        process.wait()
    assert lines[0].split()[0] == "NAME"
