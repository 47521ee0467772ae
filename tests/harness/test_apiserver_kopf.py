"""kopf runs against the test API server: discovery, list+watch, handler progress and status patches land."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import kopf
import kubernetes.config.kube_config
import pytest
from kopf.testing import KopfRunner
from kubetune.testing.apiserver import TestAPIServer

from .conftest import wait_for

WIDGETS_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.harness.kubetune.dev"},
    "spec": {
        "group": "harness.kubetune.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}

OPERATOR = textwrap.dedent("""
    import kopf

    @kopf.on.create("harness.kubetune.dev", "v1", "widgets", id="grow")
    def grow(spec, patch, **_):
        patch.status["doubled"] = spec["size"] * 2

    @kopf.on.update("harness.kubetune.dev", "v1", "widgets", field="spec.size", id="resize")
    def resize(new, patch, **_):
        patch.status["doubled"] = new * 2

    @kopf.on.delete("harness.kubetune.dev", "v1", "widgets", id="farewell")
    def farewell(name, **_):
        kopf.info({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
                  reason="Farewell", message=name)
""")


@pytest.fixture
def registry() -> Iterator[kopf.OperatorRegistry]:
    """A registry of the test operator's own, the process's default one restored afterwards: when a test before ran
    kubetune's operator in this process, the default registry also holds kubetune's handlers, whose start-up needs
    kubetune's memo (it retried every 60 s, so these tests timed out after another test module)."""
    default = kopf.get_default_registry()
    fresh = kopf.OperatorRegistry()
    kopf.on.login(registry=fresh)(kopf.login_via_client)  # the default registry's fallback login
    try:
        yield fresh
    finally:
        kopf.set_default_registry(default)


@pytest.fixture
def operator_file(tmp_path: Path) -> Path:
    path = tmp_path / "operator.py"
    path.write_text(OPERATOR)
    return path


@pytest.mark.parametrize("scope", [["-A"], ["-n", "default"], ["-n", "def*"]], ids=["cluster", "namespace", "glob"])
def test_kopf_handlers_run_and_their_status_patches_land(
    api: TestAPIServer,
    kubeconfig: Path,
    operator_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    scope: list[str],
    registry: kopf.OperatorRegistry,
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    # The client reads $KUBECONFIG once, at import; kopf logs in through it.
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    api.create(WIDGETS_CRD)
    with KopfRunner(["run", *scope, "--standalone", str(operator_file)], timeout=60, registry=registry) as runner:
        api.create(
            {
                "apiVersion": "harness.kubetune.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "w1", "namespace": "default"},
                "spec": {"size": 3},
            }
        )
        done = wait_for(
            lambda: (w := api.get("widgets", "w1")) and w.get("status", {}).get("doubled") == 6 and w,
            timeout=20,
            what="the create handler's status patch",
        )
        assert "kopf.zalando.org/KopfFinalizerMarker" in done["metadata"]["finalizers"]
        assert done["metadata"]["generation"] == 1

        api.patch("widgets", "w1", {"spec": {"size": 5}})
        wait_for(
            lambda: (w := api.get("widgets", "w1")) and w.get("status", {}).get("doubled") == 10,
            timeout=20,
            what="the update handler's status patch",
        )

        api.delete("widgets", "w1")
        wait_for(lambda: api.get("widgets", "w1") is None, timeout=20, what="kopf to release its finalizer")
        wait_for(
            lambda: any(e.get("reason") == "Farewell" for e in api.objects("events")),
            timeout=20,
            what="the delete handler's event",
        )
    assert runner.exception is None
    assert runner.exit_code == 0
    assert "Handler 'grow' succeeded" in runner.output
    assert "Traceback" not in runner.output


def test_kopf_rides_out_injected_server_errors(
    api: TestAPIServer,
    kubeconfig: Path,
    operator_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    registry: kopf.OperatorRegistry,
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    api.create(WIDGETS_CRD)
    fault = api.inject_fault("PATCH", r"/widgets/", 500, probability=1.0, times=2)
    with KopfRunner(["run", "-A", "--standalone", str(operator_file)], timeout=60, registry=registry) as runner:
        api.create(
            {
                "apiVersion": "harness.kubetune.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "w1", "namespace": "default"},
                "spec": {"size": 4},
            }
        )
        wait_for(
            lambda: (w := api.get("widgets", "w1")) and w.get("status", {}).get("doubled") == 8,
            timeout=30,
            what="the status patch after the injected failures",
        )
    assert fault.hits == 2
    assert runner.exception is None
