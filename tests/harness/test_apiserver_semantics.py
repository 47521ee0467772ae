"""The test API server behaves like kube-apiserver for the official Python client."""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.request
from typing import Any, TypedDict, Unpack, cast

import pytest
import yaml
from kubernetes import client
from kubetune.testing.apiserver import TestAPIServer

from .conftest import EXAMPLE, wait_for

GROUP, VERSION, PLURAL = "kubetune.dev", "v1alpha1", "trainingjobs"

# Typing the official client: its methods name a model class for a body (V1ConfigMap, V1Pod, ...), but each is wrapped
# in pydantic's validate_call, which turns the plain manifests these tests pass into that model: those calls carry
# ``type: ignore[arg-type]``. The models make every field Optional (metadata, status, spec), as ApiException does its
# body, where the server's answers always have one; the custom-objects API types its JSON as ``object``: both are cast.


def _error(excinfo: pytest.ExceptionInfo[client.ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(cast(str, excinfo.value.body))
    return body


def _job(name: str = "digits-ddp") -> dict[str, Any]:
    job: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    job["metadata"]["name"] = name
    return job


def test_create_sets_identity_and_server_fields(core: client.CoreV1Api) -> None:
    first = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"k": "v"}})  # type: ignore[arg-type]
    second = core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})  # type: ignore[arg-type]
    first_meta, second_meta = cast(client.V1ObjectMeta, first.metadata), cast(client.V1ObjectMeta, second.metadata)
    assert first_meta.uid and first_meta.uid != second_meta.uid
    assert first_meta.namespace == "default"
    assert first_meta.creation_timestamp is not None
    assert int(cast(str, second_meta.resource_version)) > int(cast(str, first_meta.resource_version))
    assert core.read_namespaced_config_map("a", "default").data == {"k": "v"}


def test_namespaces_are_listed_and_created(core: client.CoreV1Api) -> None:
    names = {cast(client.V1ObjectMeta, ns.metadata).name for ns in core.list_namespace().items}
    assert {"default", "kube-system"} <= names
    core.create_namespace({"metadata": {"name": "team-a"}})  # type: ignore[arg-type]
    assert cast(client.V1NamespaceStatus, core.read_namespace("team-a").status).phase == "Active"
    core.create_namespaced_config_map("team-a", {"metadata": {"name": "c"}})  # type: ignore[arg-type]
    configmaps = core.list_namespaced_config_map("team-a").items
    assert [cast(client.V1ObjectMeta, c.metadata).name for c in configmaps] == ["c"]


def test_create_in_a_missing_namespace_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as excinfo:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "c"}})  # type: ignore[arg-type]
    assert excinfo.value.status == 404
    assert _error(excinfo)["reason"] == "NotFound"


def test_duplicate_create_is_409_already_exists(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})  # type: ignore[arg-type]
    with pytest.raises(client.ApiException) as excinfo:
        core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})  # type: ignore[arg-type]
    body = _error(excinfo)
    assert excinfo.value.status == 409
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["reason"] == "AlreadyExists" and body["code"] == 409
    assert body["details"]["name"] == "a" and body["details"]["kind"] == "configmaps"
    assert body["message"] == 'configmaps "a" already exists'


def test_missing_object_is_404_not_found(core: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as excinfo:
        core.read_namespaced_pod("ghost", "default")
    body = _error(excinfo)
    assert excinfo.value.status == 404
    assert (body["reason"], body["code"], body["details"]["name"]) == ("NotFound", 404, "ghost")
    assert body["message"] == 'pods "ghost" not found'


def test_put_with_a_stale_resource_version_is_409_conflict(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"k": "1"}})  # type: ignore[arg-type]
    created.data = {"k": "2"}
    replaced = core.replace_namespaced_config_map("a", "default", created)
    assert replaced.data == {"k": "2"}
    created.data = {"k": "3"}  # still carries the first resourceVersion
    with pytest.raises(client.ApiException) as excinfo:
        core.replace_namespaced_config_map("a", "default", created)
    assert excinfo.value.status == 409
    assert _error(excinfo)["reason"] == "Conflict"


