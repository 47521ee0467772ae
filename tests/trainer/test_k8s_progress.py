"""The in-cluster progress channel coalesces heartbeats into bounded patches of the pod's own annotation."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from kubetune_trainer.k8s_progress import ANNOTATION, PodAnnotationSink


class RecordingApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any], float]] = []
        self.lock = threading.Lock()

    def patch_namespaced_pod(self, name: str, namespace: str, body: dict[str, Any], **kw: Any) -> None:
        assert kw == {"_content_type": "application/merge-patch+json"}
        with self.lock:
            self.calls.append((name, namespace, body, time.monotonic()))


@pytest.fixture
def pod_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "job-w0-a0")
    monkeypatch.setenv("POD_NAMESPACE", "team")


def test_bursts_are_coalesced_to_one_patch_per_interval_and_the_newest_wins(pod_env: None) -> None:
    api = RecordingApi()
    sink = PodAnnotationSink(min_interval=1.0, api=api)
    started = time.monotonic()
    for step in range(1, 201):
        sink.emit({"kind": "heartbeat", "step": step})
        time.sleep(0.01)  # 2 s of records at 100/s
    sink.close()
    elapsed = time.monotonic() - started
    assert 2 <= len(api.calls) <= int(elapsed) + 2
    name, namespace, body, _ = api.calls[-1]
    assert (name, namespace) == ("job-w0-a0", "team")
    assert json.loads(body["metadata"]["annotations"][ANNOTATION])["step"] == 200  # flushed on close
    gaps = [b[3] - a[3] for a, b in zip(api.calls, api.calls[1:-1], strict=False)]
    assert all(gap >= 0.95 for gap in gaps)


def test_a_failing_api_never_stops_training(pod_env: None) -> None:
    class Broken:
        def patch_namespaced_pod(self, *args: Any, **kw: Any) -> None:
            raise RuntimeError("apiserver down")

    sink = PodAnnotationSink(min_interval=1.0, api=Broken())
    sink.emit({"step": 1})
    sink.close()
    assert sink.sent == 0


def test_the_sink_needs_to_know_its_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    monkeypatch.delenv("HOSTNAME", raising=False)
    with pytest.raises(ValueError, match="POD_NAME"):
        PodAnnotationSink(api=RecordingApi())
