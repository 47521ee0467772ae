"""The CRD YAML is the one source of truth: the typed model, the rules and the shipped copy agree with it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml
from kubetune.api import crd
from kubetune.api.trainingjob import CROSS_FIELD_RULES, TrainingJobSpec

ROOT = Path(__file__).resolve().parents[2]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _dataclass_fields(cls: Any) -> set[str]:
    return {field.name for field in dataclasses.fields(cls)}


def test_the_packaged_crd_is_the_manifests_crd() -> None:
    shipped = crd.crd_text()
    assert shipped == (ROOT / "manifests" / "crds" / crd.CRD_FILE).read_text(encoding="utf-8")


def test_crd_names_short_name_and_status_subresource() -> None:
    manifest = crd.crd()
    assert manifest["metadata"]["name"] == "trainingjobs.kubetune.dev"
    assert manifest["spec"]["names"]["shortNames"] == ["tj"]
    version = manifest["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [column["name"] for column in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Workers", "Progress", "Metric", "Age"]


def test_every_spec_property_is_a_field_of_the_typed_model_and_back() -> None:
    spec_schema = crd.schema()["properties"]["spec"]["properties"]
    assert {_snake(key) for key in spec_schema} == _dataclass_fields(TrainingJobSpec)
    hints = {field.name: field.type for field in dataclasses.fields(TrainingJobSpec)}
    nested = {"trainer", "hyperparameters", "parallelism", "checkpoint", "tracking"}
    import kubetune.api.trainingjob as module

    for key in nested:
        cls = getattr(module, str(hints[key]))
        assert {_snake(k) for k in spec_schema[key]["properties"]} == _dataclass_fields(cls), key


def test_every_cel_rule_has_its_python_counterpart() -> None:
    messages = {message for _, _, message in crd.cel_rules()}
    assert messages == set(CROSS_FIELD_RULES)


def test_every_spec_field_is_described() -> None:
    """Every field of spec and of its sections (what `kubectl explain` shows) carries a description."""
    spec = crd.schema()["properties"]["spec"]
    missing = [key for key, sub in spec["properties"].items() if "description" not in sub]
    for section, sub in spec["properties"].items():
        missing += [f"{section}.{key}" for key, leaf in sub.get("properties", {}).items() if "description" not in leaf]
    assert missing == []


def test_examples_use_only_the_served_version() -> None:
    for example in (ROOT / "examples").glob("*.yaml"):
        doc = yaml.safe_load(example.read_text())
        assert doc["apiVersion"] == crd.API_VERSION, example
