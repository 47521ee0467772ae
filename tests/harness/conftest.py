"""Fixtures for the test API server and the fake kubelet: a fresh server per test, clients bound to it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config
from kubetune.testing.apiserver import TestAPIServer

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "manifests" / "crds"
EXAMPLE = REPO / "examples" / "digits-ddp.yaml"

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def api() -> Iterator[TestAPIServer]:
    with TestAPIServer(bookmark_interval=0.5) as server:
        yield server


@pytest.fixture
def kubeconfig(api: TestAPIServer, tmp_path: Path) -> Path:
    return api.write_kubeconfig(tmp_path / "kubeconfig.yaml")


@pytest.fixture
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    # kubernetes ships py.typed but leaves new_client_from_config unannotated.
    with config.new_client_from_config(config_file=str(kubeconfig)) as api_client:  # type: ignore[no-untyped-call]
        yield api_client


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def crds(api: TestAPIServer) -> list[dict[str, Any]]:
    return api.apply_manifests(CRD_DIR)
