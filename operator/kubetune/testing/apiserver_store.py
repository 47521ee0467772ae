"""The test API server's object store and the real API server's rules for writing to it.

Decides: what every verb does to the stored objects the way kube-apiserver does it — uid, namespace, resourceVersion
(one global counter), creationTimestamp and generation on create; generation bumps only when something outside metadata
(and status, when the resource has a status subresource) changes; name and label syntax; the immutability of pod specs
(nodeName is set through the binding subresource only, which also sets PodScheduled); the status subresource rules
(writes to ``/status`` change only status, writes to the object ignore status); optimistic concurrency (409 Conflict on
a stale resourceVersion, or on a uid in the body that is not the object's); defaulting, pruning and validation of custom
resources against the CRD's ``openAPIV3Schema`` (422 Invalid naming each field); deletion with finalizers
(deletionTimestamp, removal when the last finalizer goes); graceful deletion of pods bound to a Ready node (the kubelet
finishes it); ownerReference garbage collection and namespace deletion; CRDs starting to serve their resources; and the
bounded watch history (older resourceVersions are Gone, 410).

Thread-safe (one lock; every method is synchronous), so the HTTP layer and in-process test code share it.
Imports no HTTP and no kmock.
"""

from __future__ import annotations

import copy
import datetime
import random
import re
import string
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubetune.api import schema as structural
from kubetune.testing.apiserver_patches import Selector
from kubetune.testing.apiserver_resources import BUILTINS, Obj, ResourceInfo, crd_accepted_status, crd_resources