def test_custom_resource_generation_bumps_only_on_spec_changes(
    custom: client.CustomObjectsApi, crds: list[dict[str, Any]]
) -> None:
    job = cast("dict[str, Any]", custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, _job()))
    assert job["metadata"]["generation"] == 1
    labelled = cast(
        "dict[str, Any]",
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "digits-ddp", {"metadata": {"labels": {"team": "a"}}}
        ),
    )
    assert labelled["metadata"]["generation"] == 1
    assert int(labelled["metadata"]["resourceVersion"]) > int(job["metadata"]["resourceVersion"])
    status = cast(
        "dict[str, Any]",
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", PLURAL, "digits-ddp", {"status": {"phase": "Running"}}
        ),
    )
    assert status["metadata"]["generation"] == 1 and status["status"]["phase"] == "Running"
    changed = cast(
        "dict[str, Any]",
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "digits-ddp", {"spec": {"hyperparameters": {"epochs": 5}}}
        ),
    )
    assert changed["metadata"]["generation"] == 2


def test_status_subresource_rules(custom: client.CustomObjectsApi, crds: list[dict[str, Any]]) -> None:
    job = _job()
    job["status"] = {"phase": "Succeeded"}
    created = cast("dict[str, Any]", custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, job))
    assert "status" not in created  # status is dropped on create
    ignored = cast(
        "dict[str, Any]",
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "digits-ddp", {"status": {"phase": "Failed"}}
        ),
    )
    assert "status" not in ignored  # the main resource ignores status
    only_status = cast(
        "dict[str, Any]",
        custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "digits-ddp",
            {"status": {"phase": "Running"}, "spec": {"hyperparameters": {"epochs": 99}}},
        ),
    )
    assert only_status["status"]["phase"] == "Running"
    assert only_status["spec"]["hyperparameters"]["epochs"] == 30  # /status ignores the spec


def test_invalid_custom_resource_is_422_naming_the_field(
    custom: client.CustomObjectsApi, crds: list[dict[str, Any]]
) -> None:
    job = _job("bad")
    job["spec"]["parallelism"]["workers"] = 0
    with pytest.raises(client.ApiException) as excinfo:
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, job)
    body = _error(excinfo)
    assert excinfo.value.status == 422 and body["reason"] == "Invalid"
    assert "spec.parallelism.workers" in body["message"]
    assert [c["field"] for c in body["details"]["causes"]] == ["spec.parallelism.workers"]


def test_custom_resources_are_defaulted_and_pruned(custom: client.CustomObjectsApi, crds: list[dict[str, Any]]) -> None:
    job = _job()
    job["spec"]["notAField"] = True
    created = cast("dict[str, Any]", custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, job))
    assert "notAField" not in created["spec"]
    assert created["spec"]["parallelism"]["backend"] == "gloo"
    assert "backoffLimit" in created["spec"]  # a schema default filled in


def test_unserved_resource_is_404_until_its_crd_is_applied(api: TestAPIServer, custom: client.CustomObjectsApi) -> None:
    with pytest.raises(client.ApiException) as excinfo:
        custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert excinfo.value.status == 404
    crd = api.apply_manifests(EXAMPLE.parents[1] / "manifests" / "crds")[0]
    conditions = {c["type"]: c["status"] for c in api.get("crd", crd["metadata"]["name"], None)["status"]["conditions"]}  # type: ignore[index]
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    listed = cast("dict[str, Any]", custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL))
    assert listed["items"] == []


class _Selectors(TypedDict, total=False):
    label_selector: str
    field_selector: str


