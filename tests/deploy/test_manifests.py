"""The plain manifests, the RBAC everywhere, the examples, the kind cluster and the images' build files."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubetune.api import SpecError, parse
from kubetune.testing.tools import Tools

from .support import CHART, EVERYTHING, KUBERNETES_VERSION, ROOT, VALUE_SETS, Render, component, documents, run_tool

MANIFESTS = ROOT / "manifests"
RBAC_SOURCES = [
    MANIFESTS / "rbac" / "operator.yaml",
    MANIFESTS / "rbac" / "trainer.yaml",
    CHART / "templates" / "clusterrole.yaml",
    CHART / "templates" / "trainer-rbac.yaml",
]
SPOT_LABELS = {
    "karpenter.sh/capacity-type": "spot",
    "cloud.google.com/gke-spot": "true",
    "eks.amazonaws.com/capacityType": "SPOT",
}
SPOT_TAINT = {"key": "kubernetes.azure.com/scalesetpriority", "value": "spot", "effect": "NoSchedule"}


def _load(path: Path) -> list[dict[str, Any]]:
    return documents(path.read_text(encoding="utf-8"))


def _kustomized(tools: Tools) -> list[dict[str, Any]]:
    done = run_tool(tools.kubectl, "kustomize", MANIFESTS)
    assert done.returncode == 0, done.stderr
    return documents(done.stdout)


def _rules(docs: list[dict[str, Any]], kind: str) -> list[list[dict[str, Any]]]:
    return [doc["rules"] for doc in docs if doc["kind"] == kind]


def _security_holds(pod_spec: dict[str, Any]) -> None:
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod_spec["containers"]:
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert {mount["mountPath"] for mount in container["volumeMounts"]} >= {"/tmp"}


def test_kustomize_builds_the_manifests_and_every_builtin_object_validates(tools: Tools) -> None:
    docs = _kustomized(tools)
    kinds = sorted(f"{doc['kind']}/{doc['metadata']['name']}" for doc in docs)
    assert kinds == sorted(
        [
            "ClusterKopfPeering/kubetune",
            "ClusterRole/kubetune-operator",
            "ClusterRoleBinding/kubetune-operator",
            "CustomResourceDefinition/clusterkopfpeerings.kopf.dev",
            "CustomResourceDefinition/kopfpeerings.kopf.dev",
            "CustomResourceDefinition/trainingjobs.kubetune.dev",
            "Deployment/kubetune-operator",
            "Namespace/kubetune-system",
            "Role/kubetune-trainer",
            "RoleBinding/kubetune-trainer",
            "Service/kubetune-operator-metrics",
            "ServiceAccount/kubetune-operator",
            "ServiceAccount/kubetune-trainer",
        ]
    )
    for doc in docs:
        if doc["apiVersion"] != "kopf.dev/v1":
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_kustomized_crd_is_the_source(tools: Tools) -> None:
    source = yaml.safe_load((MANIFESTS / "crds" / "trainingjobs.kubetune.dev.yaml").read_text(encoding="utf-8"))
    [built] = [doc for doc in _kustomized(tools) if doc["metadata"]["name"] == "trainingjobs.kubetune.dev"]
    assert built == source


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_no_rbac_rule_uses_a_wildcard_in_the_chart(render: Render, name: str) -> None:
    for kind in ("ClusterRole", "Role"):
        for rules in _rules(render(*VALUE_SETS[name]), kind):
            for rule in rules:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[field], rule
                assert "resourceNames" not in rule and "nonResourceURLs" not in rule


def test_no_rbac_rule_uses_a_wildcard_in_the_manifests(tools: Tools) -> None:
    docs = _kustomized(tools)
    for kind in ("ClusterRole", "Role"):
        for rules in _rules(docs, kind):
            for rule in rules:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[field], rule


@pytest.mark.parametrize("path", RBAC_SOURCES, ids=lambda path: path.name)
def test_every_rbac_rule_has_a_comment_above_it(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    starts = [number for number, line in enumerate(lines) if re.match(r"^\s*- apiGroups:", line)]
    assert starts
    assert [lines[number - 1].strip() for number in starts if not lines[number - 1].strip().startswith("#")] == []


def test_the_chart_grants_exactly_what_the_manifests_grant(tools: Tools, render: Render) -> None:
    manifests = _kustomized(tools)
    chart = render(*EVERYTHING)
    assert _rules(chart, "ClusterRole") == _rules(manifests, "ClusterRole")
    assert set(map(str, _rules(chart, "Role"))) == set(map(str, _rules(manifests, "Role")))


def test_the_operator_needs_no_more_than_its_job() -> None:
    [role] = [doc for doc in _load(MANIFESTS / "rbac" / "operator.yaml") if doc["kind"] == "ClusterRole"]
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert ("", "secrets", "get") not in granted
    powerful = {"update", "deletecollection", "escalate", "bind", "impersonate"}
    only_finalizers = {("kubetune.dev", "trainingjobs/finalizers", "update")}
    assert {grant for grant in granted if grant[2] in powerful} == only_finalizers
    assert ("kubetune.dev", "trainingjobs/status", "patch") in granted
    assert ("", "pods", "create") in granted and ("", "pods", "patch") not in granted
    [trainer] = [doc for doc in _load(MANIFESTS / "rbac" / "trainer.yaml") if doc["kind"] == "Role"]
    assert trainer["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"]}]


def test_the_operator_deployment_is_locked_down_in_manifests_and_chart(tools: Tools, render: Render) -> None:
    for docs in (_kustomized(tools), render(), render(*EVERYTHING)):
        deployments = [doc for doc in docs if doc["kind"] in {"Deployment", "StatefulSet"}]
        assert deployments
        for deployment in deployments:
            _security_holds(deployment["spec"]["template"]["spec"])
        [operator] = [doc for doc in deployments if component(doc) == "operator"]
        assert operator["spec"]["replicas"] == 1
        assert operator["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda path: path.name)
def test_every_example_is_a_valid_trainingjob(path: Path) -> None:
    docs = _load(path)
    assert docs
    for doc in docs:
        try:
            parse(doc)
        except SpecError as error:
            pytest.fail(f"{path.name}: {error}")


def test_the_e2e_script_turns_the_example_into_a_valid_spot_tolerant_job() -> None:
    script = ROOT / "scripts" / "kind-e2e.sh"
    function = re.search(r"^job_manifest\(\) \{.*?^\}", script.read_text(encoding="utf-8"), re.S | re.M)
    assert function
    done = subprocess.run(
        [
            "bash",
            "-c",
            f"set -euo pipefail; TRAINER_IMAGE=example/trainer:e2e\n{function.group(0)}\n"
            "job_manifest examples/digits-ddp.yaml digits-ddp-spot 400",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    job = parse(yaml.safe_load(done.stdout))
    assert job.name == "digits-ddp-spot"
    assert job.manifest["spec"]["image"] == "example/trainer:e2e"
    assert job.manifest["spec"]["hyperparameters"]["epochs"] == 400
    assert job.manifest["spec"]["tolerations"] == [{"operator": "Equal", **SPOT_TAINT}]


def test_the_kind_cluster_has_on_demand_and_tainted_spot_workers() -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text(encoding="utf-8"))
    nodes = config["nodes"]
    assert [node["role"] for node in nodes] == ["control-plane"] + ["worker"] * 4
    on_demand = [node for node in nodes if node.get("labels") == {"node.kubernetes.io/capacity": "on-demand"}]
    spot = [node for node in nodes if node.get("labels") == SPOT_LABELS]
    assert len(on_demand) == 2 and len(spot) == 2
    for node in spot:
        [patch] = [yaml.safe_load(text) for text in node["kubeadmConfigPatches"]]
        assert patch["kind"] == "JoinConfiguration"
        assert patch["nodeRegistration"]["taints"] == [SPOT_TAINT]


@pytest.mark.parametrize(
    ("dockerfile", "entrypoint"),
    [
        ("operator/Dockerfile", '["kubetune", "operator"]'),
        ("trainer/Dockerfile", '["python", "-m", "kubetune_trainer"]'),
    ],
)
def test_the_images_run_as_non_root_with_the_projects_entrypoint(dockerfile: str, entrypoint: str) -> None:
    text = (ROOT / dockerfile).read_text(encoding="utf-8")
    assert f"ENTRYPOINT {entrypoint}" in text
    assert re.findall(r"^USER (.+)$", text, re.M)[-1] == "65532:65532"
    assert 'pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"' in text
    pinned = re.search(r'"torch==([^"]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pinned and f"ARG TORCH_VERSION={pinned.group(1)}" in text
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text


def test_the_build_context_is_only_what_pip_install_needs() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!operator/", "!trainer/"} <= set(lines)


def test_sync_crd_script_reports_the_copy_in_sync() -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "sync-crd.sh")], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "in sync" in done.stdout


def _copy_sources(dockerfile: str) -> list[str]:
    """The build-context paths a Dockerfile copies (COPY lines without --from)."""
    lines = (ROOT / dockerfile).read_text(encoding="utf-8").splitlines()
    return [
        source for line in lines if line.startswith("COPY ") and "--from=" not in line for source in line.split()[1:-1]
    ]


def test_the_build_context_yields_a_wheel_that_ships_the_crd(tmp_path: Path) -> None:
    sources = _copy_sources("operator/Dockerfile")
    assert sources == _copy_sources("trainer/Dockerfile")
    allowed = {
        line[1:] for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines() if line.startswith("!")
    }
    assert set(sources) <= allowed
    context = tmp_path / "context"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "Dockerfile", "build")
    for source in sources:
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, context / source, symlinks=True, ignore=ignore)
        else:
            context.mkdir(exist_ok=True)
            shutil.copy2(ROOT / source, context / source)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [wheel] = tmp_path.glob("kubetune-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("kubetune/crds/trainingjobs.kubetune.dev.yaml")
        assert "kubetune_trainer/__main__.py" in archive.namelist()
    assert shipped == (MANIFESTS / "crds" / "trainingjobs.kubetune.dev.yaml").read_bytes()
