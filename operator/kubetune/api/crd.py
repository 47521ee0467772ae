"""The TrainingJob CRD as shipped in the package: names, version and the openAPIV3Schema.

Decides: where the API's one source of truth is read from (``kubetune/crds/``, the same file as
``manifests/crds/``). Pure: imports the standard library and PyYAML only.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

GROUP = "kubetune.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TrainingJob"
PLURAL = "trainingjobs"
CRD_FILE = f"{PLURAL}.{GROUP}.yaml"


@functools.cache
def crd_text() -> str:
    """The CRD manifest exactly as shipped."""
    return resources.files("kubetune").joinpath("crds", CRD_FILE).read_text(encoding="utf-8")


def crd() -> dict[str, Any]:
    """The CRD manifest as a fresh dict."""
    loaded: dict[str, Any] = yaml.safe_load(crd_text())
    return loaded


@functools.cache
def _schema() -> dict[str, Any]:
    for version in crd()["spec"]["versions"]:
        if version["name"] == VERSION:
            schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
            return schema
    raise LookupError(f"the CRD has no version {VERSION}")


def schema() -> dict[str, Any]:
    """The openAPIV3Schema of the served version (shared, do not mutate)."""
    return _schema()


def cel_rules() -> list[tuple[str, str, str]]:
    """Every ``x-kubernetes-validations`` rule in the schema as (schema path, rule, message)."""
    found: list[tuple[str, str, str]] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for rule in node.get("x-kubernetes-validations", []):
            found.append((path, rule["rule"], rule["message"]))
        for key, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{key}" if path else key)

    walk(schema(), "")
    return found