def test_label_and_field_selectors(core: client.CoreV1Api) -> None:
    for name, labels in (("a", {"app": "x", "tier": "web"}), ("b", {"app": "y"}), ("c", {})):
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})  # type: ignore[arg-type]

    def names(**kwargs: Unpack[_Selectors]) -> list[str]:
        configmaps = core.list_namespaced_config_map("default", **kwargs).items
        return sorted(cast(str, cast(client.V1ObjectMeta, c.metadata).name) for c in configmaps)

    assert names(label_selector="app=x") == ["a"]
    assert names(label_selector="app!=x") == ["b", "c"]
    assert names(label_selector="app in (x,y)") == ["a", "b"]
    assert names(label_selector="app notin (x)") == ["b", "c"]
    assert names(label_selector="tier") == ["a"]
    assert names(label_selector="!app") == ["c"]
    assert names(label_selector="app,app!=y") == ["a"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b,metadata.namespace=default") == ["a", "c"]


def test_merge_patch_and_json_patch_with_a_failing_test_op(core: client.CoreV1Api, api: TestAPIServer) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"k": "1", "drop": "x"}})  # type: ignore[arg-type]
    merged = core.patch_namespaced_config_map("a", "default", {"data": {"k": "2", "drop": None}})
    assert merged.data == {"k": "2"}
    ops = [{"op": "test", "path": "/data/k", "value": "2"}, {"op": "replace", "path": "/data/k", "value": "3"}]
    patched = core.patch_namespaced_config_map("a", "default", ops)
    assert patched.data == {"k": "3"}
    with pytest.raises(client.ApiException) as excinfo:
        core.patch_namespaced_config_map(
            "a", "default", [{"op": "test", "path": "/data/k", "value": "2"}, {"op": "remove", "path": "/data/k"}]
        )
    assert excinfo.value.status == 422
    assert api.get("configmaps", "a")["data"] == {"k": "3"}  # type: ignore[index]


def test_finalizers_delay_deletion_until_removed(core: client.CoreV1Api, api: TestAPIServer) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "a", "finalizers": ["x/y"]}})  # type: ignore[arg-type]
    core.delete_namespaced_config_map("a", "default")
    pending = api.get("configmaps", "a")
    assert pending is not None and pending["metadata"]["deletionTimestamp"]
    core.patch_namespaced_config_map("a", "default", {"metadata": {"finalizers": None}})
    assert api.get("configmaps", "a") is None


def test_deleting_an_owner_collects_its_dependents(
    api: TestAPIServer, core: client.CoreV1Api, custom: client.CustomObjectsApi, crds: list[dict[str, Any]]
) -> None:
    owner = cast("dict[str, Any]", custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, _job()))
    ref = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "name": "digits-ddp",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    core.create_namespaced_service(
        "default",
        {"metadata": {"name": "svc", "ownerReferences": [ref]}, "spec": {"clusterIP": "None"}},  # type: ignore[arg-type]
    )
    core.create_namespaced_pod(
        "default",
        {  # type: ignore[arg-type]
            "metadata": {"name": "worker-0", "ownerReferences": [ref]},
            "spec": {"containers": [{"name": "main", "image": "x"}]},
        },
    )
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "unowned"}, "spec": {"containers": [{"name": "main", "image": "x"}]}},  # type: ignore[arg-type]
    )
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "digits-ddp")
    assert api.get("services", "svc") is None
    assert [p["metadata"]["name"] for p in api.objects("pods")] == ["unowned"]


def test_events_of_both_apis_can_be_created_and_listed_by_involved_object(
    core: client.CoreV1Api, api_client: client.ApiClient
) -> None:
    involved = {"kind": "Pod", "name": "p", "namespace": "default"}
    core.create_namespaced_event(
        "default",
        {  # type: ignore[arg-type]
            "metadata": {"name": "e1"},
            "involvedObject": involved,
            "reason": "Started",
            "message": "hi",
            "type": "Normal",
        },
    )
    client.EventsV1Api(api_client).create_namespaced_event(
        "default",
        {  # type: ignore[arg-type]
            "metadata": {"name": "e2"},
            "regarding": involved,
            "reason": "Started",
            "action": "Start",
            "eventTime": "2025-01-01T00:00:00.000000Z",
            "reportingController": "t",
            "reportingInstance": "t",
            "type": "Normal",
        },
    )
    found = core.list_namespaced_event("default", field_selector="involvedObject.name=p")
    assert [e.reason for e in found.items] == ["Started"]
    assert core.list_namespaced_event("default", field_selector="involvedObject.name=q").items == []


