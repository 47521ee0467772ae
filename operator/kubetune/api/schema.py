"""Structural OpenAPI v3 schemas, as the Kubernetes API server applies them to custom resources.

Decides: what a schema's defaults fill in, and which values a schema refuses, each refusal named by its field path
(``spec.parallelism.workers: must be >= 1, got 0``). It covers the subset of OpenAPI v3 that structural CRD schemas
use: types, enums, minimum/maximum (with the boolean exclusive forms), lengths, item and property counts, patterns,
required, properties, additionalProperties, ``x-kubernetes-int-or-string`` and
``x-kubernetes-preserve-unknown-fields``. CEL rules (``x-kubernetes-validations``) are not evaluated here; their
counterparts live in :mod:`kubetune.api.rules`.

Pure: imports nothing but the standard library.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Schema = Mapping[str, Any]
UnknownFields = Literal["error", "prune", "keep"]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one field."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def join(path: str, key: str | int) -> str:
    """The field path of ``key`` inside ``path`` (``spec.tolerations[0].key``)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _matches_type(value: Any, expected: str) -> bool:
    actual = _type_name(value)
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer" and actual == "number":
        return float(value).is_integer()
    return actual == expected


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value).replace("True", "true").replace("False", "false")
    return text if len(text) <= 60 else text[:57] + "..."


def apply_defaults(value: Any, schema: Schema) -> Any:
    """A copy of ``value`` with every missing property that has a schema default filled in, recursively."""
    value = copy.deepcopy(value)
    _fill(value, schema)
    return value


def _fill(value: Any, schema: Schema) -> None:
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _fill(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key, item in value.items():
                if key not in schema.get("properties", {}):
                    _fill(item, extra)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _fill(item, schema["items"])


def prune(value: Any, schema: Schema) -> Any:
    """A copy of ``value`` without the fields the schema does not know (the API server's default pruning)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return copy.deepcopy(value)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in props:
                out[key] = prune(item, props[key])
            elif isinstance(extra, Mapping):
                out[key] = prune(item, extra)
            elif extra is True:
                out[key] = copy.deepcopy(item)
        return out
    if isinstance(value, list) and "items" in schema:
        return [prune(item, schema["items"]) for item in value]
    return copy.deepcopy(value)


def validate(value: Any, schema: Schema, path: str = "", unknown: UnknownFields = "error") -> list[Problem]:
    """Every problem of ``value`` against ``schema``, sorted by path; empty when it is valid."""
    problems: list[Problem] = []
    _check(value, schema, path, unknown, problems)
    return sorted(problems)


def _check(value: Any, schema: Schema, path: str, unknown: UnknownFields, out: list[Problem]) -> None:
    if value is None and schema.get("nullable"):
        return
    if schema.get("x-kubernetes-int-or-string"):
        if _type_name(value) not in ("integer", "string"):
            out.append(Problem(path, f"must be an integer or a string, got {_type_name(value)} {_show(value)}"))
        elif isinstance(value, str):  # a pattern constrains the string form only (a quantity's, for example)
            _check_string(value, schema, path, out)
        return
    expected = schema.get("type")
    if expected and not _matches_type(value, expected):
        out.append(Problem(path, f"must be {_article(expected)}, got {_type_name(value)} {_show(value)}"))
        return
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(str(choice) for choice in schema["enum"])
        out.append(Problem(path, f"must be one of [{choices}], got {_show(value)}"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, path, out)
    if isinstance(value, str):
        _check_string(value, schema, path, out)
    if isinstance(value, list):
        _check_array(value, schema, path, unknown, out)
    if isinstance(value, dict):
        _check_object(value, schema, path, unknown, out)


def _article(type_name: str) -> str:
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"


def _check_number(value: float, schema: Schema, path: str, out: list[Problem]) -> None:
    if "minimum" in schema:
        low = schema["minimum"]
        if schema.get("exclusiveMinimum") and value <= low:
            out.append(Problem(path, f"must be > {low}, got {_show(value)}"))
        elif value < low:
            out.append(Problem(path, f"must be >= {low}, got {_show(value)}"))
    if "maximum" in schema:
        high = schema["maximum"]
        if schema.get("exclusiveMaximum") and value >= high:
            out.append(Problem(path, f"must be < {high}, got {_show(value)}"))
        elif value > high:
            out.append(Problem(path, f"must be <= {high}, got {_show(value)}"))


def _check_string(value: str, schema: Schema, path: str, out: list[Problem]) -> None:
    if len(value) < schema.get("minLength", 0):
        out.append(Problem(path, f"must have at least {schema['minLength']} character(s)"))
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        out.append(Problem(path, f"must have at most {schema['maxLength']} characters, got {len(value)}"))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        out.append(Problem(path, f"must match {schema['pattern']}, got {_show(value)}"))


def _check_array(value: list[Any], schema: Schema, path: str, unknown: UnknownFields, out: list[Problem]) -> None:
    if len(value) < schema.get("minItems", 0):
        out.append(Problem(path, f"must have at least {schema['minItems']} item(s)"))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        out.append(Problem(path, f"must have at most {schema['maxItems']} items, got {len(value)}"))
    if "items" in schema:
        for index, item in enumerate(value):
            _check(item, schema["items"], join(path, index), unknown, out)


def _check_object(value: dict[str, Any], schema: Schema, path: str, unknown: UnknownFields, out: list[Problem]) -> None:
    for key in schema.get("required", []):
        if key not in value:
            out.append(Problem(join(path, key), "required field is missing"))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        out.append(Problem(path, f"must have at most {schema['maxProperties']} properties, got {len(value)}"))
    props: Mapping[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
    for key, item in value.items():
        if not isinstance(key, str):
            out.append(Problem(join(path, str(key)), "field names must be strings"))
        elif key in props:
            _check(item, props[key], join(path, key), unknown, out)
        elif isinstance(extra, Mapping):
            _check(item, extra, join(path, key), unknown, out)
        elif not preserve and extra is not True and unknown == "error" and (props or extra is False):
            known = ", ".join(sorted(props))
            out.append(Problem(join(path, key), f"unknown field (known fields: {known})"))
