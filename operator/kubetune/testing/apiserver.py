"""The test Kubernetes API server: real HTTP on 127.0.0.1, close enough to kube-apiserver for kopf and kubectl.

Decides: how HTTP requests map onto the store's verbs (list, watch, get, create, replace, patch, delete, the
``status``/``binding``/``eviction`` subresources), the wire format of answers (objects, lists, ``Status`` errors,
watch streams with BOOKMARK and 410 ERROR events, kubectl's ``meta.k8s.io/v1`` Tables), fault injection, request
counting, and running it all from synchronous test code (:class:`TestAPIServer`, a loop in a background thread).

Built on kmock 0.8 (pinned in pyproject): :class:`_Emulator` subclasses ``kmock.KubernetesEmulator`` and keeps its
shape — an aiohttp handler that records each request as a ``kmock.Request`` in kmock's request log, and answers
unexpected errors with kmock's ``_render_error`` (a 500 ``Status`` with the traceback) — but overrides ``__call__``
and ``_handle``, so kmock's object store, DSL reactions, discovery and path parser are not used. Measured on kmock 0.8
unmodified, and why each piece is replaced: its parser answers 500 to ``GET /api/v1/namespaces`` (so requests are
built from the HTTP facts here); its objects get no uid, namespace, resourceVersion or creationTimestamp; selectors are
ignored; there is no PUT, status-subresource rule, generation, garbage collection, watch resume, bookmark or 410 Gone;
its discovery has no short names, categories or subresources; and every request gets slower as its request log grows
(4.5 ms after 100 requests, 17 ms after 300), so the log is bounded here (``request_log``, default 0: off). kmock's
``Server`` is not used either: it patches aiohttp's resolver process-wide and checks LIFO order on exit, which breaks
when several servers run in one process; a plain aiohttp ``web.Server`` on a random free port of 127.0.0.1 hosts the
handler. The rules of each verb live in :mod:`kubetune.testing.apiserver_store`, the resources, discovery and tables in
:mod:`kubetune.testing.apiserver_resources`, patches and selectors in :mod:`kubetune.testing.apiserver_patches`.

Must not import kopf, the operator or the core.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import json
import random
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import yaml

from kubetune.eventloop import event_loop_factory
from kubetune.testing.apiserver_patches import (
    PatchError,
    Selector,
    SelectorError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from kubetune.testing.apiserver_resources import (
    Obj,
    ResourceInfo,
    api_group_doc,
    api_groups_doc,
    api_versions_doc,
    resource_list_doc,
    table,
)
from kubetune.testing.apiserver_store import ApiError, Store, WatchEvent, utc_now

__all__ = ["ApiError", "Fault", "Store", "TestAPIServer"]

SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-kubetune",
    "gitCommit": "",
    "gitTreeState": "",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.24",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass
class Fault:
    """Answer ``status`` to a share of the requests whose method and path match; ``times`` caps how many."""

    method: str
    path: re.Pattern[str]
    status: int
    probability: float = 1.0
    seed: int | None = 0
    times: int | None = None
    message: str = "injected fault"
    hits: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def fires(self, method: str, path: str) -> bool:
        if self.method not in ("*", method) or not self.path.search(path):
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        if self._rng.random() >= self.probability:
            return False
        self.hits += 1
        return True


@dataclass(frozen=True)
class _Target:
    info: ResourceInfo
    namespace: str | None
    name: str | None
    subresource: str | None


_DONE = object()
_LINES_KEPT = 512  # encoded watch lines kept for the other watches of the same resource


class _Emulator(kmock.KubernetesEmulator):
    """kmock's emulator with the store's semantics in place of its own ``_handle``."""

    def attach(
        self,
        store: Store,
        faults: list[Fault],
        counts: collections.Counter[tuple[str, str]],
        bookmark_interval: float,
        request_log: int,
    ) -> None:
        self.store = store
        self.faults = faults
        self.counts = counts
        self.bookmark_interval = bookmark_interval
        self.watch_queues: set[asyncio.Queue[object]] = set()
        self.log_roots: list[Path] = []
        self.closing = False
        self._requests = collections.deque(maxlen=request_log)  # type: ignore[assignment]  # kmock's log, bounded
        # The latest watch lines, by (id of the event, type sent, apiVersion), with their event (watches only).
        self._lines: collections.OrderedDict[tuple[int, str, str], tuple[WatchEvent, bytes]] = collections.OrderedDict()
        self._served = 0

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock's own entry point parses every path with its K8s parser, which fails on ``/api/v1/namespaces``
        # (the measured 500); the request is built here from the HTTP facts only, then handled as kmock would.
        body = await raw_request.read()
        request = kmock.Request(
            id=self._served,
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            body=body,
            text=body.decode("utf-8", "replace"),
        )
        self._served += 1
        self._requests.append(request)
        try:
            return await self._handle(request)
        except Exception as error:  # a bug here: answered as kmock answers, a 500 Status with the traceback
            response: aiohttp.web.StreamResponse = await self._render_error(error)
            return response

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        raw = _raw(request)
        method, path = raw.method.upper(), raw.path
        self.counts[(method, path)] += 1
        try:
            for fault in self.faults:
                if fault.fires(method, path):
                    raise ApiError(fault.status, fault.message)
            return await self._route(request, method, path)
        except ApiError as error:
            return aiohttp.web.json_response(error.status(), status=error.code)
        except (PatchError, SelectorError) as error:
            code = 422 if isinstance(error, PatchError) else 400
            return aiohttp.web.json_response(ApiError(code, str(error)).status(), status=code)

    # -- routing --------------------------------------------------------------------------------------------------

    async def _route(self, request: kmock.Request, method: str, path: str) -> aiohttp.web.StreamResponse:
        parts = [p for p in path.split("/") if p]
        if method == "GET":
            document = self._document(parts)
            if document is not None:
                return aiohttp.web.json_response(document)
        if len(parts) < 2 or parts[0] not in ("api", "apis"):
            raise ApiError(404, "the server could not find the requested resource", reason="NotFound")
        target = self._target(parts)
        return await self._serve(request, method, target)

    def _document(self, parts: list[str]) -> Obj | None:
        resources = self.store.resources()
        if parts == ["version"]:
            return SERVER_VERSION
        if parts in (["healthz"], ["readyz"], ["livez"]):
            return {"status": "ok"}
        if parts == ["api"]:
            return api_versions_doc()
        if parts == ["apis"]:
            return api_groups_doc(resources)
        if parts == ["api", "v1"]:
            return resource_list_doc(resources, "", "v1")
        if len(parts) == 2 and parts[0] == "apis":
            found = api_group_doc(resources, parts[1])
            if found is None:
                raise ApiError(404, "the server could not find the requested resource")
            return found
        if len(parts) == 3 and parts[0] == "apis":
            found = resource_list_doc(resources, parts[1], parts[2])
            if found is None:
                raise ApiError(404, "the server could not find the requested resource")
            return found
        return None

    def _target(self, parts: list[str]) -> _Target:
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) < 3:
                raise ApiError(404, "the server could not find the requested resource")
            group, version, rest = parts[1], parts[2], parts[3:]
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "the server could not find the requested resource")
        info = self.store.resource(group, version, rest[0])
        if info is None:
            raise ApiError(404, "the server could not find the requested resource", reason="NotFound")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in info.subresources and not (info.plural == "namespaces" and sub == "finalize"):
            raise ApiError(404, "the server could not find the requested resource")
        return _Target(info, namespace, name, sub)

    async def _serve(self, request: kmock.Request, method: str, target: _Target) -> aiohttp.web.StreamResponse:
        info, params = target.info, request.params
        store = self.store
        if target.name is None:
            if method == "GET":
                selector = Selector.parse(params.get("labelSelector"), params.get("fieldSelector"))
                if params.get("watch") in ("1", "true", "True"):
                    return await self._watch(request, target, selector)
                items, rv = store.select(info, target.namespace, selector)
                if _wants_table(request):
                    return aiohttp.web.json_response(table(info, [_present(info, o) for o in items], str(rv), _now()))
                return aiohttp.web.json_response(
                    {
                        "kind": f"{info.kind}List",
                        "apiVersion": info.api_version,
                        "metadata": {"resourceVersion": str(rv)},
                        "items": [_present(info, o) for o in items],
                    }
                )
            if method == "POST":
                created = store.create(info, target.namespace, _body(request), owned=True)
                return aiohttp.web.json_response(_present(info, created), status=201)
            if method == "DELETE":
                selector = Selector.parse(params.get("labelSelector"), params.get("fieldSelector"))
                items, _ = store.select(info, target.namespace, selector)
                for obj in items:
                    meta = obj["metadata"]
                    store.delete(info, meta.get("namespace"), meta["name"])
                return aiohttp.web.json_response(
                    {
                        "kind": f"{info.kind}List",
                        "apiVersion": info.api_version,
                        "metadata": {},
                        "items": [_present(info, o) for o in items],
                    }
                )
            raise ApiError(405, f"{method} is not allowed on a collection")

        name, sub = target.name, target.subresource
        if sub == "binding" and method == "POST":
            node = (_body(request).get("target") or {}).get("name")
            if not node:
                raise ApiError(422, "Binding is invalid: target.name: Required value")
            store.bind(target.namespace or "default", name, str(node))
            return aiohttp.web.json_response(
                {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, status=201
            )
        if sub == "eviction" and method == "POST":
            evicted = evict(store, info, target.namespace, name)
            return aiohttp.web.json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                    "details": {"name": evicted["metadata"]["name"]},
                },
                status=201,
            )
        if sub == "log":
            pod = store.get(info, target.namespace, name)
            return aiohttp.web.Response(text=self._log(pod, params.get("tailLines")), content_type="text/plain")
        if method == "GET":
            obj = store.get(info, target.namespace, name)
            if _wants_table(request):
                return aiohttp.web.json_response(
                    table(info, [_present(info, obj)], obj["metadata"]["resourceVersion"], _now())
                )
            return aiohttp.web.json_response(_present(info, obj))
        if method == "PUT":
            replaced = store.replace(info, target.namespace, name, _body(request), sub, owned=True)
            return aiohttp.web.json_response(_present(info, replaced))
        if method == "PATCH":
            return aiohttp.web.json_response(_present(info, self._patch(request, target)))
        if method == "DELETE":
            options = _body(request) if request.body else {}
            grace = params.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
            propagation = params.get("propagationPolicy", options.get("propagationPolicy")) or "Background"
            uid = (options.get("preconditions") or {}).get("uid")
            deleted = store.delete(
                info,
                target.namespace,
                name,
                grace_seconds=None if grace is None else int(grace),
                propagation=propagation,
                uid=uid,
            )
            pending = bool(deleted["metadata"].get("deletionTimestamp")) and _exists(
                store, info, target.namespace, name
            )
            return aiohttp.web.json_response(_present(info, deleted), status=202 if pending else 200)
        raise ApiError(405, f"{method} is not allowed here")

    def _patch(self, request: kmock.Request, target: _Target) -> Obj:
        info, store, name = target.info, self.store, target.name
        assert name is not None
        content_type = _raw(request).content_type
        if content_type == "application/apply-patch+yaml":
            patch = yaml.safe_load(request.text or "{}")
            try:
                current = store.get(info, target.namespace, name)
            except ApiError as error:
                if error.code != 404:
                    raise
                return store.create(info, target.namespace, patch, owned=True)
            return store.replace(info, target.namespace, name, _merged(current, patch), target.subresource, owned=True)
        patch = _body(request, allow_list=True)
        current = store.get(info, target.namespace, name)
        if content_type == "application/json-patch+json":
            updated = json_patch(current, patch)
            if (
                isinstance(updated, dict)
                and updated.get("metadata", {}).get("resourceVersion") == current["metadata"]["resourceVersion"]
            ):
                updated["metadata"].pop("resourceVersion")
        elif content_type == "application/merge-patch+json":
            updated = _merged(current, patch)
        elif content_type == "application/strategic-merge-patch+json":
            if info.schema is not None:
                raise ApiError(415, "strategic merge patch is not supported for custom resources")
            updated = _merged(current, patch, strategic=True)
        else:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types include: "
                f"application/json-patch+json, application/merge-patch+json, "
                f"application/apply-patch+yaml (got {content_type})",
            )
        if not isinstance(updated, dict):
            raise ApiError(422, "the patch does not result in an object")
        return store.replace(info, target.namespace, name, updated, target.subresource, owned=True)

    # -- watching -------------------------------------------------------------------------------------------------

    async def _watch(self, request: kmock.Request, target: _Target, selector: Selector) -> aiohttp.web.StreamResponse:
        params, info = request.params, target.info
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()

        loop_thread = threading.get_ident()

        def listener(event: WatchEvent) -> None:
            if event.key != info.key:
                return
            if threading.get_ident() == loop_thread:  # a write of this server's own requests: no need to wake it
                loop.call_soon(queue.put_nowait, event)  # (queued behind any thread's events: rv order is kept)
                return
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped
                loop.call_soon_threadsafe(queue.put_nowait, event)

        rv_param = params.get("resourceVersion")
        if rv_param and not rv_param.isdigit():
            raise ApiError(400, f"invalid resource version: {rv_param!r}")
        since = int(rv_param) if rv_param and rv_param != "0" else None
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(_raw(request))
        try:
            backlog = self.store.watch(info, since, listener)
        except ApiError as error:
            await _write(response, {"type": "ERROR", "object": error.status()})
            await response.write_eof()
            return response
        self.watch_queues.add(queue)
        as_table = _wants_table(request)
        bookmarks = params.get("allowWatchBookmarks") in ("1", "true", "True")
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        deadline = loop.time() + timeout if timeout else None
        try:
            shown = [line for line in (self._line(e, target, selector, as_table) for e in backlog) if line is not None]
            if shown:
                await response.write(b"".join(shown))
            if bookmarks and params.get("sendInitialEvents") in ("1", "true", "True"):
                await _write(response, _bookmark(info, self.store.resource_version, initial_events_end=True))
            while not self.closing:
                wait = self.bookmark_interval if bookmarks else 5.0
                if deadline is not None:
                    wait = min(wait, deadline - loop.time())
                    if wait <= 0:
                        break
                if queue.empty():
                    try:
                        first = await asyncio.wait_for(queue.get(), timeout=wait)
                    except TimeoutError:
                        if bookmarks:
                            await _write(response, _bookmark(info, self.store.resource_version))
                        continue
                else:
                    first = queue.get_nowait()
                # Everything queued by now goes out in one write (the same bytes as one write per event).
                batch = [first]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                lines: list[bytes] = []
                done = False
                for item in batch:
                    if item is _DONE:
                        done = True
                        break
                    assert isinstance(item, WatchEvent)
                    line = self._line(item, target, selector, as_table)
                    if line is not None:
                        lines.append(line)
                if lines:
                    await response.write(b"".join(lines))
                if done:
                    break
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away
        finally:
            self.store.unsubscribe(listener)
            self.watch_queues.discard(queue)
        return response

    def _line(self, event: WatchEvent, target: _Target, selector: Selector, as_table: bool) -> bytes | None:
        """The watch stream's line for ``event``, or None when this watch does not show it."""
        obj, old = event.obj, event.old
        if target.namespace and target.info.namespaced and obj["metadata"].get("namespace") != target.namespace:
            return None
        type_ = event.type
        if not selector.matches(obj):
            if type_ == "MODIFIED" and old is not None and selector.matches(old):
                type_ = "DELETED"  # it left the selection, as the real watch cache reports it
            else:
                return None
        elif type_ == "MODIFIED" and old is not None and not selector.matches(old):
            type_ = "ADDED"
        shown = _present(target.info, obj)
        if as_table:
            return _encoded(
                {"type": type_, "object": table(target.info, [shown], obj["metadata"]["resourceVersion"], _now())}
            )
        # Every watch of the resource sends the same line: encoded once (the event is kept: its id stays its own).
        key = (id(event), type_, target.info.api_version)
        cached = self._lines.get(key)
        if cached is not None and cached[0] is event:
            return cached[1]
        line = _encoded({"type": type_, "object": shown})
        self._lines[key] = (event, line)
        if len(self._lines) > _LINES_KEPT:
            self._lines.popitem(last=False)
        return line

    def _log(self, pod: Obj, tail: str | None) -> str:
        """The fake kubelet's log of the pod (``<root>/pods/<namespace>/<name>-<uid[:8]>/log.txt``), if any."""
        meta = pod["metadata"]
        for root in self.log_roots:
            path = root / "pods" / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}" / "log.txt"
            if path.exists():
                text: str = path.read_text(errors="replace")
                if tail and tail.isdigit():
                    text = "".join(text.splitlines(keepends=True)[-int(tail) :]) if int(tail) else ""
                return text
        return ""

    def close_watches(self) -> None:
        self.closing = True
        for queue in list(self.watch_queues):
            queue.put_nowait(_DONE)