def test_discovery_lists_custom_resources_with_names_and_subresources(
    api_client: client.ApiClient, crds: list[dict[str, Any]]
) -> None:
    resources = client.CustomObjectsApi(api_client).get_api_resources(GROUP, VERSION)
    by_name = {r.name: r for r in resources.resources}
    assert by_name["trainingjobs"].short_names == ["tj"] and by_name["trainingjobs"].namespaced
    assert "watch" in by_name["trainingjobs"].verbs
    assert "trainingjobs/status" in by_name
    groups = {g.name for g in client.ApisApi(api_client).get_api_versions().groups}
    assert {"apps", "coordination.k8s.io", "events.k8s.io", "apiextensions.k8s.io", GROUP} <= groups


def test_injected_faults_hit_the_chosen_share_of_requests(api: TestAPIServer, core: client.CoreV1Api) -> None:
    api.inject_fault("POST", r"/pods$", 500, probability=0.3, seed=1)
    failures = 0
    for i in range(40):
        try:
            core.create_namespaced_pod(
                "default",
                {"metadata": {"name": f"p{i}"}, "spec": {"containers": [{"name": "m", "image": "x"}]}},  # type: ignore[arg-type]
            )
        except client.ApiException as error:
            assert error.status == 500 and json.loads(cast(str, error.body))["reason"] == "InternalError"
            failures += 1
    assert 5 <= failures <= 20
    assert len(api.objects("pods")) == 40 - failures
    core.create_namespaced_config_map("default", {"metadata": {"name": "untouched"}})  # type: ignore[arg-type]  # other paths are fine
    api.clear_faults()
    dropped = api.inject_fault("*", r"/configmaps", 503)
    api.remove_fault(dropped)
    api.inject_fault("PATCH", r"/status$", 409, times=1)
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "s"}, "spec": {"containers": [{"name": "m", "image": "x"}]}},  # type: ignore[arg-type]
    )
    with pytest.raises(client.ApiException) as excinfo:
        core.patch_namespaced_pod_status("s", "default", {"status": {"phase": "Running"}})
    assert excinfo.value.status == 409
    running = core.patch_namespaced_pod_status("s", "default", {"status": {"phase": "Running"}})
    assert cast(client.V1PodStatus, running.status).phase == "Running"
    assert api.request_count("POST", r"/pods$") == 41


def test_in_process_accessors_return_copies(api: TestAPIServer) -> None:
    api.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}, namespace="default"
    )
    copy_ = api.get("cm", "a")
    assert copy_ is not None
    original = copy.deepcopy(copy_)
    copy_["data"]["k"] = "changed"
    assert api.get("configmaps", "a") == original
    assert api.objects("ConfigMap", label_selector="missing") == []


def test_requests_do_not_slow_down_as_they_accumulate(api: TestAPIServer) -> None:
    def batch(start: int) -> float:
        began = time.perf_counter()
        for i in range(start, start + 100):
            body = json.dumps({"metadata": {"name": f"c{i}"}}).encode()
            request = urllib.request.Request(
                f"{api.url}/api/v1/namespaces/default/configmaps",
                data=body,
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request) as response:
                assert response.status == 201
        return time.perf_counter() - began

    first = batch(0)
    for start in range(100, 500, 100):
        batch(start)
    assert batch(500) < first * 2 + 0.1
    assert len(api.objects("configmaps")) == 600


