"""Which resources the test API server serves, and how it describes them: discovery documents and kubectl tables.

Decides: the built-in resources (core/v1, apps/v1, batch/v1, coordination.k8s.io/v1, events.k8s.io/v1, policy/v1,
apiextensions.k8s.io/v1) with their kinds, short names, scope and subresources; how an applied
CustomResourceDefinition becomes served resources (one per served version, its schema, printer columns, short names
and categories); the discovery documents (``/api``, ``/apis``, ``/api/v1``, ``/apis/{group}/{version}``); and the
``meta.k8s.io/v1`` Table rendering that ``kubectl get`` asks for (printer columns for custom resources, the usual
columns for pods).

Pure: imports no HTTP, no kmock, no kopf; only the standard library.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceInfo:
    """One served resource (a plural of one group/version) and what the server knows about it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status: bool = False
    subresources: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = None
    printer_columns: tuple[Mapping[str, Any], ...] = ()
    storage_version: str = ""
    verbs: tuple[str, ...] = ALL_VERBS
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``trainingjobs.kubetune.dev`` or ``pods``: the name that error messages use."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def key(self) -> tuple[str, str]:
        """Objects are stored per (group, plural): every version of a resource sees the same objects."""
        return (self.group, self.plural)


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool,
    *,
    short: tuple[str, ...] = (),
    status: bool = False,
    subresources: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
) -> ResourceInfo:
    subs = (("status",) if status else ()) + subresources
    return ResourceInfo(
        group,
        version,
        plural,
        kind,
        namespaced,
        singular=kind.lower(),
        short_names=short,
        categories=categories,
        status=status,
        subresources=subs,
        storage_version=version,
    )


BUILTINS: tuple[ResourceInfo, ...] = (
    _builtin("", "v1", "namespaces", "Namespace", False, short=("ns",), status=True),
    _builtin("", "v1", "nodes", "Node", False, short=("no",), status=True),
    _builtin(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        short=("po",),
        status=True,
        subresources=("binding", "eviction", "log"),
        categories=("all",),
    ),
    _builtin("", "v1", "services", "Service", True, short=("svc",), status=True, categories=("all",)),
    _builtin("", "v1", "endpoints", "Endpoints", True, short=("ep",)),
    _builtin("", "v1", "configmaps", "ConfigMap", True, short=("cm",)),
    _builtin("", "v1", "secrets", "Secret", True),
    _builtin("", "v1", "serviceaccounts", "ServiceAccount", True, short=("sa",)),
    _builtin("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, short=("pvc",), status=True),
    _builtin("", "v1", "events", "Event", True, short=("ev",)),
    _builtin("apps", "v1", "deployments", "Deployment", True, short=("deploy",), status=True, categories=("all",)),
    _builtin("apps", "v1", "statefulsets", "StatefulSet", True, short=("sts",), status=True, categories=("all",)),
    _builtin("batch", "v1", "jobs", "Job", True, status=True, categories=("all",)),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease", True),
    _builtin("events.k8s.io", "v1", "events", "Event", True, short=("ev",)),
    _builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, short=("pdb",), status=True),
    _builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        short=("crd", "crds"),
        status=True,
    ),
)