def evict(store: Store, info: ResourceInfo, namespace: str | None, name: str) -> Obj:
    """The Eviction API: mark the pod with ``DisruptionTarget`` (EvictionByEvictionAPI), then delete it gracefully."""
    pod = store.get(info, namespace, name)
    pod = store.replace(
        info,
        namespace,
        name,
        _with_condition(pod, "DisruptionTarget", "EvictionByEvictionAPI", "Eviction API: evicting"),
        "status",
    )
    return store.delete(info, namespace, name)


def _with_condition(obj: Obj, type_: str, reason: str, message: str) -> Obj:
    conditions = [c for c in obj.get("status", {}).get("conditions", []) if c.get("type") != type_]
    conditions.append(
        {"type": type_, "status": "True", "reason": reason, "message": message, "lastTransitionTime": utc_now()}
    )
    patched: Obj = merge_patch(obj, {"status": {"conditions": conditions}})
    return patched


def _merged(current: Obj, patch: Any, *, strategic: bool = False) -> Obj:
    if not isinstance(patch, dict):
        raise ApiError(400, "a merge patch must be a JSON object")
    merged: Obj = strategic_merge_patch(current, patch) if strategic else merge_patch(current, patch)
    merged["metadata"] = dict(merged.get("metadata") or {})  # it may be the stored object's own: copied on write
    if not (patch.get("metadata") or {}).get("resourceVersion"):
        merged["metadata"].pop("resourceVersion", None)
    return merged


