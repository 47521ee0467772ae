"""The Kubernetes adapter: the only module of the operator that talks to the API server.

Decides: how each act is made idempotent — create-if-absent (409 AlreadyExists means done), delete-if-present
(404 means done), status written by a merge patch on the ``/status`` subresource, owner references through
``kopf.adopt`` so that deleting a TrainingJob garbage-collects its pods and service — and how Events are recorded
(core/v1 Events on the TrainingJob, with the controller as the reporting component).
Uses the official ``kubernetes`` client (blocking: callers run it in a worker thread).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import client, config

from kubetune.api import GROUP, PLURAL, VERSION
from kubetune.core import Event

logger = logging.getLogger(__name__)
REPORTING_COMPONENT = "kubetune-operator"
_PATHS = {"Pod": "pods", "Service": "services", "Event": "events"}


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

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
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
