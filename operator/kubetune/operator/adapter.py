"""The Kubernetes adapter: the only module of the operator that talks to the API server.

Decides: how each act is made idempotent — create-if-absent (409 AlreadyExists means done), delete-if-present
(404 means done), status written by a merge patch on the ``/status`` subresource, owner references through
``kopf.adopt`` so that deleting a TrainingJob garbage-collects its pods and service — and how Events are recorded
(core/v1 Events on the TrainingJob, with the controller as the reporting component).
Uses the official ``kubernetes`` client (blocking: callers run it in a worker thread): its configuration,
authentication and connection pool. Writes go straight to that pool with plain JSON bodies; the client's own request
path (serializing through its model sanitizer, re-running the kubeconfig's credential hook and proxy lookup on every
request) cost more CPU than the request itself. Credentials are taken from the client at most every
``AUTH_SECONDS`` (client-go re-reads a projected token no more often than once a minute), and at once after a 401.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
import urllib3
from kubernetes import client, config

from kubetune.api import GROUP, PLURAL, VERSION
from kubetune.core import Event

logger = logging.getLogger(__name__)
REPORTING_COMPONENT = "kubetune-operator"
_PATHS = {"Pod": "pods", "Service": "services", "Event": "events"}
# How long the credentials and host taken from the client's configuration are reused.
AUTH_SECONDS = 1.0


def _api_client() -> client.ApiClient:
    """A client for the cluster this process runs in, else for ``$KUBECONFIG`` / ``~/.kube/config``."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    # One connection per reconcile thread (the default pool keeps 5 per CPU and drops the rest after each request).
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, 32)
    return client.ApiClient(configuration)


class ApiError(Exception):
    """An API call answered with an error status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body[:500]}")
        self.status = status
        self.body = body


class KubernetesAdapter:
    """Idempotent acts on the cluster for one operator process.

    Requests go through the official client's configuration, authentication and connection pool, with plain JSON
    bodies (the generated typed models would validate and convert every pod on the hot path for nothing).
    """

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api_client = api_client or _api_client()
        # (until, the connection pool of the API server's host (None through a proxy), the base of every URL (a path,
        # or through a proxy the whole URL), the auth headers)
        self._target: tuple[float, urllib3.HTTPConnectionPool | None, str, dict[str, str]] | None = None
        self._target_lock = threading.Lock()

    def _pool_and_auth(self, *, fresh: bool = False) -> tuple[urllib3.HTTPConnectionPool | None, str, dict[str, str]]:
        """The client's connection pool for the API server, the server's base path, and the auth headers, as the
        client's configuration gives them now."""
        target = self._target
        now = time.monotonic()
        if target is None or fresh or now >= target[0]:
            with self._target_lock:
                headers: dict[str, str] = {}
                # Runs the configuration's refresh hook (token expiry, a rotated service-account token).
                self.api_client.update_params_for_auth(headers, [], ["BearerToken"], "", "", None)
                host = str(self.api_client.configuration.host)
                manager = self.api_client.rest_client.pool_manager
                if isinstance(manager, urllib3.ProxyManager):
                    target = (now + AUTH_SECONDS, None, host, headers)
                else:
                    pool = manager.connection_from_url(host)
                    target = (now + AUTH_SECONDS, pool, urllib3.util.parse_url(host).path or "", headers)
                self._target = target
        return target[1], target[2], target[3]

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        if method == "GET":
            return self._request_through_client(method, path, body, content_type)
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (0, 1):
            pool, base, auth = self._pool_and_auth(fresh=attempt > 0)
            headers = {"Content-Type": content_type, "Accept": "application/json", **auth}
            if pool is None:  # through a proxy: its manager decides how each URL is sent
                response = self.api_client.rest_client.pool_manager.request(
                    method, base + path, body=data, headers=headers, preload_content=True
                )
            else:
                response = pool.urlopen(method, base + path, body=data, headers=headers, preload_content=True)
            if response.status != 401:
                break
        payload: bytes = response.data
        if response.status >= 400:
            raise ApiError(response.status, payload.decode("utf-8", "replace") if payload else "")
        return json.loads(payload) if payload else None

    def _request_through_client(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        """The client's own path (reads keep its retry policy, ``client_go_retries`` included)."""
        params = self.api_client.param_serialize(
            method,
            path,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(*params)
        data = response.read()  # type: ignore[no-untyped-call]
        if response.status >= 400:
            raise ApiError(response.status, data.decode("utf-8", "replace") if data else "")
        return json.loads(data) if data else None

    def create_if_absent(self, obj: dict[str, Any], owner: Mapping[str, Any]) -> bool:
        """Create a Pod or Service owned by ``owner``; False when it already existed."""
        kopf.adopt(obj, owner=owner)  # type: ignore[arg-type]
        namespace = obj["metadata"]["namespace"]
        if obj["kind"] == "TrainingJob":  # a study's trial
            path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
        else:
            path = f"/api/v1/namespaces/{namespace}/{_PATHS[obj['kind']]}"
        try:
            self.request("POST", path, obj)
        except ApiError as error:
            if error.status == 409:
                return False
            raise
        return True

    def delete_pod_if_present(self, namespace: str, name: str) -> bool:
        """Delete a pod gracefully (its grace period lets the trainer checkpoint); False when it was gone."""
        try:
            self.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}")
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    def annotate_trainingjob(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        """Merge annotations into a TrainingJob (the stop request of a pruned trial); a missing one is done."""
        try:
            self.request(
                "PATCH",
                f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}",
                {"metadata": {"annotations": dict(annotations)}},
                content_type="application/merge-patch+json",
            )
        except ApiError as error:
            if error.status != 404:
                raise

    def read_secret(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret (a study's storage URL), decoded; ValueError naming the Secret when absent."""
        try:
            secret = self.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except ApiError as error:
            raise ValueError(f"spec.tuning.storage.secretRef: Secret {namespace}/{name}: {error.status}") from None
        data = (secret or {}).get("data") or {}
        if key not in data:
            raise ValueError(f"spec.tuning.storage.secretRef: Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data[key]).decode("utf-8").strip()

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Merge-patch the TrainingJob's ``/status`` subresource; returns the job as the API server answered it."""
        answer: Mapping[str, Any] | None = self.request(
            "PATCH",
            f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status",
            {"status": dict(status)},
            content_type="application/merge-patch+json",
        )
        return answer

    def record_event(self, owner: Mapping[str, Any], event: Event) -> None:
        """A core/v1 Event on the TrainingJob; failures are logged, never raised (Events are best effort)."""
        metadata = owner.get("metadata", {})
        now = datetime.now(UTC)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{metadata.get('name')}.", "namespace": metadata.get("namespace")},
            "involvedObject": {
                "apiVersion": owner.get("apiVersion"),
                "kind": owner.get("kind"),
                "name": metadata.get("name"),
                "namespace": metadata.get("namespace"),
                "uid": metadata.get("uid"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": REPORTING_COMPONENT},
            "reportingComponent": REPORTING_COMPONENT,
            "reportingInstance": REPORTING_COMPONENT,
            "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 1,
        }
        try:
            self.request("POST", f"/api/v1/namespaces/{metadata.get('namespace')}/events", body)
        except ApiError as error:
            logger.warning("could not record event %s on %s: %s", event.reason, metadata.get("name"), error.status)