def _exists(store: Store, info: ResourceInfo, namespace: str | None, name: str) -> bool:
    try:
        store.get(info, namespace, name)
    except ApiError:
        return False
    return True


def _bookmark(info: ResourceInfo, rv: int, *, initial_events_end: bool = False) -> Obj:
    meta: Obj = {"resourceVersion": str(rv)}
    if initial_events_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"type": "BOOKMARK", "object": {"kind": info.kind, "apiVersion": info.api_version, "metadata": meta}}


def _encoded(event: Obj) -> bytes:
    return json.dumps(event).encode() + b"\n"


async def _write(response: aiohttp.web.StreamResponse, event: Obj) -> None:
    await response.write(_encoded(event))


def _body(request: kmock.Request, allow_list: bool = False) -> Any:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError as error:
        raise ApiError(400, f"the body of the request is not JSON: {error}") from None
    if not isinstance(data, dict) and not (allow_list and isinstance(data, list)):
        raise ApiError(400, "the body of the request must be a JSON object")
    return data


def _wants_table(request: kmock.Request) -> bool:
    return "as=Table" in _raw(request).headers.get("Accept", "")


def _raw(request: kmock.Request) -> aiohttp.web.BaseRequest:
    raw = request._raw_request
    assert raw is not None  # every request here comes from aiohttp
    return raw