def crd_resources(crd: Mapping[str, Any]) -> list[ResourceInfo]:
    """The resources an applied CRD serves: one per served version."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    versions = spec.get("versions", [])
    storage = next((v["name"] for v in versions if v.get("storage")), versions[0]["name"] if versions else "")
    out: list[ResourceInfo] = []
    for version in versions:
        if not version.get("served", True):
            continue
        subs = version.get("subresources") or {}
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        out.append(
            ResourceInfo(
                group=spec.get("group", ""),
                version=version["name"],
                plural=names.get("plural", ""),
                kind=names.get("kind", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular") or names.get("kind", "").lower(),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status="status" in subs,
                subresources=tuple(k for k in ("status", "scale") if k in subs),
                schema=schema,
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                storage_version=storage,
            )
        )
    return out


def crd_accepted_status(crd: Mapping[str, Any], now: str) -> Obj:
    """The status a real server gives an accepted CRD: NamesAccepted and Established, True."""
    names = dict(crd.get("spec", {}).get("names", {}))
    names.setdefault("singular", names.get("kind", "").lower())
    names.setdefault("listKind", names.get("kind", "") + "List")
    conditions = [
        {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now}
        for t, r, m in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    versions = [v["name"] for v in crd.get("spec", {}).get("versions", []) if v.get("storage")]
    return {"conditions": conditions, "acceptedNames": names, "storedVersions": versions}


# -- discovery --------------------------------------------------------------------------------------------------------


def api_versions_doc() -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def _groups(resources: Iterable[ResourceInfo]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for info in resources:
        if not info.group:
            continue
        versions = groups.setdefault(info.group, [])
        if info.version not in versions:
            versions.append(info.version)
    return groups


def _group_doc(group: str, versions: list[str], preferred: str) -> Obj:
    vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    pref = next((v for v in vs if v["version"] == preferred), vs[0])
    return {"name": group, "versions": vs, "preferredVersion": pref}


def _preferred(resources: Iterable[ResourceInfo], group: str) -> str:
    return next((r.storage_version for r in resources if r.group == group and r.storage_version), "")


def api_groups_doc(resources: list[ResourceInfo]) -> Obj:
    groups = [_group_doc(g, vs, _preferred(resources, g)) for g, vs in sorted(_groups(resources).items())]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group_doc(resources: list[ResourceInfo], group: str) -> Obj | None:
    versions = _groups(resources).get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions, _preferred(resources, group))}


def resource_list_doc(resources: list[ResourceInfo], group: str, version: str) -> Obj | None:
    """The APIResourceList of one group/version, subresources listed as ``plural/sub``; None when not served."""
    served = [r for r in resources if r.group == group and r.version == version]
    if not served:
        return None
    items: list[Obj] = []
    for info in served:
        entry: Obj = {
            "name": info.plural,
            "singularName": info.singular,
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": list(info.verbs),
        }
        if info.short_names:
            entry["shortNames"] = list(info.short_names)
        if info.categories:
            entry["categories"] = list(info.categories)
        items.append(entry)
        for sub in info.subresources:
            verbs = (
                ["create"]
                if sub in ("binding", "eviction")
                else ["get"]
                if sub == "log"
                else ["get", "patch", "update"]
            )
            sub_kind = {"binding": "Binding", "eviction": "Eviction", "scale": "Scale"}.get(sub, info.kind)
            items.append(
                {
                    "name": f"{info.plural}/{sub}",
                    "singularName": "",
                    "namespaced": info.namespaced,
                    "kind": sub_kind,
                    "verbs": verbs,
                }
            )
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": served[0].api_version, "resources": items}


# -- tables ------------------------------------------------------------------------------------------------------------


def evaluate_path(obj: Mapping[str, Any], json_path: str) -> Any:
    """The value at a simple ``.a.b.c`` JSONPath (``{.a.b}`` too, and ``[0]`` indexes); None if absent."""
    path = json_path.strip().removeprefix("{").removesuffix("}").lstrip(".")
    current: Any = obj
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("[") and part.endswith("]"):
            index = part[1:-1]
            if not isinstance(current, list) or not index.lstrip("-").isdigit() or int(index) >= len(current):
                return None
            current = current[int(index)]
        elif isinstance(current, Mapping):
            current = current.get(part)
        else:
            return None
        if current is None:
            return None
    return current


def human_age(timestamp: str | None, now: datetime.datetime) -> str:
    """``5s``, ``3m``, ``2h``, ``4d``: how kubectl shows an age."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    seconds = max(0, int((now - then).total_seconds()))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _column(name: str, type_: str = "string", fmt: str = "", priority: int = 0, description: str = "") -> Obj:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


def _pod_cells(pod: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    containers = pod.get("spec", {}).get("containers") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    reason = pod.get("status", {}).get("reason") or pod.get("status", {}).get("phase") or "Pending"
    for status in statuses:
        state = status.get("state", {})
        if "terminated" in state and reason not in ("Succeeded",):
            reason = state["terminated"].get("reason") or reason
        elif "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
    if pod.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    return [
        pod.get("metadata", {}).get("name", ""),
        f"{ready}/{len(containers)}",
        reason,
        restarts,
        human_age(pod.get("metadata", {}).get("creationTimestamp"), now),
        pod.get("status", {}).get("podIP") or "<none>",
        pod.get("spec", {}).get("nodeName") or "<none>",
    ]


def table_columns(info: ResourceInfo) -> list[Obj]:
    name = _column("Name", fmt="name", description="Name must be unique within a namespace.")
    if info.key == ("", "pods"):
        return [
            name,
            _column("Ready"),
            _column("Status"),
            _column("Restarts", "integer"),
            _column("Age"),
            _column("IP", priority=1),
            _column("Node", priority=1),
        ]
    if info.printer_columns:
        return [name] + [
            _column(
                c["name"],
                "string" if c.get("type") == "date" else c.get("type", "string"),
                c.get("format", ""),
                int(c.get("priority", 0)),
                c.get("description", ""),
            )
            for c in info.printer_columns
        ]
    return [name, _column("Age", description="CreationTimestamp")]


def table_cells(info: ResourceInfo, obj: Mapping[str, Any], now: datetime.datetime) -> list[Any]:
    if info.key == ("", "pods"):
        return _pod_cells(obj, now)
    name = obj.get("metadata", {}).get("name", "")
    if not info.printer_columns:
        return [name, human_age(obj.get("metadata", {}).get("creationTimestamp"), now)]
    cells: list[Any] = [name]
    for column in info.printer_columns:
        value = evaluate_path(obj, column.get("jsonPath", ""))
        if column.get("type") == "date":
            cells.append(human_age(value, now) if isinstance(value, str) else None)
        else:
            cells.append(value)
    return cells


def table(
    info: ResourceInfo, objects: list[Obj], resource_version: str, now: datetime.datetime, *, continue_token: str = ""
) -> Obj:
    """A ``meta.k8s.io/v1`` Table of ``objects``; each row carries its full object."""
    rows = [{"cells": table_cells(info, obj, now), "object": obj} for obj in objects]
    meta: Obj = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": table_columns(info),
        "rows": rows,
    }
