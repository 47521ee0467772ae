"""The fake kubelet's pure decisions: its nodes, which node a pod fits, and how a pod's container runs locally.

Decides: the default fake node set (two on-demand nodes, two tainted spot nodes); whether a pod fits a node
(nodeSelector, required node affinity ``In``/``NotIn``/``Exists``/``DoesNotExist``, tolerations against
``NoSchedule``/``NoExecute`` taints); and the local form of a container — its argv (a leading ``python``/``python3``
becomes this interpreter), its environment (literal values, downward-API field references, service DNS names of the
job rewritten to 127.0.0.1, volume mount paths rewritten to local folders, the termination-message file).

Pure: no HTTP, no processes, no kmock.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

DEFAULT_TERMINATION_PATH = "/dev/termination-log"
SPOT_TAINT = {"key": "kubernetes.azure.com/scalesetpriority", "value": "spot", "effect": "NoSchedule"}


@dataclass(frozen=True)
class FakeNode:
    """A node the fake kubelet registers and runs pods on."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()
    cpu: str = "8"
    memory: str = "32Gi"

    def manifest(self) -> Obj:
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", **self.labels}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
            "spec": {"taints": [dict(t) for t in self.taints]} if self.taints else {},
        }


def on_demand_node(name: str) -> FakeNode:
    return FakeNode(name, {"node.kubernetes.io/capacity": "on-demand", "karpenter.sh/capacity-type": "on-demand"})


def spot_node(name: str) -> FakeNode:
    return FakeNode(
        name,
        {
            "node.kubernetes.io/capacity": "spot",
            "karpenter.sh/capacity-type": "spot",
            "cloud.google.com/gke-spot": "true",
            "kubernetes.azure.com/scalesetpriority": "spot",
        },
        (SPOT_TAINT,),
    )


DEFAULT_NODES: tuple[FakeNode, ...] = (
    on_demand_node("ondemand-1"),
    on_demand_node("ondemand-2"),
    spot_node("spot-1"),
    spot_node("spot-2"),
)


# -- placement -------------------------------------------------------------------------------------------------------


def tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists":
            if not tol.get("key") or tol["key"] == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expression_holds(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = expression.get("key", ""), expression.get("operator", "In"), expression.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False


def fits(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """Whether the scheduler may put ``pod`` on ``node`` (labels, taints, required affinity, readiness)."""
    spec = pod.get("spec", {})
    labels = node.get("metadata", {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    tolerations = spec.get("tolerations") or []
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if terms and not any(
        all(_expression_holds(e, labels) for e in term.get("matchExpressions") or []) for term in terms
    ):
        return False
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def choose_node(pod: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]], load: Mapping[str, int]) -> str | None:
    """The fitting node with the fewest pods (ties by name); None when nothing fits."""
    fitting = sorted((load.get(n["metadata"]["name"], 0), n["metadata"]["name"]) for n in nodes if fits(pod, n))
    return fitting[0][1] if fitting else None


# -- the local form of a container -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalContainer:
    """What to execute for a pod's first container, and where its termination message is written."""

    argv: list[str]
    env: dict[str, str]
    termination_file: Path | None


def _field_ref(pod: Mapping[str, Any], path: str) -> str:
    found = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if found:
        return str((pod.get("metadata", {}).get(found.group(1)) or {}).get(found.group(2), ""))
    if path == "status.podIP" or path == "status.hostIP":
        return "127.0.0.1"
    current: Any = pod
    for part in path.split("."):
        current = current.get(part) if isinstance(current, Mapping) else None
    return "" if current is None else str(current)


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def is_local_service(value: str, namespace: str, subdomain: str, headless: set[str] | frozenset[str]) -> bool:
    """Whether ``value`` names the pod's job service (``host.subdomain[.ns[.svc[.cluster.local]]]``) or a headless
    service of its namespace. Set look-ups, no regular expression per service: this runs for every value of every
    pod, against every headless service of the namespace."""
    for suffix in ("", f".{namespace}", f".{namespace}.svc", f".{namespace}.svc.cluster.local"):
        if suffix and not value.endswith(suffix):
            continue
        base = value[: len(value) - len(suffix)]
        if base in headless:
            return True
        if subdomain and (
            base == subdomain or (base.endswith("." + subdomain) and _DNS_LABEL.fullmatch(base[: -len(subdomain) - 1]))
        ):
            return True
    return False


def local_container(
    pod: Mapping[str, Any],
    *,
    volumes: Mapping[str, Path],
    pod_dir: Path,
    headless: set[str],
    port_for: Callable[[str], int],
    base_env: Mapping[str, str],
) -> LocalContainer:
    """The argv and environment that run ``pod``'s first container as a local process.

    ``volumes`` maps each mount path to its local folder; ``port_for(master_addr)`` gives the local port that stands
    for the job's rendezvous port (MASTER_PORT, PET_MASTER_PORT, and the port of a ``host:port`` value whose host is
    the job's service)."""
    spec = pod.get("spec", {})
    container = (spec.get("containers") or [{}])[0]
    namespace = pod.get("metadata", {}).get("namespace", "default")
    subdomain = spec.get("subdomain", "")

    def localise(value: str) -> str:
        if is_local_service(value, namespace, subdomain, headless):
            return "127.0.0.1"
        endpoint = re.fullmatch(r"(.*?=)?([^=:/\s]+):(\d+)", value)  # host:port, or --flag=host:port
        if endpoint and is_local_service(endpoint.group(2), namespace, subdomain, headless):
            return f"{endpoint.group(1) or ''}127.0.0.1:{port_for(endpoint.group(2))}"
        for mount, local in sorted(volumes.items(), key=lambda item: -len(item[0])):
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return str(local) + value[len(mount.rstrip("/")) :]
            if "=" in value:
                key, _, rest = value.partition("=")
                if rest == mount or rest.startswith(mount.rstrip("/") + "/"):
                    return f"{key}={local}{rest[len(mount.rstrip('/')) :]}"
        return value

    env: dict[str, str] = dict(base_env)
    declared: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            declared[item["name"]] = str(item["value"])
        elif (item.get("valueFrom") or {}).get("fieldRef"):
            declared[item["name"]] = _field_ref(pod, item["valueFrom"]["fieldRef"].get("fieldPath", ""))
    master = declared.get("MASTER_ADDR") or declared.get("PET_MASTER_ADDR") or subdomain
    for name, value in declared.items():
        if name in ("MASTER_PORT", "PET_MASTER_PORT"):
            env[name] = str(port_for(master))
        else:
            env[name] = localise(value)
    termination: Path | None = None
    if container.get("terminationMessagePath", DEFAULT_TERMINATION_PATH) == DEFAULT_TERMINATION_PATH:
        termination = pod_dir / "termination-log"
        env["KUBETUNE_RESULT_FILE"] = str(termination)
    argv = [localise(str(a)) for a in list(container.get("command") or []) + list(container.get("args") or [])]
    if argv and re.fullmatch(r"python(3(\.\d+)?)?", Path(argv[0]).name):
        argv[0] = sys.executable
    return LocalContainer(argv, env, termination)
