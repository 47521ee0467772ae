"""The fake kubelet (and scheduler, and node lifecycle controller): pods of the test cluster run as local processes.

Decides: when a pending pod is bound to a fake node and on which one (see :mod:`kubetune.testing.kubelet_placement`),
when its first container starts and stops as a local process group, what its status says at every step (Pending →
Running with podIP 127.0.0.1 → Succeeded/Failed with the exit code and the termination message; restarts for
``restartPolicy`` Always/OnFailure), and what the chaos methods do: a slow node, a lost node, a preemption and an
eviction.

Deletion: the test API server keeps a deleted pod that runs on a Ready node, with deletionTimestamp set, until this
kubelet confirms; the kubelet sees the change on its watch, sends SIGTERM to the process group, SIGKILL after the grace
period, writes the terminated status, then deletes the pod with ``gracePeriodSeconds=0``. Pods of a lost node are
killed at once (SIGKILL, no status) and force-deleted after ``node_loss_delay`` seconds, as the node lifecycle
controller and the pod garbage collector would. Every process group it started is killed on :meth:`FakeKubelet.stop`
(which also turns its nodes NotReady, so later deletions are immediate), and each child asks the kernel for SIGKILL
should the kubelet's thread die (PR_SET_PDEATHSIG).

Costs: what it needs comes from three watches (pods, nodes, services) — the latest state of each pod, the node objects
and each node's Pending and Running pods, the headless services of each namespace (as the real kubelet's informers: a
service created just before a pod may not be seen yet) — so placing, starting and finishing a pod takes the same few
requests however many pods there are: a binding, its status patches (strategic merge with a uid precondition, no GET
first; Running only for a container still running after ``STATUS_SYNC_SECONDS``, as the real kubelet's status sync
misses a container that is already over) and its Events, which are sent in the background. The watch loop never waits on
a binding; the resync loop retries only the pods still unbound. ``python -m kubetune.testing.kubelet`` runs it in a
process of its own (as the benchmarks do, so that it shares no interpreter with the API server).

Talks to the API server over HTTP only (any URL), so it works against any server; must not import kopf or the core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime
import json
import os
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from kubetune.testing.kubelet_placement import DEFAULT_NODES, FakeNode, LocalContainer, choose_node, local_container

__all__ = ["DEFAULT_NODES", "FakeKubelet", "FakeNode"]

Obj = dict[str, Any]
_PR_SET_PDEATHSIG = 1
_OWN_CONDITIONS = ("PodScheduled", "Initialized", "ContainersReady", "Ready")
_MESSAGE_LIMIT = 4096
STATUS_SYNC_SECONDS = 0.2  # how long a started container may run before its Running status is written


def _die_with_kubelet() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_SETPRIV = shutil.which("setpriv")  # util-linux: sets PR_SET_PDEATHSIG, then execs the command in the same process


def _with_death_signal(argv: list[str], env: Mapping[str, str]) -> tuple[list[str], Callable[[], None] | None]:
    """How to start ``argv`` so that the kernel kills it with SIGKILL when the kubelet's thread dies: through
    ``setpriv --pdeathsig KILL`` (same process, same argv to exec), so that the child is started with vfork, or else
    with a preexec_fn, which forces a full fork of the kubelet (2 ms of the kubelet's CPU a pod instead of 0.4 ms). A
    command that is not found on the pod's PATH, or a relative path, keeps the preexec_fn, so that it fails to start as
    it always did (OSError, hence StartError) instead of inside setpriv."""
    if _SETPRIV is None or not argv:
        return argv, _die_with_kubelet
    command = argv[0]
    if "/" in command and not os.path.isabs(command):
        return argv, _die_with_kubelet
    if shutil.which(command, path=env.get("PATH", os.defpath)) is None:
        return argv, _die_with_kubelet
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv], None


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _Running:
    """One pod's container process on this kubelet."""

    pod: Obj
    node: str
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    terminating: bool = False
    killed_by_node_loss: bool = False
    restarts: int = 0
    log: Path | None = None
    last_state: Obj = field(default_factory=dict)


class KubeletError(RuntimeError):
    """The API server refused a kubelet call."""


class FakeKubelet:
    """Schedules and runs the pods of a test API server on fake nodes: ``with FakeKubelet(api.url, workdir=...)``."""

    def __init__(
        self,
        api_url: str,
        *,
        workdir: str | Path,
        nodes: Iterable[FakeNode] = DEFAULT_NODES,
        kubeconfig: str | Path | None = None,
        token: str = "kubetune-test-token",
        node_loss_delay: float = 1.0,
        restart_backoff: float = 0.5,
        resync: float = 1.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.workdir = Path(workdir)
        self.nodes = {node.name: node for node in nodes}
        self.kubeconfig = Path(kubeconfig) if kubeconfig else None
        self.token = token
        self.node_loss_delay = node_loss_delay
        self.restart_backoff = restart_backoff
        self.resync = resync
        self.slowdown: dict[str, float] = {}
        self.lost: set[str] = set()
        self._running: dict[str, _Running] = {}  # by pod uid
        self._ports: dict[tuple[str, str], int] = {}
        self._unschedulable: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._pods: dict[str, Obj] = {}  # the latest seen state, by uid
        self._node_objects: dict[str, Obj] = {}  # the latest seen Node objects, by name
        self._placed: dict[str, str] = {}  # uid -> node, for the Pending and Running pods bound to a node
        self._load: dict[str, set[str]] = {}  # node -> uids of its Pending and Running pods
        self._unbound: set[str] = set()  # pending pods that still need a node (the resync loop retries them)
        self._scheduling: set[str] = set()  # pods whose binding is in flight
        self._headless: dict[str, set[str]] = {}  # namespace -> names of its headless services
        self._background: set[asyncio.Task[Any]] = set()  # Events in flight
        self.errors: list[str] = []  # unexpected failures of the kubelet's own loops (bugs), for tests to assert on

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | Path, **kwargs: Any) -> FakeKubelet:
        """A kubelet for the current context's server of ``kubeconfig`` (its token, if any, is used)."""
        loaded = yaml.safe_load(Path(kubeconfig).read_text())
        context = next(c["context"] for c in loaded["contexts"] if c["name"] == loaded["current-context"])
        cluster = next(c["cluster"] for c in loaded["clusters"] if c["name"] == context["cluster"])
        user: dict[str, Any] = next(
            (u["user"] for u in loaded.get("users", []) if u["name"] == context.get("user")), {}
        )
        if user.get("token"):
            kwargs.setdefault("token", user["token"])
        return cls(cluster["server"], kubeconfig=kubeconfig, **kwargs)

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def __enter__(self) -> FakeKubelet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.kubeconfig is None:
            self.kubeconfig = self.workdir / "kubeconfig.yaml"
            self.kubeconfig.write_text(
                json.dumps(
                    {
                        "apiVersion": "v1",
                        "kind": "Config",
                        "current-context": "test",
                        "clusters": [{"name": "test", "cluster": {"server": self.api_url}}],
                        "users": [{"name": "test", "user": {"token": self.token}}],
                        "contexts": [
                            {"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "default"}}
                        ],
                    }
                )
            )
        self._thread = threading.Thread(target=self._run, name="kubetune-fake-kubelet", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            self.stop()
            raise RuntimeError(f"the fake kubelet did not start: {self._error!r}")

    def stop(self) -> None:
        """Kill every process group it started, and stop."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            if self._stopping is not None:
                loop.call_soon_threadsafe(self._stopping.set)
            thread.join(30)
        for running in list(self._running.values()):
            _kill(running.process, signal.SIGKILL)
        self._loop = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as error:  # reported to start()
            self._error = error
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            self._session = session
            for node in self.nodes.values():
                await self._register(node)
            nodes_synced, services_synced = asyncio.Event(), asyncio.Event()
            tasks = [
                asyncio.create_task(self._watch("/api/v1/nodes", self._on_node, nodes_synced)),
                asyncio.create_task(self._watch("/api/v1/services", self._on_service, services_synced)),
            ]
            await nodes_synced.wait()
            await services_synced.wait()
            tasks += [
                asyncio.create_task(self._watch("/api/v1/pods", self._on_pod, asyncio.Event())),
                asyncio.create_task(self._resync_loop()),
            ]
            self._ready.set()
            try:
                await self._stopping.wait()
            finally:
                for task in tasks:
                    task.cancel()
                for name in self.nodes:  # nobody runs these nodes any more: deletions of their pods are immediate
                    if name not in self.lost:
                        with contextlib.suppress(KubeletError, aiohttp.ClientError, TimeoutError):
                            await asyncio.wait_for(self._set_node_ready(name, False), 2)
                for running in list(self._running.values()):
                    _kill(running.process, signal.SIGKILL)
                    if running.task is not None:
                        running.task.cancel()
                for task in list(self._background):
                    task.cancel()
                await asyncio.gather(
                    *tasks,
                    *(r.task for r in self._running.values() if r.task),
                    *self._background,
                    return_exceptions=True,
                )

    # -- HTTP -------------------------------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        ok_missing: bool = False,
        ok_conflict: bool = False,
        params: Mapping[str, str] | None = None,
    ) -> Obj | None:
        assert self._session is not None
        data = None if body is None else json.dumps(body)
        async with self._session.request(
            method, self.api_url + path, data=data, params=params, headers={"Content-Type": content_type}
        ) as response:
            payload = await response.read()
            if (response.status == 404 and ok_missing) or (response.status == 409 and ok_conflict):
                return None
            if response.status >= 400:
                raise KubeletError(f"{method} {path}: {response.status} {payload[:300]!r}")
            loaded: Obj = json.loads(payload) if payload else {}
            return loaded

    async def _patch_status(self, pod: Obj, status: Obj) -> None:
        """One strategic merge patch, as the real kubelet's status manager sends it: each condition it names replaces
        the one of the same type (the others stay), and ``metadata.uid`` is a precondition, so that a pod deleted and
        created again under the same name is left alone (409, or 404 once it is gone)."""
        meta = pod["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"
        if "conditions" in status:  # keys it does not name are null: replaced, not merged into the old condition
            status = {**status, "conditions": [{"reason": None, "message": None, **c} for c in status["conditions"]]}
        await self._call(
            "PATCH",
            path,
            {"metadata": {"uid": meta["uid"]}, "status": status},
            content_type="application/strategic-merge-patch+json",
            ok_missing=True,
            ok_conflict=True,
        )

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background (Events, bindings): the caller goes on at once."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _event(self, pod: Obj, reason: str, message: str, component: str = "kubelet") -> None:
        """A core/v1 Event about ``pod``, as ``kubectl describe pod`` lists them."""
        meta = pod["metadata"]
        now = _now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message,
            "type": "Normal",
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": component},
        }
        with contextlib.suppress(KubeletError, aiohttp.ClientError):
            await self._call("POST", f"/api/v1/namespaces/{meta['namespace']}/events", event)

    async def _register(self, node: FakeNode) -> None:
        try:
            await self._call("POST", "/api/v1/nodes", node.manifest())
        except KubeletError as error:
            if " 409 " not in str(error):
                raise
        await self._set_node_ready(node.name, True)

    async def _set_node_ready(self, name: str, ready: bool) -> None:
        node = self.nodes[name]
        condition = {
            "type": "Ready",
            "status": "True" if ready else "Unknown",
            "reason": "KubeletReady" if ready else "NodeStatusUnknown",
            "message": "kubelet is posting ready status" if ready else "Kubelet stopped posting node status.",
            "lastHeartbeatTime": _now(),
            "lastTransitionTime": _now(),
        }
        status = {
            "conditions": [condition],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
            "capacity": {"cpu": node.cpu, "memory": node.memory, "pods": "110"},
            "allocatable": {"cpu": node.cpu, "memory": node.memory, "pods": "110"},
        }
        await self._call(
            "PATCH", f"/api/v1/nodes/{name}/status", {"status": status}, content_type="application/merge-patch+json"
        )
        taints = [dict(t) for t in node.taints]
        if not ready:
            taints.append({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": _now()})
        await self._call(
            "PATCH",
            f"/api/v1/nodes/{name}",
            {"spec": {"taints": taints or None}},
            content_type="application/merge-patch+json",
        )

    # -- watching -------------------------------------------------------------------------------------------------

    async def _watch(self, path: str, handle: Callable[[str, Obj], Awaitable[None]], synced: asyncio.Event) -> None:
        """List then watch ``path`` for ever (list again after a 410 or a broken stream); ``handle`` gets every
        change, DELETED for the objects that went while the watch was down; ``synced`` is set after the first list."""
        assert self._session is not None
        seen: dict[str, Obj] = {}  # by uid
        while True:
            try:
                listed = await self._call("GET", path)
                assert listed is not None
                items = listed.get("items", [])
                present = {obj["metadata"]["uid"] for obj in items}
                for uid, gone in list(seen.items()):  # deleted while the watch was down
                    if uid not in present:
                        del seen[uid]
                        await handle("DELETED", gone)
                for obj in items:
                    seen[obj["metadata"]["uid"]] = obj
                    await handle("ADDED", obj)
                synced.set()
                rv = listed["metadata"]["resourceVersion"]
                params = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true"}
                async with self._session.get(
                    self.api_url + path,
                    params=params,
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
                ) as stream:
                    async for line in stream.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            break  # 410 Gone: list again
                        if event["type"] == "BOOKMARK":
                            continue
                        obj = event["object"]
                        if event["type"] == "DELETED":
                            seen.pop(obj["metadata"]["uid"], None)
                        else:
                            seen[obj["metadata"]["uid"]] = obj
                        await handle(event["type"], obj)
            except (aiohttp.ClientError, KubeletError, json.JSONDecodeError):
                await asyncio.sleep(0.2)
            except Exception as error:  # a bug: kept for the tests to see, and the kubelet goes on
                self.errors.append(f"watch {path}: {error!r}")
                await asyncio.sleep(0.2)

    async def _on_node(self, type_: str, node: Obj) -> None:
        name = node["metadata"]["name"]
        if type_ == "DELETED":
            self._node_objects.pop(name, None)
        else:
            self._node_objects[name] = node

    async def _on_service(self, type_: str, service: Obj) -> None:
        meta = service["metadata"]
        namespace, name = meta.get("namespace", "default"), meta["name"]
        headless = self._headless.setdefault(namespace, set())
        if type_ != "DELETED" and service.get("spec", {}).get("clusterIP") == "None":
            headless.add(name)
        else:
            headless.discard(name)

    async def _resync_loop(self) -> None:
        """Retry what one event could not finish: the pending pods that did not fit or whose binding failed."""
        while True:
            await asyncio.sleep(self.resync)
            for uid in list(self._unbound):
                try:
                    await self._schedule(uid)
                except Exception as error:  # a bug: kept for the tests to see, and the kubelet goes on
                    self.errors.append(f"resync: {error!r}")

    def _track(self, uid: str, pod: Obj | None) -> None:
        """Keep each node's Pending and Running pods up to date (what placement balances on)."""
        node = self._placed.pop(uid, None)
        if node is not None:
            self._load.get(node, set()).discard(uid)
        if pod is None:
            return
        node = pod.get("spec", {}).get("nodeName")
        if node and pod.get("status", {}).get("phase", "Pending") in ("Pending", "Running"):
            self._placed[uid] = node
            self._load.setdefault(node, set()).add(uid)

    async def _on_pod(self, type_: str, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        if type_ == "DELETED":
            self._pods.pop(uid, None)
            self._track(uid, None)
            self._unbound.discard(uid)
            self._unschedulable.discard(uid)
            running = self._running.pop(uid, None)
            if running is not None:
                _kill(running.process, signal.SIGKILL)
            return
        self._pods[uid] = pod
        if uid not in self._scheduling:  # a binding in flight keeps its reservation
            self._track(uid, pod)
        spec, meta = pod.get("spec", {}), pod["metadata"]
        node = spec.get("nodeName")
        running = self._running.get(uid)
        if meta.get("deletionTimestamp"):
            self._unbound.discard(uid)
            if node in self.nodes and node not in self.lost:
                await self._terminate(pod)
            return
        if running is not None:
            running.pod = pod
            return
        phase = pod.get("status", {}).get("phase", "Pending")
        if phase != "Pending":
            self._unbound.discard(uid)
            return
        if not node:
            if spec.get("schedulerName", "default-scheduler") == "default-scheduler" and uid not in self._unbound:
                self._unbound.add(uid)
                self._spawn(self._schedule(uid))
            return
        self._unbound.discard(uid)
        if node in self.nodes and node not in self.lost:
            self._start(pod, node)

    # -- scheduling -----------------------------------------------------------------------------------------------

    async def _schedule(self, uid: str) -> None:
        """Bind one pending pod to the fitting node with the fewest Pending and Running pods (from the watches: no
        request but the binding); a pod that fits nowhere gets ``PodScheduled=False`` once and waits for the resync."""
        pod = self._pods.get(uid)
        if pod is None or uid in self._scheduling or uid not in self._unbound:
            return
        meta = pod["metadata"]
        nodes = [n for name, n in self._node_objects.items() if name in self.nodes and name not in self.lost]
        chosen = choose_node(pod, nodes, {name: len(uids) for name, uids in self._load.items()})
        if chosen is None:
            if uid not in self._unschedulable:
                self._unschedulable.add(uid)
                message = (
                    f"0/{len(nodes)} nodes are available: no node matches the pod's node selector, affinity and "
                    "tolerations."
                )
                condition = {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastTransitionTime": _now(),
                }
                with contextlib.suppress(KubeletError, aiohttp.ClientError):
                    await self._patch_status(pod, {"conditions": [condition]})
            return
        self._scheduling.add(uid)
        self._track(uid, {"spec": {"nodeName": chosen}, "status": {"phase": "Pending"}})  # reserved while binding
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": chosen},
        }
        try:
            await self._call("POST", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", binding)
        except (KubeletError, aiohttp.ClientError):
            return  # deleted or bound meanwhile (the next event says what happened), or retried by the resync
        else:
            self._unbound.discard(uid)
            self._unschedulable.discard(uid)
        finally:
            self._scheduling.discard(uid)
            self._track(uid, self._pods.get(uid))
        # The binding sets nodeName and PodScheduled=True (as kube-apiserver's binding does); the pod starts now,
        # without waiting for the watch to bring the bound pod back.
        latest = self._pods.get(uid, pod)
        if not latest.get("spec", {}).get("nodeName"):
            latest = {**latest, "spec": {**latest.get("spec", {}), "nodeName": chosen}}
            self._pods[uid] = latest
            self._track(uid, latest)
        message = f"Successfully assigned {meta['namespace']}/{meta['name']} to {chosen}"
        self._spawn(self._event(latest, "Scheduled", message, "default-scheduler"))
        if not latest["metadata"].get("deletionTimestamp"):
            self._start(latest, chosen)

    # -- running --------------------------------------------------------------------------------------------------

    def _start(self, pod: Obj, node: str) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self._running:
            return
        running = _Running(pod, node)
        self._running[uid] = running
        running.task = asyncio.create_task(self._run_pod(running))
        running.task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(f"pod: {task.exception()!r}")

    def _pod_dir(self, pod: Obj) -> Path:
        meta = pod["metadata"]
        return self.workdir / "pods" / str(meta["namespace"]) / f"{meta['name']}-{meta['uid'][:8]}"

    def _volumes(self, pod: Obj, pod_dir: Path) -> dict[str, Path]:
        spec = pod.get("spec", {})
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        mounts: dict[str, Path] = {}
        for mount in (spec.get("containers") or [{}])[0].get("volumeMounts") or []:
            volume = volumes.get(mount["name"], {})
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                local = self.workdir / "pvc" / pod["metadata"]["namespace"] / claim
            else:
                local = pod_dir / "volumes" / mount["name"]
            if mount.get("subPath"):  # a folder of the volume, created when missing (as the kubelet does)
                local = local / mount["subPath"]
            local.mkdir(parents=True, exist_ok=True)
            mounts[mount["mountPath"]] = local
        return mounts

    async def _local(self, pod: Obj, node: str) -> LocalContainer:
        namespace = pod["metadata"]["namespace"]
        headless = self._headless.get(namespace, set())  # from the services watch
        pod_dir = self._pod_dir(pod)
        pod_dir.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        base["KUBECONFIG"] = str(self.kubeconfig)
        base["HOSTNAME"] = pod["spec"].get("hostname") or pod["metadata"]["name"]
        if node in self.slowdown:
            base["KUBETUNE_SLOWDOWN"] = str(self.slowdown[node])

        def port_for(master: str) -> int:
            key = (namespace, master)
            if key not in self._ports:
                self._ports[key] = _free_port()
            return self._ports[key]

        return local_container(
            pod,
            volumes=self._volumes(pod, pod_dir),
            pod_dir=pod_dir,
            headless=headless,
            port_for=port_for,
            base_env=base,
        )

    async def _run_pod(self, running: _Running) -> None:
        pod = running.pod
        started_at = _now()
        try:
            local = await self._local(pod, running.node)
        except (KubeletError, aiohttp.ClientError, OSError) as error:
            await self._finish(running, 128, "ContainerCannotRun", str(error), started_at)
            return
        if not local.argv:
            await self._finish(
                running, 128, "ContainerCannotRun", "the container has no command to run locally", started_at
            )
            return
        pod_dir = self._pod_dir(pod)
        while True:
            if running.terminating:  # deleted before it started, or between restarts
                with contextlib.suppress(KubeletError, aiohttp.ClientError):
                    await self._force_delete(pod)
                return
            if local.termination_file is not None:
                local.termination_file.unlink(missing_ok=True)
            running.log = pod_dir / "log.txt"
            started_at = _now()
            with running.log.open("ab") as log:
                try:
                    argv, preexec = _with_death_signal(local.argv, local.env)
                    running.process = await asyncio.create_subprocess_exec(
                        *argv,
                        env=local.env,
                        cwd=str(pod_dir),
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=log,
                        stderr=asyncio.subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=preexec,
                    )
                except OSError as error:
                    await self._finish(running, 128, "StartError", str(error), started_at)
                    return
            container_name = pod["spec"]["containers"][0].get("name", "")
            self._spawn(self._event(pod, "Started", f"Started container {container_name}"))
            process = running.process
            try:  # a container that is over within one status sync is reported terminated only, as the real one is
                code = await asyncio.wait_for(asyncio.shield(process.wait()), STATUS_SYNC_SECONDS)
            except TimeoutError:
                await self._report_running(running, started_at)
                code = await process.wait()
            if running.killed_by_node_loss:
                return
            exit_code = 128 - code if code < 0 else code
            message = _read_message(local.termination_file)
            policy = pod["spec"].get("restartPolicy", "Always")
            restart = not running.terminating and (policy == "Always" or (policy == "OnFailure" and exit_code))
            if not restart:
                await self._finish(running, exit_code, "Completed" if exit_code == 0 else "Error", message, started_at)
                return
            running.restarts += 1
            running.last_state = {"terminated": _terminated(exit_code, message, started_at)}
            await asyncio.sleep(self.restart_backoff)

    async def _report_running(self, running: _Running, started_at: str) -> None:
        pod = running.pod
        container = (pod["spec"].get("containers") or [{}])[0]
        pid = running.process.pid if running.process is not None else 0
        status = {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "hostIP": "127.0.0.1",
            "startTime": pod.get("status", {}).get("startTime") or started_at,
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": started_at} for t in _OWN_CONDITIONS],
            "containerStatuses": [
                {
                    "name": container.get("name", "main"),
                    "image": container.get("image", ""),
                    "imageID": "",
                    "containerID": f"fake://{pid}",
                    "ready": True,
                    "started": True,
                    "restartCount": running.restarts,
                    "state": {"running": {"startedAt": started_at}},
                    "lastState": running.last_state,
                }
            ],
        }
        with contextlib.suppress(KubeletError, aiohttp.ClientError):
            await self._patch_status(pod, status)

    async def _finish(self, running: _Running, exit_code: int, reason: str, message: str, started_at: str) -> None:
        """Write the terminated status; a terminating pod is then deleted for good."""
        pod = running.pod
        container = (pod["spec"].get("containers") or [{}])[0]
        phase = "Succeeded" if exit_code == 0 else "Failed"
        status = {
            "phase": phase,
            "podIP": "127.0.0.1",
            "hostIP": "127.0.0.1",
            "conditions": [
                {
                    "type": t,
                    "status": "False" if t in ("Ready", "ContainersReady") else "True",
                    "reason": "PodCompleted",
                    "lastTransitionTime": _now(),
                }
                for t in _OWN_CONDITIONS
            ],
            "containerStatuses": [
                {
                    "name": container.get("name", "main"),
                    "image": container.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": running.restarts,
                    "state": {"terminated": {**_terminated(exit_code, message, started_at), "reason": reason}},
                    "lastState": running.last_state,
                }
            ],
        }
        with contextlib.suppress(KubeletError, aiohttp.ClientError):
            await self._patch_status(pod, status)
            if running.terminating:
                await self._force_delete(pod)

    async def _force_delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        await self._call(
            "DELETE",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
            {
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": meta["uid"]},
            },
            ok_missing=True,
        )

    async def _terminate(self, pod: Obj) -> None:
        """Graceful termination: SIGTERM, SIGKILL after the grace period, status, then the final deletion."""
        running = self._running.get(pod["metadata"]["uid"])
        if running is None:
            with contextlib.suppress(KubeletError):
                await self._force_delete(pod)
            return
        if running.terminating:
            return
        running.terminating = True
        running.pod = pod
        grace = float(
            pod["metadata"].get("deletionGracePeriodSeconds") or pod["spec"].get("terminationGracePeriodSeconds", 30)
        )
        process = running.process
        if process is None or process.returncode is not None:
            if running.task is not None and running.task.done():
                with contextlib.suppress(KubeletError):
                    await self._force_delete(pod)
            return
        self._spawn(self._event(pod, "Killing", f"Stopping container {pod['spec']['containers'][0].get('name', '')}"))
        _kill(process, signal.SIGTERM)
        asyncio.get_running_loop().call_later(grace, _kill, process, signal.SIGKILL)

    # -- chaos ----------------------------------------------------------------------------------------------------

    def _call_soon(self, coro: Any) -> Any:
        loop = self._loop
        if loop is None:
            raise RuntimeError("the fake kubelet is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

    def slow_node(self, name: str, factor: float) -> None:
        """Pods started on ``name`` from now on get ``KUBETUNE_SLOWDOWN=factor``."""
        self.slowdown[name] = factor

    def lose_node(self, name: str) -> None:
        """The node dies: its processes are SIGKILLed, it turns NotReady (unreachable taint), and its pods are
        deleted after ``node_loss_delay`` seconds."""
        self._call_soon(self._lose_node(name))

    async def _lose_node(self, name: str) -> None:
        self.lost.add(name)
        for running in list(self._running.values()):
            if running.node == name:
                running.killed_by_node_loss = True
                _kill(running.process, signal.SIGKILL)
        await self._set_node_ready(name, False)
        asyncio.get_running_loop().call_later(
            self.node_loss_delay, lambda: asyncio.ensure_future(self._evict_lost(name))
        )

    async def _evict_lost(self, name: str) -> None:
        listed = await self._call("GET", "/api/v1/pods", params={"fieldSelector": f"spec.nodeName={name}"})
        for pod in (listed or {}).get("items", []):
            with contextlib.suppress(KubeletError, aiohttp.ClientError):
                await self._patch_status(
                    pod,
                    {
                        "phase": "Failed",
                        "reason": "NodeLost",
                        "conditions": [
                            {
                                "type": "DisruptionTarget",
                                "status": "True",
                                "reason": "DeletionByTaintManager",
                                "message": f"Taint manager: deleting due to NoExecute taint on node {name}",
                                "lastTransitionTime": _now(),
                            }
                        ],
                    },
                )
                await self._force_delete(pod)
            self._running.pop(pod["metadata"]["uid"], None)

    def preempt(self, pod: str, namespace: str = "default") -> None:
        """The scheduler preempts ``pod``: DisruptionTarget (PreemptionByScheduler), then graceful deletion."""
        self._call_soon(
            self._disrupt(
                pod,
                namespace,
                "PreemptionByScheduler",
                "Kubernetes default scheduler: preempting to accommodate a higher priority pod",
            )
        )

    def evict(self, pod: str, namespace: str = "default") -> None:
        """The Eviction API evicts ``pod`` (DisruptionTarget EvictionByEvictionAPI, then graceful deletion)."""
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}}
        self._call_soon(self._call("POST", f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction", body))

    async def _disrupt(self, name: str, namespace: str, reason: str, message: str) -> None:
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        pod = await self._call("GET", path)
        assert pod is not None
        await self._patch_status(
            pod,
            {
                "conditions": [
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": reason,
                        "message": message,
                        "lastTransitionTime": _now(),
                    }
                ]
            },
        )
        await self._call("DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1"})

    # -- inspection -----------------------------------------------------------------------------------------------

    def log(self, pod: str, namespace: str = "default") -> str:
        """The output of the newest process of ``pod`` ('' when it never ran)."""
        folders = sorted((self.workdir / "pods" / namespace).glob(f"{pod}-*"), key=lambda p: p.stat().st_mtime)
        if not folders or not (folders[-1] / "log.txt").exists():
            return ""
        return (folders[-1] / "log.txt").read_text(errors="replace")

    def pids(self) -> list[int]:
        """The process ids of the containers now running."""
        return [
            r.process.pid
            for r in list(self._running.values())
            if r.process is not None and r.process.returncode is None
        ]


def _terminated(exit_code: int, message: str, started_at: str) -> Obj:
    out: Obj = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": started_at,
        "finishedAt": _now(),
    }
    if message:
        out["message"] = message
    return out


def _read_message(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_bytes()[:_MESSAGE_LIMIT].decode("utf-8", "replace")
    except OSError:
        return ""


def _kill(process: asyncio.subprocess.Process | None, signum: signal.Signals) -> None:
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def main(argv: list[str] | None = None) -> int:
    """``python -m kubetune.testing.kubelet --kubeconfig K --workdir W``: the fake kubelet in a process of its own,
    until SIGINT or SIGTERM (it prints ``ready`` once its nodes are registered and its caches filled)."""
    parser = argparse.ArgumentParser(prog="python -m kubetune.testing.kubelet", description=main.__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the API server to run pods of")
    parser.add_argument("--workdir", type=Path, required=True, help="where pods' folders and logs go")
    parser.add_argument("--resync", type=float, default=1.0, help="seconds between retries of unbound pods")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with FakeKubelet.from_kubeconfig(args.kubeconfig, workdir=args.workdir, resync=args.resync) as kubelet:
        print("ready", flush=True)
        while not stop.wait(0.5):
            pass
        for error in kubelet.errors:
            print(f"kubelet error: {error}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
