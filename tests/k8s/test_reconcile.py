"""One reconcile pass against an in-memory adapter: idempotent acts, status only on change, bad specs fail."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubetune.core import Event
from kubetune.operator.metrics import OperatorMetrics
from kubetune.operator.reconcile import JobMemory, quiet_pass, reconcile
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

    # The rest of the Adapter protocol serves studies only; no TrainingJob pass here reaches it.
    def annotate_trainingjob(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        raise NotImplementedError("MemoryAdapter models no TrainingJob annotations")

    def read_secret(self, namespace: str, name: str, key: str) -> str:
        raise NotImplementedError("MemoryAdapter models no Secrets")

    def pods(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (kind, _), o in self.objects.items() if kind == "Pod"]


def body(workers: int = 2, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "j", "namespace": "ns", "uid": "u1", "generation": 1},
        "spec": {
            "trainer": {"model": {"family": "mlp"}},
            "parallelism": {"workers": workers},
            "tracking": {"enabled": False},
            **spec,
        },
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


def test_a_quiet_pass_is_decided_without_the_adapter_exactly_when_reconcile_would_make_no_request() -> None:
    adapter = MemoryAdapter()
    metrics = OperatorMetrics()
    memory = JobMemory()
    assert quiet_pass(body(), [], False, SETTINGS, NOW, metrics, memory) is None  # the service and pods are missing
    first = reconcile(body(), [], False, adapter, SETTINGS, NOW, metrics, memory)
    # The pods just created are expected (the index lags): nothing to do but write the worker summary once seen.
    assert quiet_pass(body(status=dict(first.status)), [], True, SETTINGS, NOW, metrics, memory) is not None
    pods = adapter.pods()
    assert quiet_pass(body(status=dict(first.status)), pods, True, SETTINGS, NOW, metrics, memory) is None
    seen = reconcile(body(status=dict(first.status)), pods, True, adapter, SETTINGS, NOW, metrics, memory)
    requests = (len(adapter.objects), len(adapter.status_patches), len(adapter.events))
    quiet = quiet_pass(body(status=dict(seen.status)), pods, True, SETTINGS, NOW, metrics, memory)
    assert quiet is not None and quiet.status == seen.status and not quiet.events and not memory.replan
    assert (len(adapter.objects), len(adapter.status_patches), len(adapter.events)) == requests
    study = body(tuning={"parameters": {}})
    assert quiet_pass(study, [], True, SETTINGS, NOW, metrics, JobMemory()) is None  # studies always go to a thread


def test_the_parse_is_reused_until_what_it_reads_changes() -> None:
    memory = JobMemory()
    job = memory.parse(body())
    written = body(status={"phase": "Running"})
    written["metadata"].update(resourceVersion="7", finalizers=["kubetune.dev/finalizer"])
    assert memory.parse(written) is job
    relabelled = body()
    relabelled["metadata"]["labels"] = {"team": "a"}
    assert memory.parse(relabelled).labels == {"team": "a"}
    assert memory.parse(body(workers=4)).spec.parallelism.workers == 4
