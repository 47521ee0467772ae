"""Watches of the test API server: list then watch, resume, bookmarks, selectors, 410 Gone, timeouts."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from typing import Any, cast

from kubernetes import client, watch
from kubetune.testing.apiserver import TestAPIServer

CM = "/api/v1/namespaces/default/configmaps"


def _events(api: TestAPIServer, path: str, **params: str) -> list[dict[str, Any]]:
    """Every event of a watch that the server ends after ``timeoutSeconds``."""
    query = urllib.parse.urlencode({"watch": "true", **params})
    with urllib.request.urlopen(f"{api.url}{path}?{query}", timeout=10) as response:
        return [json.loads(line) for line in response.read().splitlines() if line.strip()]


def _cm(api: TestAPIServer, name: str, **labels: str) -> dict[str, Any]:
    return api.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}}, namespace="default"
    )


def test_watch_resumes_after_the_lists_resource_version(api: TestAPIServer, core: client.CoreV1Api) -> None:
    _cm(api, "before")
    listed = core.list_namespaced_config_map("default")
    # The list model's metadata and resourceVersion are Optional; the server's list always has both.
    listed_rv = cast(str, cast(client.V1ListMeta, listed.metadata).resource_version)
    _cm(api, "after")
    api.patch("configmaps", "after", {"data": {"k": "v"}})
    api.delete("configmaps", "before")
    events = _events(api, CM, resourceVersion=listed_rv, timeoutSeconds="1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "after"),
        ("MODIFIED", "after"),
        ("DELETED", "before"),
    ]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(listed_rv)


def test_watch_without_a_resource_version_starts_with_the_current_objects(api: TestAPIServer) -> None:
    _cm(api, "a")
    _cm(api, "b")
    events = _events(api, CM, timeoutSeconds="1")
    assert sorted((e["type"], e["object"]["metadata"]["name"]) for e in events) == [("ADDED", "a"), ("ADDED", "b")]


def test_watch_sends_bookmarks_when_allowed(api: TestAPIServer) -> None:
    _cm(api, "a")
    rv = str(api.resource_version)
    events = _events(api, CM, resourceVersion=rv, allowWatchBookmarks="true", timeoutSeconds="2")
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks, events
    assert bookmarks[-1]["object"]["kind"] == "ConfigMap"
    assert int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) >= int(rv)
    assert all(e["type"] != "BOOKMARK" for e in _events(api, CM, resourceVersion=rv, timeoutSeconds="1"))


def test_watch_from_a_compacted_resource_version_is_410_gone(api: TestAPIServer) -> None:
    _cm(api, "a")
    old = str(api.resource_version)
    _cm(api, "b")
    api.compact()
    events = _events(api, CM, resourceVersion=old, timeoutSeconds="1")
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")


def test_bounded_history_forgets_old_events() -> None:
    with TestAPIServer(history=5) as api:
        first = _cm(api, "first")["metadata"]["resourceVersion"]
        for i in range(10):
            _cm(api, f"c{i}")
        events = _events(api, CM, resourceVersion=first, timeoutSeconds="1")
        assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410


def test_watch_filters_by_label_selector_and_reports_objects_leaving_it(api: TestAPIServer) -> None:
    rv = str(api.resource_version)
    _cm(api, "in", app="x")
    _cm(api, "out", app="y")
    api.patch("configmaps", "in", {"metadata": {"labels": {"app": "z"}}})
    events = _events(api, CM, resourceVersion=rv, labelSelector="app=x", timeoutSeconds="1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "in"), ("DELETED", "in")]


def test_watch_filters_by_field_selector_across_namespaces(api: TestAPIServer) -> None:
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    rv = str(api.resource_version)
    for ns in ("default", "other"):
        api.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "namespace": ns},
                "spec": {"containers": [{"name": "m", "image": "x"}]},
            }
        )
    api.patch("pods", "p", {"status": {"phase": "Running"}}, namespace="other", subresource="status")
    events = _events(api, "/api/v1/pods", resourceVersion=rv, fieldSelector="status.phase=Running", timeoutSeconds="1")
    assert [(e["type"], e["object"]["metadata"]["namespace"]) for e in events] == [("ADDED", "other")]


def test_live_watch_with_the_official_client(api: TestAPIServer, core: client.CoreV1Api) -> None:
    seen: list[tuple[str, str]] = []
    rv = cast(client.V1ListMeta, core.list_namespaced_config_map("default").metadata).resource_version

    # kubernetes ships py.typed but leaves its watch module unannotated, hence the no-untyped-call ignores.
    def follow() -> None:
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        for event in stream.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=3):  # type: ignore[no-untyped-call]
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 2:
                stream.stop()  # type: ignore[no-untyped-call]

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.2)
    _cm(api, "live")
    api.delete("configmaps", "live")
    thread.join(5)
    assert seen == [("ADDED", "live"), ("DELETED", "live")]


def test_watch_timeout_ends_the_stream(api: TestAPIServer) -> None:
    start = time.monotonic()
    assert _events(api, CM, resourceVersion=str(api.resource_version), timeoutSeconds="1") == []
    assert 0.9 <= time.monotonic() - start < 3