def test_wait_for_helper_fails_with_a_clear_message() -> None:
    with pytest.raises(AssertionError, match="never"):
        wait_for(lambda: None, timeout=0.1, what="never")


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("configmaps", {"metadata": {"name": "Bad_Name"}}, "metadata.name"),
        ("services", {"metadata": {"name": "1-starts-with-a-digit"}}, "metadata.name"),
        ("configmaps", {"metadata": {"name": "ok", "labels": {"run": "x" * 64}}}, "metadata.labels[run]"),
        ("configmaps", {"metadata": {"name": "ok", "labels": {"bad key!": "v"}}}, "metadata.labels"),
    ],
)
def test_invalid_names_and_labels_are_422(api: TestAPIServer, kind: str, body: dict[str, Any], field: str) -> None:
    info = api.store.lookup(kind)
    with pytest.raises(Exception) as excinfo:
        api.store.create(info, "default", body)
    error = excinfo.value
    assert getattr(error, "code", None) == 422
    assert [c["field"] for c in error.details["causes"]] == [field]  # type: ignore[attr-defined]


def test_pod_specs_are_immutable_but_nodename_comes_through_binding(core: client.CoreV1Api, api: TestAPIServer) -> None:
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "m", "image": "x:1"}]}},  # type: ignore[arg-type]
    )
    with pytest.raises(client.ApiException) as excinfo:
        core.patch_namespaced_pod("p", "default", {"spec": {"restartPolicy": "Never"}})
    assert excinfo.value.status == 422 and "Forbidden" in _error(excinfo)["message"]
    with pytest.raises(client.ApiException):
        core.patch_namespaced_pod("p", "default", {"spec": {"nodeName": "n1"}})
    updated = core.patch_namespaced_pod("p", "default", {"spec": {"containers": [{"name": "m", "image": "x:2"}]}})
    assert cast(client.V1PodSpec, updated.spec).containers[0].image == "x:2"
    api.store.bind("default", "p", "n1")
    assert api.get("pods", "p")["spec"]["nodeName"] == "n1"  # type: ignore[index]
    with pytest.raises(Exception, match="already assigned"):
        api.store.bind("default", "p", "n2")


def test_pods_on_a_node_nobody_runs_are_deleted_at_once(api: TestAPIServer) -> None:
    api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "m", "image": "x"}]},
        }
    )
    api.store.bind("default", "p", "n1")
    api.delete("pods", "p")
    assert api.get("pods", "p") is None
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "q", "namespace": "default"},
            "spec": {"containers": [{"name": "m", "image": "x"}]},
        }
    )
    api.store.bind("default", "q", "n1")
    api.patch(
        "nodes",
        "n1",
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        namespace=None,
        subresource="status",
    )
    terminating = api.delete("pods", "q")
    assert terminating["metadata"]["deletionTimestamp"] and terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    api.delete("pods", "q", grace_seconds=0)
    assert api.get("pods", "q") is None


def test_delete_collection_by_label(core: client.CoreV1Api, api: TestAPIServer) -> None:
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": {"app": app}}})  # type: ignore[arg-type]
    core.delete_collection_namespaced_config_map("default", label_selector="app=x")
    assert [c["metadata"]["name"] for c in api.objects("configmaps")] == ["c"]


def test_deleting_a_namespace_deletes_its_objects(core: client.CoreV1Api, api: TestAPIServer) -> None:
    core.create_namespace({"metadata": {"name": "gone"}})  # type: ignore[arg-type]
    core.create_namespaced_config_map("gone", {"metadata": {"name": "a"}})  # type: ignore[arg-type]
    core.delete_namespace("gone")
    assert api.objects("configmaps", "gone") == [] and api.get("namespaces", "gone", None) is None


def test_health_and_version_endpoints(api: TestAPIServer, api_client: client.ApiClient) -> None:
    assert client.VersionApi(api_client).get_code().git_version.startswith("v1.33")
    for path in ("/healthz", "/readyz", "/livez"):
        with urllib.request.urlopen(api.url + path) as response:
            assert response.status == 200
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(api.url + "/openapi/v2")
    assert excinfo.value.code == 404


def test_delete_answers_202_while_finalizers_hold_the_object(api: TestAPIServer) -> None:
    api.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["x/y"]}},
        namespace="default",
    )
    request = urllib.request.Request(f"{api.url}/api/v1/namespaces/default/configmaps/held", method="DELETE")
    with urllib.request.urlopen(request) as response:
        assert response.status == 202
        assert json.loads(response.read())["metadata"]["deletionTimestamp"]