def _present(info: ResourceInfo, obj: Obj) -> Obj:
    """The object as served under ``info``'s version (only apiVersion differs between versions)."""
    if obj.get("apiVersion") == info.api_version:
        return obj
    return {**obj, "apiVersion": info.api_version}


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


class TestAPIServer:
    """The test API server in a background thread: ``with TestAPIServer() as api: ... api.url``."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        history: int = 10_000,
        bookmark_interval: float = 5.0,
        request_log: int = 0,
        require_namespaces: bool = True,
        port: int = 0,
    ) -> None:
        self.store = Store(history=history, require_namespaces=require_namespaces)
        self.faults: list[Fault] = []
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._bookmark_interval = bookmark_interval
        self._request_log = request_log
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._emulator: _Emulator | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.url = ""

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def __enter__(self) -> TestAPIServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kubetune-test-apiserver", daemon=True)
        self._thread.start()
        if not self._started.wait(30) or self._error is not None:
            raise RuntimeError(f"the test API server did not start: {self._error!r}")

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        loop, emulator, stop = self._loop, self._emulator, self._stop
        if emulator is not None:
            loop.call_soon_threadsafe(emulator.close_watches)
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(30)
        self._loop = None

    def _run(self) -> None:
        loop = event_loop_factory()()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as error:  # reported to start()
            self._error = error
            self._started.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        emulator = _Emulator()
        emulator.attach(self.store, self.faults, self.counts, self._bookmark_interval, self._request_log)
        self._emulator = emulator
        async with emulator:
            server = aiohttp.web.Server(emulator, handler_cancellation=True, access_log=None)
            runner = aiohttp.web.ServerRunner(server, shutdown_timeout=2.0)
            await runner.setup()
            site = aiohttp.web.TCPSite(runner, "127.0.0.1", self._port)
            await site.start()
            port = runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"
            self._started.set()
            try:
                await self._stop.wait()
            finally:
                emulator.close_watches()
                await runner.cleanup()

    # -- client configuration -------------------------------------------------------------------------------------

    def kubeconfig(self, namespace: str = "default") -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "kubetune-test",
            "clusters": [{"name": "kubetune-test", "cluster": {"server": self.url}}],
            "users": [{"name": "kubetune-test", "user": {"token": "kubetune-test-token"}}],
            "contexts": [
                {
                    "name": "kubetune-test",
                    "context": {"cluster": "kubetune-test", "user": "kubetune-test", "namespace": namespace},
                }
            ],
        }

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(self.kubeconfig(namespace)))
        return target

    # -- faults and counters --------------------------------------------------------------------------------------

    def inject_fault(
        self,
        method: str,
        path_regex: str,
        status: int,
        probability: float = 1.0,
        seed: int | None = 0,
        *,
        times: int | None = None,
        message: str = "injected fault",
    ) -> Fault:
        """Answer ``status`` (a Status body) to ``probability`` of the requests matching; remove with
        :meth:`remove_fault` or :meth:`clear_faults`."""
        fault = Fault(method.upper(), re.compile(path_regex), status, probability, seed, times, message)
        self.faults.append(fault)
        return fault

    def serve_logs_from(self, kubelet_workdir: str | Path) -> None:
        """Answer ``pods/log`` (``kubectl logs``) from a fake kubelet's work folder."""
        assert self._emulator is not None, "start the server first"
        self._emulator.log_roots.append(Path(kubelet_workdir))

    def remove_fault(self, fault: Fault) -> None:
        if fault in self.faults:
            self.faults.remove(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def request_count(self, method: str | None = None, path_regex: str | None = None) -> int:
        pattern = re.compile(path_regex) if path_regex else None
        return sum(
            n
            for (m, p), n in list(self.counts.items())
            if (method is None or m == method.upper()) and (pattern is None or pattern.search(p))
        )

    # -- in-process access ----------------------------------------------------------------------------------------

    def _info(self, resource: str) -> ResourceInfo:
        return self.store.lookup(resource)

    def get(self, resource: str, name: str, namespace: str | None = "default") -> Obj | None:
        """A copy of one object (``resource`` is a plural, kind, short name or ``plural.group``), or None."""
        try:
            return _copy(self.store.get(self._info(resource), namespace, name))
        except ApiError:
            return None

    def objects(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        items, _ = self.store.select(self._info(resource), namespace, Selector.parse(label_selector, field_selector))
        return [_copy(o) for o in items]

    def create(self, obj: Mapping[str, Any], namespace: str | None = None) -> Obj:
        info = self.store.resource_for(obj["apiVersion"], obj["kind"])
        return _copy(self.store.create(info, namespace, dict(obj)))

    def apply_manifests(self, path: str | Path) -> list[Obj]:
        """Create every document of a YAML file (or every ``*.yaml`` of a folder)."""
        source = Path(path)
        files = sorted(source.glob("*.yaml")) if source.is_dir() else [source]
        return [self.create(doc) for file in files for doc in yaml.safe_load_all(file.read_text()) if doc]

    def patch(
        self,
        resource: str,
        name: str,
        patch: Mapping[str, Any],
        namespace: str | None = "default",
        subresource: str | None = None,
    ) -> Obj:
        """A merge patch, as ``kubectl patch --type merge`` (``subresource="status"`` for the status)."""
        info = self._info(resource)
        current = self.store.get(info, namespace, name)
        return _copy(self.store.replace(info, namespace, name, _merged(current, dict(patch)), subresource))

    def delete(
        self, resource: str, name: str, namespace: str | None = "default", grace_seconds: int | None = None
    ) -> Obj:
        return _copy(self.store.delete(self._info(resource), namespace, name, grace_seconds=grace_seconds))

    def evict(self, name: str, namespace: str = "default") -> Obj:
        return _copy(evict(self.store, self._info("pods"), namespace, name))

    def compact(self) -> int:
        """Forget the watch history: watches from an older resourceVersion get 410 Gone."""
        return self.store.compact()

    @property
    def resource_version(self) -> int:
        return self.store.resource_version


def _copy(obj: Obj) -> Obj:
    loaded: Obj = json.loads(json.dumps(obj))
    return loaded