ObjectKey = tuple[str, str]  # (namespace or "", name)
StoreKey = tuple[str, str]  # (group, plural)

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """An error the server answers with a ``Status`` body, like kube-apiserver."""

    def __init__(
        self, code: int, message: str, *, reason: str | None = None, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = dict(details or {})

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(info: ResourceInfo, name: str) -> ApiError:
    return ApiError(
        404,
        f'{info.group_resource} "{name}" not found',
        details={"name": name, "group": info.group, "kind": info.plural},
    )


def gone(message: str) -> ApiError:
    return ApiError(410, message, reason="Expired")


@dataclass(frozen=True)
class WatchEvent:
    """One change as watchers see it: ``old`` is the previous state (None for ADDED)."""

    rv: int
    key: StoreKey
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None


Listener = Callable[[WatchEvent], None]


def utc_now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _without(obj: Mapping[str, Any], *keys: str) -> Obj:
    return {k: v for k, v in obj.items() if k not in keys}


class Store:
    """Every object of every served resource, and the rules for changing them."""

    def __init__(
        self, *, history: int = 10_000, namespaces: Iterable[str] = DEFAULT_NAMESPACES, require_namespaces: bool = True
    ) -> None:
        self._lock = threading.RLock()
        self._rv = 0
        self._history: deque[WatchEvent] = deque()
        self._history_limit = history
        self._compacted = 0
        self._objects: dict[StoreKey, dict[ObjectKey, Obj]] = {}
        self._builtins = {(r.group, r.version, r.plural): r for r in BUILTINS}
        self._custom: dict[str, list[ResourceInfo]] = {}  # CRD name -> its served resources
        self._listeners: list[Listener] = []
        self.require_namespaces = require_namespaces
        for name in namespaces:
            self.create(self.lookup("namespaces"), None, {"metadata": {"name": name}})

    # -- resources ------------------------------------------------------------------------------------------------

    def resources(self) -> list[ResourceInfo]:
        with self._lock:
            return list(self._builtins.values()) + [r for rs in self._custom.values() for r in rs]

    def resource(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        with self._lock:
            found = self._builtins.get((group, version, plural))
            if found is not None:
                return found
            return next(
                (
                    r
                    for rs in self._custom.values()
                    for r in rs
                    if (r.group, r.version, r.plural) == (group, version, plural)
                ),
                None,
            )

    def lookup(self, name: str) -> ResourceInfo:
        """A resource by plural, singular, kind, short name or ``plural.group`` (custom resources first)."""
        lowered = name.lower()
        candidates = [r for rs in self._custom.values() for r in rs] + list(self._builtins.values())
        for info in candidates:
            names = {info.plural, info.singular, info.kind.lower(), info.group_resource, *info.short_names}
            if lowered in names and (info.version == info.storage_version or not info.storage_version):
                return info
        raise KeyError(f"no served resource is called {name!r}")

    def resource_for(self, api_version: str, kind: str) -> ResourceInfo:
        group, _, version = api_version.rpartition("/")
        for info in self.resources():
            if (info.group, info.version, info.kind) == (group, version, kind):
                return info
        raise KeyError(f"no served resource has apiVersion {api_version!r} and kind {kind!r}")

    # -- watching -------------------------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def watch(self, info: ResourceInfo, since: int | None, listener: Listener) -> list[WatchEvent]:
        """Subscribe ``listener`` and return what it must see first: history after ``since``, or the current
        objects as ADDED when ``since`` is None. Raises 410 Gone when ``since`` is older than the history."""
        with self._lock:
            if since is None:
                backlog = [
                    WatchEvent(self._rv, info.key, "ADDED", obj, None)
                    for obj in self._objects.get(info.key, {}).values()
                ]
            else:
                if since < self._compacted:
                    raise gone(f"too old resource version: {since} ({self._compacted})")
                backlog = [e for e in self._history if e.rv > since and e.key == info.key]
            self._listeners.append(listener)
            return backlog

    def compact(self) -> int:
        """Forget the whole watch history, as etcd compaction does; returns the compacted resourceVersion."""
        with self._lock:
            self._history.clear()
            self._compacted = self._rv
            return self._rv

    def _record(self, key: StoreKey, type_: str, obj: Obj, old: Obj | None) -> None:
        event = WatchEvent(int(obj["metadata"]["resourceVersion"]), key, type_, obj, old)
        if len(self._history) >= self._history_limit:
            self._compacted = self._history.popleft().rv
        self._history.append(event)
        for listener in list(self._listeners):
            listener(event)

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    # -- reading --------------------------------------------------------------------------------------------------

    def get(self, info: ResourceInfo, namespace: str | None, name: str) -> Obj:
        with self._lock:
            found = self._objects.get(info.key, {}).get((namespace or "" if info.namespaced else "", name))
            if found is None:
                raise not_found(info, name)
            return found

    def select(
        self, info: ResourceInfo, namespace: str | None, selector: Selector | None = None
    ) -> tuple[list[Obj], int]:
        with self._lock:
            objs = [
                obj
                for (ns, _), obj in sorted(self._objects.get(info.key, {}).items())
                if (not namespace or not info.namespaced or ns == namespace)
                and (selector is None or selector.matches(obj))
            ]
            return objs, self._rv

    # -- writing --------------------------------------------------------------------------------------------------

    def create(self, info: ResourceInfo, namespace: str | None, body: Obj, *, owned: bool = False) -> Obj:
        """POST. ``owned``: the caller hands ``body`` over (freshly decoded, used nowhere else): kept without a copy."""
        with self._lock:
            obj = body if owned else copy.deepcopy(body)
            meta = obj.setdefault("metadata", {})
            if not isinstance(meta, dict):
                raise ApiError(400, "metadata must be an object")
            if not meta.get("name") and meta.get("generateName"):
                suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
                meta["name"] = meta["generateName"] + suffix
            name = meta.get("name")
            if not name:
                raise ApiError(
                    422,
                    f"{info.kind}.{info.group or 'core'} is invalid: metadata.name: Required value",
                    details={
                        "kind": info.kind,
                        "group": info.group,
                        "causes": [
                            {"reason": "FieldValueRequired", "message": "Required value", "field": "metadata.name"}
                        ],
                    },
                )
            if info.namespaced:
                body_ns = meta.get("namespace")
                if namespace and body_ns and body_ns != namespace:
                    raise ApiError(
                        400, "the namespace of the provided object does not match the namespace sent on the request"
                    )
                namespace = namespace or body_ns or "default"
                self._check_namespace(namespace)
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
                namespace = ""
            key = (namespace, name)
            if key in self._objects.get(info.key, {}):
                raise ApiError(
                    409,
                    f'{info.group_resource} "{name}" already exists',
                    reason="AlreadyExists",
                    details={"name": name, "group": info.group, "kind": info.plural},
                )
            obj["apiVersion"], obj["kind"] = info.api_version, info.kind
            for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
                meta.pop(field, None)
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=utc_now(), generation=1)
            obj = self._admit_create(info, obj)
            _check_metadata(info, obj)
            obj = self._validated(info, obj)
            obj["metadata"]["resourceVersion"] = self._next_rv()
            self._objects.setdefault(info.key, {})[key] = obj
            self._record(info.key, "ADDED", obj, None)
            self._after_write(info, obj)
            return obj

    def _check_namespace(self, namespace: str) -> None:
        if not self.require_namespaces:
            if ("", namespace) not in self._objects.get(("", "namespaces"), {}):
                self.create(self._builtins[("", "v1", "namespaces")], None, {"metadata": {"name": namespace}})
            return
        existing = self._objects.get(("", "namespaces"), {}).get(("", namespace))
        if existing is None:
            raise ApiError(
                404, f'namespaces "{namespace}" not found', details={"name": namespace, "kind": "namespaces"}
            )
        if existing["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                f"unable to create new content in namespace {namespace} because it is being terminated",
                reason="Forbidden",
            )

    def _admit_create(self, info: ResourceInfo, obj: Obj) -> Obj:
        """What the built-in strategies do on create: status reset, defaults of the fields the harness relies on."""
        if info.key == ("", "pods"):
            spec = obj.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("schedulerName", "default-scheduler")
            for container in spec.get("containers") or []:
                container.setdefault("terminationMessagePath", "/dev/termination-log")
                container.setdefault("terminationMessagePolicy", "File")
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif info.key == ("", "namespaces"):
            obj["status"] = {"phase": "Active"}
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif info.key == ("", "services"):
            spec = obj.setdefault("spec", {})
            if not spec.get("clusterIP"):
                spec["clusterIP"] = f"10.96.{(self._rv // 250) % 250}.{self._rv % 250 + 1}"
            spec["clusterIPs"] = [spec["clusterIP"]]
            spec.setdefault("type", "ClusterIP")
        elif info.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            obj["status"] = crd_accepted_status(obj, utc_now())
        elif info.status and info.schema is not None:
            obj.pop("status", None)
        return obj

    def _validated(self, info: ResourceInfo, obj: Obj) -> Obj:
        """Custom resources: defaulted, pruned and validated against the served version's schema."""
        if info.schema is None:
            return obj
        defaulted = structural.apply_defaults(_without(obj, "metadata"), info.schema)  # metadata is put back below
        pruned = structural.prune(defaulted, info.schema)
        pruned["metadata"], pruned["apiVersion"], pruned["kind"] = obj["metadata"], obj["apiVersion"], obj["kind"]
        problems = structural.validate(_without(pruned, "metadata"), info.schema, unknown="keep")
        if problems:
            name = obj["metadata"].get("name", "")
            message = f'{info.kind}.{info.group} "{name}" is invalid: ' + ", ".join(str(p) for p in problems)
            causes = [{"reason": "FieldValueInvalid", "message": str(p), "field": p.path} for p in problems]
            raise ApiError(
                422,
                message,
                reason="Invalid",
                details={"name": name, "group": info.group, "kind": info.kind, "causes": causes},
            )
        checked: Obj = pruned
        return checked

    def replace(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Obj,
        subresource: str | None = None,
        *,
        owned: bool = False,
    ) -> Obj:
        """PUT, and the final step of every PATCH: ``body`` is the whole new object. ``owned``: the caller hands
        ``body`` over, and nothing in it is shared but with stored objects (a freshly decoded body, or a merge patch's
        result, which shares the parts it does not touch with the stored object): it is kept without a copy, as
        stored objects are never changed in place."""
        return self._replace(info, namespace, name, body, subresource, owned=owned)

    def bind(self, namespace: str, name: str, node: str) -> Obj:
        """The ``pods/binding`` subresource: the only way to set a pod's nodeName."""
        with self._lock:
            info = self._builtins[("", "v1", "pods")]
            pod = self.get(info, namespace, name)
            if pod.get("spec", {}).get("nodeName"):
                raise ApiError(
                    409, f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"', reason="Conflict"
                )
            if pod["metadata"].get("deletionTimestamp"):
                raise ApiError(409, f"pod {name} is being deleted, cannot be assigned to a host", reason="Conflict")
            # Copied on write: the new version shares what the binding does not change with the stored one.
            bound = {**pod, "metadata": dict(pod["metadata"]), "spec": {**pod.get("spec", {}), "nodeName": node}}
            # As kube-apiserver's binding storage does: nodeName and PodScheduled=True in one write.
            status = bound["status"] = dict(pod.get("status") or {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            status["conditions"] = [
                *conditions,
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": utc_now()},
            ]
            return self._replace(info, namespace, name, bound, None, binding=True, owned=True)

    def _replace(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Obj,
        subresource: str | None,
        *,
        binding: bool = False,
        owned: bool = False,
    ) -> Obj:
        with self._lock:
            old = self.get(info, namespace, name)
            meta = body.get("metadata") or {}
            expected = meta.get("resourceVersion")
            if expected and str(expected) != old["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    f'Operation cannot be fulfilled on {info.group_resource} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                    reason="Conflict",
                    details={"name": name, "group": info.group, "kind": info.plural},
                )
            if meta.get("name", name) != name:
                raise ApiError(
                    400, f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
                )
            if meta.get("uid") and meta["uid"] != old["metadata"]["uid"]:  # a uid in the body is a precondition
                raise ApiError(
                    409,
                    f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: "
                    f"{old['metadata']['uid']}",
                    reason="Conflict",
                    details={"name": name, "group": info.group, "kind": info.plural},
                )
            if subresource == "status":
                # Stored objects are never changed in place (every write stores a new one), so the new version
                # shares all but its metadata and status with the old one instead of deep-copying it.
                new = {**old, "metadata": dict(old["metadata"])}
                if "status" in body:
                    new["status"] = body["status"] if owned else copy.deepcopy(body["status"])
                else:
                    new.pop("status", None)
                new = self._validated(info, new)
            else:
                new = {**body, "metadata": dict(body.get("metadata") or {})} if owned else copy.deepcopy(body)
                new["apiVersion"], new["kind"] = info.api_version, info.kind
                new_meta = new.setdefault("metadata", {})
                for field in (
                    "name",
                    "namespace",
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                ):
                    if field in old["metadata"]:
                        new_meta[field] = old["metadata"][field]
                    else:
                        new_meta.pop(field, None)
                if info.status and not binding:
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                    else:
                        new.pop("status", None)
                _check_metadata(info, new)
                if info.key == ("", "pods") and not binding:
                    _check_pod_update(old, new)
                new = self._validated(info, new)
                if info.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
                    new["status"] = crd_accepted_status(new, utc_now())
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if new == old:
                return old
            ignored = ("metadata", "status") if info.status else ("metadata",)
            if _without(new, *ignored) != _without(old, *ignored):
                new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
            new["metadata"]["resourceVersion"] = self._next_rv()
            self._objects[info.key][(old["metadata"].get("namespace", ""), name)] = new
            if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
                self._remove(info, new)
            else:
                self._record(info.key, "MODIFIED", new, old)
                self._after_write(info, new)
            return new

    def delete(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        *,
        grace_seconds: int | None = None,
        propagation: str = "Background",
        uid: str | None = None,
    ) -> Obj:
        with self._lock:
            old = self.get(info, namespace, name)
            if uid and old["metadata"]["uid"] != uid:
                raise ApiError(
                    409,
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: {old['metadata']['uid']}",
                    reason="Conflict",
                )
            meta = old["metadata"]
            graceful = self._graceful(info, old, grace_seconds)
            if not meta.get("finalizers") and not graceful:
                return self._remove(info, old, orphan=propagation == "Orphan")
            if meta.get("deletionTimestamp"):
                return old
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = meta.get("deletionTimestamp") or utc_now()
            new["metadata"]["deletionGracePeriodSeconds"] = graceful or 0
            if info.schema is not None:
                new["metadata"]["generation"] = int(meta.get("generation", 1)) + 1
            new["metadata"]["resourceVersion"] = self._next_rv()
            self._objects[info.key][(meta.get("namespace", ""), name)] = new
            self._record(info.key, "MODIFIED", new, old)
            if info.key == ("", "namespaces"):
                self._empty_namespace(name)
                if not new["metadata"].get("finalizers"):
                    return self._remove(info, new)
            return new

    def _graceful(self, info: ResourceInfo, obj: Obj, grace_seconds: int | None) -> int | None:
        """Seconds of graceful deletion for a pod bound to a Ready node (its kubelet finishes the deletion); None
        when the object is removed at once (no node, a node nobody runs, a finished pod, or grace 0)."""
        if info.key != ("", "pods") or grace_seconds == 0:
            return None
        node = self._objects.get(("", "nodes"), {}).get(("", obj.get("spec", {}).get("nodeName") or ""))
        conditions = (node or {}).get("status", {}).get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            return None  # nobody runs it: removed at once
        if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return None
        if grace_seconds is None:
            grace_seconds = int(obj.get("spec", {}).get("terminationGracePeriodSeconds", 30))
        return max(1, grace_seconds)

    def _remove(self, info: ResourceInfo, obj: Obj, *, orphan: bool = False) -> Obj:
        meta = obj["metadata"]
        bucket = self._objects.get(info.key, {})
        if bucket.pop((meta.get("namespace", ""), meta["name"]), None) is None:
            return obj
        gone_obj = copy.deepcopy(obj)
        gone_obj["metadata"]["resourceVersion"] = self._next_rv()
        self._record(info.key, "DELETED", gone_obj, obj)
        if info.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            for served in self._custom.pop(meta["name"], []):
                for child in list(self._objects.pop(served.key, {}).values()):
                    self._record(served.key, "DELETED", child, child)
        if info.key == ("", "namespaces"):
            self._empty_namespace(meta["name"])
        if not orphan:
            self._collect_garbage(meta["uid"])
        return gone_obj

    def _empty_namespace(self, namespace: str) -> None:
        for info in self._storage_resources():
            if not info.namespaced:
                continue
            for (ns, name), _ in list(self._objects.get(info.key, {}).items()):
                if ns == namespace and (ns, name) in self._objects.get(info.key, {}):
                    self.delete(info, ns, name, grace_seconds=0)

    def _storage_resources(self) -> list[ResourceInfo]:
        seen: dict[StoreKey, ResourceInfo] = {}
        for info in self.resources():
            seen.setdefault(info.key, info)
        return list(seen.values())

    def _collect_garbage(self, owner_uid: str) -> None:
        """Delete the dependents whose every owner is gone (the garbage collector's background propagation)."""
        live = {o["metadata"]["uid"] for bucket in self._objects.values() for o in bucket.values()}
        for info in self._storage_resources():
            for obj in list(self._objects.get(info.key, {}).values()):
                refs = obj["metadata"].get("ownerReferences") or []
                uids = {ref.get("uid") for ref in refs}
                if owner_uid in uids and not (uids & live):
                    meta = obj["metadata"]
                    if (meta.get("namespace", ""), meta["name"]) in self._objects.get(info.key, {}):
                        self.delete(info, meta.get("namespace"), meta["name"])

    def _after_write(self, info: ResourceInfo, obj: Obj) -> None:
        if info.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._custom[obj["metadata"]["name"]] = crd_resources(obj)


_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_QUALIFIED = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_LABEL_KINDS = {("", "services"), ("", "namespaces")}


def _invalid(info: ResourceInfo, name: str, field: str, message: str) -> ApiError:
    return ApiError(
        422,
        f'{info.kind} "{name}" is invalid: {field}: Invalid value: {message}',
        reason="Invalid",
        details={
            "name": name,
            "group": info.group,
            "kind": info.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": f"Invalid value: {message}", "field": field}],
        },
    )


def _check_metadata(info: ResourceInfo, obj: Obj) -> None:
    """The object-meta validation of kube-apiserver: name format and label syntax."""
    meta = obj["metadata"]
    name = str(meta["name"])
    if info.key in _DNS_LABEL_KINDS:
        if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
            raise _invalid(
                info,
                name,
                "metadata.name",
                f'"{name}": a lowercase RFC 1035 label must consist of lower '
                "case alphanumeric characters or '-', start with an "
                "alphabetic character, end with an alphanumeric character, "
                "and be at most 63 characters",
            )
    elif len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        raise _invalid(
            info,
            name,
            "metadata.name",
            f'"{name}": a lowercase RFC 1123 subdomain must consist of lower '
            "case alphanumeric characters, '-' or '.', and must start and "
            "end with an alphanumeric character",
        )
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        raise _invalid(info, name, "metadata.labels", "labels must be a map of strings")
    for key, value in labels.items():
        prefix, _, label = str(key).rpartition("/")
        if (prefix and not _SUBDOMAIN.fullmatch(prefix)) or len(label) > 63 or not _QUALIFIED.fullmatch(label):
            raise _invalid(
                info,
                name,
                "metadata.labels",
                f'"{key}": name part must consist of alphanumeric '
                "characters, '-', '_' or '.', and be at most 63 characters",
            )
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            raise _invalid(
                info,
                name,
                f"metadata.labels[{key}]",
                f'"{value}": a valid label must be an empty string '
                "or consist of at most 63 alphanumeric "
                "characters, '-', '_' or '.'",
            )


_MUTABLE_POD_FIELDS = ("activeDeadlineSeconds", "terminationGracePeriodSeconds")


def _check_pod_update(old: Obj, new: Obj) -> None:
    """Pod specs are immutable but for container images, activeDeadlineSeconds and added tolerations."""
    old_spec, new_spec = copy.deepcopy(old.get("spec", {})), copy.deepcopy(new.get("spec", {}))
    for spec in (old_spec, new_spec):
        for field in _MUTABLE_POD_FIELDS:
            spec.pop(field, None)
        for container in spec.get("containers") or []:
            container.pop("image", None)
    old_tolerations = old_spec.pop("tolerations", None) or []
    new_tolerations = new_spec.pop("tolerations", None) or []
    if old_spec != new_spec or any(t not in new_tolerations for t in old_tolerations):
        name = old["metadata"]["name"]
        raise ApiError(
            422,
            f'Pod "{name}" is invalid: spec: Forbidden: pod updates may not change fields other than '
            "`spec.containers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only "
            "additions to existing tolerations) or `spec.terminationGracePeriodSeconds`",
            reason="Invalid",
            details={
                "name": name,
                "kind": "Pod",
                "causes": [
                    {"reason": "FieldValueForbidden", "message": "pod updates may not change fields", "field": "spec"}
                ],
            },
        )
