"""The pure rules behind the test cluster: patches, selectors, printer columns, placement, local container form."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import Any

import pytest
from kubetune.testing.apiserver_patches import (
    PatchError,
    Selector,
    SelectorError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from kubetune.testing.apiserver_resources import BUILTINS, evaluate_path, human_age, resource_list_doc
from kubetune.testing.kubelet_placement import DEFAULT_NODES, fits, is_local_service, local_container

NOW = datetime.datetime(2025, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}}, {"a": 1, "b": {"d": 3, "e": 4}}),
        ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
        ({"a": 1}, {"a": {"b": 1}}, {"a": {"b": 1}}),
    ],
)
def test_merge_patch(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ([{"op": "add", "path": "/a/-", "value": 3}], {"a": [1, 2, 3], "m": {"k": "v"}}),
        ([{"op": "add", "path": "/a/0", "value": 0}], {"a": [0, 1, 2], "m": {"k": "v"}}),
        ([{"op": "remove", "path": "/m/k"}], {"a": [1, 2], "m": {}}),
        ([{"op": "replace", "path": "/a/1", "value": 9}], {"a": [1, 9], "m": {"k": "v"}}),
        ([{"op": "move", "from": "/m/k", "path": "/m/j"}], {"a": [1, 2], "m": {"j": "v"}}),
        ([{"op": "copy", "from": "/m", "path": "/n"}], {"a": [1, 2], "m": {"k": "v"}, "n": {"k": "v"}}),
        ([{"op": "add", "path": "/m/a~1b", "value": 1}], {"a": [1, 2], "m": {"k": "v", "a/b": 1}}),
        ([{"op": "test", "path": "/m/k", "value": "v"}], {"a": [1, 2], "m": {"k": "v"}}),
    ],
)
def test_json_patch(ops: list[dict[str, Any]], expected: Any) -> None:
    target = {"a": [1, 2], "m": {"k": "v"}}
    assert json_patch(target, ops) == expected
    assert target == {"a": [1, 2], "m": {"k": "v"}}  # untouched


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "test", "path": "/m/k", "value": "w"}],
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/m/missing", "value": 1}],
        [{"op": "frobnicate", "path": "/a"}],
        {"op": "add"},
    ],
)
def test_json_patch_refusals(ops: Any) -> None:
    with pytest.raises(PatchError):
        json_patch({"a": [1, 2], "m": {"k": "v"}}, ops)


@pytest.mark.parametrize(
    ("labels", "fields", "matches"),
    [
        ("app=x", None, True),
        ("app==x", None, True),
        ("app!=x", None, False),
        ("app in (x, y)", None, True),
        ("app notin (x)", None, False),
        ("tier", None, False),
        ("!tier", None, True),
        ("app=x,env in (prod)", None, True),
        (None, "metadata.name=p", True),
        (None, "metadata.name!=p", False),
        (None, "spec.nodeName=n1", True),
        (None, "status.phase=Running,metadata.namespace=default", True),
        (None, "status.phase=Failed", False),
    ],
)
def test_selectors(labels: str | None, fields: str | None, matches: bool) -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "x", "env": "prod"}},
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running"},
    }
    assert Selector.parse(labels, fields).matches(pod) is matches


def test_unparseable_selectors_are_refused() -> None:
    with pytest.raises(SelectorError):
        Selector.parse(None, "metadata.name")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.parallelism.workers", 2),
        ("{.status.phase}", "Running"),
        (".spec.items[1]", "b"),
        (".spec.missing.deeper", None),
        (".spec.items[5]", None),
    ],
)
def test_printer_column_paths(path: str, expected: Any) -> None:
    obj = {"spec": {"parallelism": {"workers": 2}, "items": ["a", "b"]}, "status": {"phase": "Running"}}
    assert evaluate_path(obj, path) == expected


@pytest.mark.parametrize(("seconds", "shown"), [(5, "5s"), (119, "119s"), (300, "5m"), (7300, "2h"), (3 * 86400, "3d")])
def test_ages_read_like_kubectl(seconds: int, shown: str) -> None:
    then = (NOW - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert human_age(then, NOW) == shown


def test_core_discovery_lists_pod_subresources() -> None:
    doc = resource_list_doc(list(BUILTINS), "", "v1")
    assert doc is not None
    names = {r["name"] for r in doc["resources"]}
    assert {"pods", "pods/status", "pods/binding", "pods/eviction", "namespaces", "nodes/status", "events"} <= names


NODES = {
    n.name: {**n.manifest(), "status": {"conditions": [{"type": "Ready", "status": "True"}]}} for n in DEFAULT_NODES
}


def _required_node_affinity(key: str, operator: str, values: list[str]) -> dict[str, Any]:
    """A pod spec fragment: one required node-affinity term with one match expression."""
    expression = {"key": key, "operator": operator, "values": values}
    term = {"nodeSelectorTerms": [{"matchExpressions": [expression]}]}
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}}}


SPOT_TOLERATION = {
    "key": "kubernetes.azure.com/scalesetpriority",
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}


@pytest.mark.parametrize(
    ("spec", "node", "expected"),
    [
        ({}, "ondemand-1", True),
        ({}, "spot-1", False),
        ({"tolerations": [SPOT_TOLERATION]}, "spot-1", True),
        ({"tolerations": [{"operator": "Exists"}]}, "spot-1", True),
        ({"tolerations": [{**SPOT_TOLERATION, "value": "other"}]}, "spot-1", False),
        ({"nodeSelector": {"karpenter.sh/capacity-type": "spot"}}, "ondemand-1", False),
        (
            _required_node_affinity("node.kubernetes.io/capacity", "In", ["on-demand"]),
            "ondemand-2",
            True,
        ),
        (
            _required_node_affinity("node.kubernetes.io/capacity", "NotIn", ["on-demand"]),
            "ondemand-2",
            False,
        ),
    ],
)
def test_pod_fits_node(spec: dict[str, Any], node: str, expected: bool) -> None:
    assert fits({"spec": spec}, NODES[node]) is expected


def test_a_not_ready_node_fits_nothing() -> None:
    node = {**NODES["ondemand-1"], "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    assert not fits({"spec": {}}, node)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("job-0.job", True),
        ("job-0.job.ns", True),
        ("job-0.job.ns.svc.cluster.local", True),
        ("job", True),
        ("heads", True),
        ("heads.ns.svc", True),
        ("job-0.other", False),
        ("example.com", False),
        ("job.other", False),
    ],
)
def test_job_service_names_are_local(value: str, expected: bool) -> None:
    assert is_local_service(value, "ns", "job", {"heads"}) is expected


def test_local_container_form(tmp_path: Path) -> None:
    pod = {
        "metadata": {"name": "job-0", "namespace": "ns", "uid": "u", "labels": {"rank": "0"}},
        "spec": {
            "subdomain": "job",
            "nodeName": "n1",
            "containers": [
                {
                    "name": "main",
                    "command": ["python3", "-m", "trainer"],
                    "args": ["--out=/data/out", "/data"],
                    "terminationMessagePath": "/dev/termination-log",
                    "env": [
                        {"name": "MASTER_ADDR", "value": "job-0.job"},
                        {"name": "MASTER_PORT", "value": "29500"},
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "RANK", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['rank']"}}},
                        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    ],
                }
            ],
        },
    }
    ports: list[str] = []

    def port_for(master: str) -> int:
        ports.append(master)
        return 40000

    local = local_container(
        pod,
        volumes={"/data": tmp_path / "pvc"},
        pod_dir=tmp_path / "pod",
        headless=set(),
        port_for=port_for,
        base_env={"PATH": "/bin"},
    )
    assert local.argv == [sys.executable, "-m", "trainer", f"--out={tmp_path}/pvc/out", str(tmp_path / "pvc")]
    assert local.env["MASTER_ADDR"] == "127.0.0.1" and local.env["MASTER_PORT"] == "40000"
    assert ports == ["job-0.job"]
    assert (local.env["NODE"], local.env["RANK"], local.env["IP"], local.env["PATH"]) == (
        "n1",
        "0",
        "127.0.0.1",
        "/bin",
    )
    assert local.termination_file == tmp_path / "pod" / "termination-log"
    assert local.env["KUBETUNE_RESULT_FILE"] == str(local.termination_file)


def test_strategic_merge_patch_merges_containers_by_name() -> None:
    pod = {
        "spec": {
            "containers": [
                {"name": "a", "image": "x:1", "env": [{"name": "K", "value": "1"}]},
                {"name": "b", "image": "y:1"},
            ],
            "nodeSelector": {"k": "v"},
        }
    }
    patch = {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "spec": {
            "containers": [
                {"name": "a", "image": "x:2", "env": [{"name": "J", "value": "2"}]},
                {"name": "b", "$patch": "delete"},
                {"name": "c", "image": "z"},
            ]
        },
    }
    assert strategic_merge_patch(pod, patch) == {
        "spec": {
            "containers": [
                {"name": "a", "image": "x:2", "env": [{"name": "K", "value": "1"}, {"name": "J", "value": "2"}]},
                {"name": "c", "image": "z"},
            ],
            "nodeSelector": {"k": "v"},
        }
    }
    assert strategic_merge_patch({"args": ["a"]}, {"args": ["b"]}) == {"args": ["b"]}


def test_endpoints_of_the_job_service_get_the_local_rendezvous_port(tmp_path: Path) -> None:
    pod = {
        "metadata": {"name": "job-1", "namespace": "ns"},
        "spec": {
            "subdomain": "job",
            "containers": [
                {
                    "name": "main",
                    "command": ["torchrun", "--rdzv-endpoint=job-0.job:29400", "train.py"],
                    "env": [
                        {"name": "MASTER_ADDR", "value": "job-0.job"},
                        {"name": "MASTER_PORT", "value": "29500"},
                        {"name": "OTHER", "value": "example.com:443"},
                    ],
                }
            ],
        },
    }
    local = local_container(pod, volumes={}, pod_dir=tmp_path, headless=set(), port_for=lambda host: 41000, base_env={})
    assert local.argv == ["torchrun", "--rdzv-endpoint=127.0.0.1:41000", "train.py"]
    assert (local.env["MASTER_PORT"], local.env["OTHER"]) == ("41000", "example.com:443")


def test_a_custom_termination_path_gets_no_result_file(tmp_path: Path) -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [{"name": "main", "command": ["true"], "terminationMessagePath": "/tmp/msg"}]},
    }
    local = local_container(pod, volumes={}, pod_dir=tmp_path, headless=set(), port_for=lambda host: 1, base_env={})
    assert local.termination_file is None and "KUBETUNE_RESULT_FILE" not in local.env
