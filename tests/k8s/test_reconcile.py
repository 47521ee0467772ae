"""One reconcile pass against an in-memory adapter: idempotent acts, status only on change, bad specs fail."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubetune.core import Event
from kubetune.operator.metrics import OperatorMetrics
from kubetune.operator.reconcile import reconcile
from kubetune.operator.settings import OperatorSettings

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SETTINGS = OperatorSettings(metrics_port=0)


class MemoryAdapter:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.status_patches: list[dict[str, Any]] = []
        self.events: list[Event] = []

    def create_if_absent(self, obj: dict[str, Any], owner: Mapping[str, Any]) -> bool:
        key = (obj["kind"], obj["metadata"]["name"])
        if key in self.objects:
            return False
        self.objects[key] = obj
        return True

    def delete_pod_if_present(self, namespace: str, name: str) -> bool:
        self.deleted.append(name)
        return self.objects.pop(("Pod", name), None) is not None

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.status_patches.append(dict(status))

    def record_event(self, owner: Mapping[str, Any], event: Event) -> None:
        self.events.append(event)

    def pods(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (kind, _), o in self.objects.items() if kind == "Pod"]


def body(workers: int = 2, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.dev/v1alpha1", "kind": "TrainingJob",
        "metadata": {"name": "j", "namespace": "ns", "uid": "u1", "generation": 1},
        "spec": {"trainer": {"model": {"family": "mlp"}}, "parallelism": {"workers": workers},
                 "tracking": {"enabled": False}, **spec},
        "status": status or {},
    }


def test_first_pass_creates_service_and_pods_then_nothing() -> None:
    adapter = MemoryAdapter()
    metrics = OperatorMetrics()
    first = reconcile(body(), [], False, adapter, SETTINGS, NOW, metrics)
    assert sorted(name for _, name in adapter.objects) == ["j", "j-w0-a0", "j-w1-a0"]
    assert [e.reason for e in adapter.events] == ["WorkersCreated"]
    assert len(adapter.status_patches) == 1
    seen = reconcile(body(status=dict(first.status)), adapter.pods(), True, adapter, SETTINGS, NOW, metrics)
    assert seen.actions == () and len(adapter.status_patches) == 2  # the pods now show in the worker summary
    again = reconcile(body(status=dict(seen.status)), adapter.pods(), True, adapter, SETTINGS, NOW, metrics)
    assert again.actions == () and len(adapter.status_patches) == 2  # an unchanged status is not written
    assert metrics.created._value.get() == 1


def test_a_pod_that_already_exists_is_not_an_error() -> None:
    adapter = MemoryAdapter()
    adapter.objects[("Pod", "j-w0-a0")] = {"kind": "Pod", "metadata": {"name": "j-w0-a0"}}
    reconcile(body(), [], True, adapter, SETTINGS, NOW)
    assert ("Pod", "j-w1-a0") in adapter.objects


def test_a_semantically_bad_spec_fails_with_invalid_spec() -> None:
    adapter = MemoryAdapter()
    bad = body(hyperparameters={"batchSize": 63})
    decided = reconcile(bad, [], False, adapter, SETTINGS, NOW)
    assert decided.status["phase"] == "Failed"
    assert adapter.objects == {}
    assert adapter.events[0].reason == "InvalidSpec"
    assert "batchSize must be a multiple of parallelism.workers" in adapter.status_patches[0]["message"]


def test_failed_pod_triggers_gang_restart_and_metrics() -> None:
    adapter = MemoryAdapter()
    metrics = OperatorMetrics()
    status = dict(reconcile(body(), [], False, adapter, SETTINGS, NOW, metrics).status)
    pods = adapter.pods()
    for pod in pods:
        pod["status"] = {"phase": "Running"}
    status = dict(reconcile(body(status=status), pods, True, adapter, SETTINGS, NOW, metrics).status)
    pods[1]["status"] = {"phase": "Failed", "containerStatuses": [{"state": {"terminated": {"exitCode": 1}}}]}
    decided = reconcile(body(status=status), pods, True, adapter, SETTINGS, NOW, metrics)
    assert decided.status["phase"] == "Restarting" and adapter.deleted == ["j-w0-a0"]
    assert metrics.restarted.labels(reason="WorkerFailed")._value.get() == 2
