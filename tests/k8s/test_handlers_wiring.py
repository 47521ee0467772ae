"""kubetune's kopf wiring: what lets kopf skip work per watch event without changing what the handlers see."""

from __future__ import annotations

import kopf
from kubetune.operator import handlers


def test_no_change_handlers_are_registered_so_the_diff_base_may_stay_empty() -> None:
    assert not handlers._has_change_handlers(kopf.get_default_registry())
    storage = handlers.EssenceFreeDiffBase(prefix="kubetune.dev", key="last-handled-configuration")
    assert storage.build(body=kopf.Body({"metadata": {"name": "j"}, "spec": {"a": 1}})) == {}


def test_a_pod_snapshot_holds_what_the_reconcile_pass_reads() -> None:
    pod: kopf.RawBody = {
        "metadata": {
            "name": "j-w0-a0",
            "namespace": "ns",
            "labels": {"kubetune.dev/job": "j"},
            "annotations": {"kubetune.dev/progress": "{}"},
            "uid": "u",
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "trainer"}]},
        "status": {"phase": "Running"},
    }
    assert handlers._pod_snapshot(kopf.Body(pod)) == {
        "metadata": {
            "name": "j-w0-a0",
            "namespace": "ns",
            "labels": {"kubetune.dev/job": "j"},
            "annotations": {"kubetune.dev/progress": "{}"},
            "deletionTimestamp": None,
        },
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running"},
    }
