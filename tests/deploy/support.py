"""Shared by the deployment tests: paths, value sets, the tool runner and YAML helpers."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubetune"
RELEASE, NAMESPACE = "kubetune", "kubetune-system"
KUBERNETES_VERSION = "1.33.0"  # kubectl's version; kubernetes-validate ships its schemas offline

Render = Callable[..., list[dict[str, Any]]]

EVERYTHING = (
    "mlflow.enabled=true",
    "postgresql.enabled=true",
    "trainer.namespaces={ml,research}",
    "operator.watchNamespace=ml",
    "operator.imagePullSecrets[0].name=registry",
    "operator.tolerations[0].key=dedicated",
    "operator.tolerations[0].operator=Exists",
    "operator.extraEnv[0].name=EXTRA",
    "operator.extraEnv[0].value=enabled",
    "mlflow.allowedHosts={mlflow.example.com}",
    "metrics.serviceMonitor.enabled=false",
)
VALUE_SETS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "everything": EVERYTHING,
    "external-services": (
        "mlflow.enabled=true",
        "mlflow.persistence.enabled=false",
        "mlflow.artifactsDestination=s3://bucket/mlflow",
        "postgresql.external.secretName=db",
    ),
    "no-crds-no-peering": ("crds.enabled=false", "operator.peering.enabled=false", "metrics.service.enabled=false"),
}


def run_tool(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def documents(text: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a multi-document stream."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def component(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])
