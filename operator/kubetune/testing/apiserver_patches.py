"""How the test API server changes and filters objects: merge and JSON patches, label and field selectors.

Decides: RFC 7386 merge patches, strategic merge patches (merge patches whose well-known built-in lists — containers,
env, volumes, conditions... — merge by their merge key), RFC 6902 JSON patches
with ``test`` (a failed test is a :class:`PatchError`, answered 422 like the real server), and the meaning of label
selectors (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``) and field selectors (``=``, ``==``, ``!=`` on
any dotted field path, e.g. ``metadata.name``, ``spec.nodeName``, ``status.phase``, ``involvedObject.name``).

Pure: standard library only.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class PatchError(ValueError):
    """A patch that cannot be applied; the message says why."""


class SelectorError(ValueError):
    """A selector that cannot be parsed."""


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with the RFC 7386 merge ``patch`` applied: a new value that shares the parts the patch does not
    touch with ``target`` (copied on write; the inputs are not changed: treat the result as read-only too)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# The merge keys of the built-in lists that strategic merge patches merge element by element.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
}


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch for the built-in kinds: a merge patch whose lists in :data:`MERGE_KEYS` merge element
    by element (``$patch: delete`` removes one); ``$``-directives such as ``$setElementOrder`` are dropped."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}  # copied on write, as merge_patch
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif key in MERGE_KEYS and isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, MERGE_KEYS[key])
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_list(current: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    merged = list(current)  # the elements a patch changes are replaced by new ones, never changed in place
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            return copy.deepcopy(patch)  # not mergeable: replaced, as a merge patch would
        index = next(
            (i for i, old in enumerate(merged) if isinstance(old, dict) and old.get(merge_key) == item[merge_key]), None
        )
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
        elif index is None:
            merged.append(strategic_merge_patch({}, item))
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    current = doc
    for part in parts[:-1]:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise PatchError(f"path {path!r} does not exist")
    return current


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise PatchError(f"path {path!r} does not exist")


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the root")
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise PatchError(f"path {path!r} does not exist")


def _add(doc: Any, path: str, value: Any, *, replace: bool) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"path {path!r} does not exist")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise PatchError(f"index {last!r} is out of range at {path!r}")
    else:
        raise PatchError(f"path {path!r} does not exist")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """``target`` with the RFC 6902 ``operations`` applied (a new value); :class:`PatchError` if one fails."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "path" not in op or "op" not in op:
            raise PatchError(f"invalid operation {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"testing value {path} failed")
        elif kind == "remove":
            _remove(doc, path)
        elif kind in ("add", "replace"):
            doc = _add(doc, path, copy.deepcopy(op.get("value")), replace=kind == "replace")
        elif kind in ("move", "copy"):
            source = op.get("from", "")
            value = _remove(doc, source) if kind == "move" else copy.deepcopy(_get(doc, source))
            doc = _add(doc, path, value, replace=False)
        else:
            raise PatchError(f"unknown operation {kind!r}")
    return doc


# -- selectors --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # "!=" and "notin"


_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split(selector: str) -> list[str]:
    parts: list[str] = []
    depth, start = 0, 0
    for i, char in enumerate(selector):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(selector[start:i])
            start = i + 1
    parts.append(selector[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(selector: str) -> list[Requirement]:
    requirements: list[Requirement] = []
    for part in _split(selector):
        found = _SET_RE.match(part)
        if found:
            values = tuple(v.strip() for v in found.group(3).split(",") if v.strip())
            requirements.append(Requirement(found.group(1), found.group(2), values))
        elif "!=" in part:
            key, value = part.split("!=", 1)
            requirements.append(Requirement(key.strip(), "!=", (value.strip(),)))
        elif "=" in part:
            key, value = part.replace("==", "=").split("=", 1)
            requirements.append(Requirement(key.strip(), "=", (value.strip(),)))
        elif part.startswith("!"):
            requirements.append(Requirement(part[1:].strip(), "!"))
        elif re.fullmatch(r"[A-Za-z0-9_./-]+", part):
            requirements.append(Requirement(part, "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {part!r}")
    return requirements


def parse_field_selector(selector: str) -> list[tuple[str, bool, str]]:
    """(field path, must equal, value) triples."""
    out: list[tuple[str, bool, str]] = []
    for part in _split(selector):
        if "!=" in part:
            key, value = part.split("!=", 1)
            out.append((key.strip(), False, value.strip()))
        elif "=" in part:
            key, value = part.replace("==", "=").split("=", 1)
            out.append((key.strip(), True, value.strip()))
        else:
            raise SelectorError(f"invalid field selector: {part!r}")
    return out


def _field(obj: Mapping[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, Mapping) else None
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


@dataclass(frozen=True)
class Selector:
    """A parsed label selector and field selector, applied together."""

    labels: tuple[Requirement, ...] = ()
    fields: tuple[tuple[str, bool, str], ...] = ()

    @classmethod
    def parse(cls, label_selector: str | None, field_selector: str | None) -> Selector:
        return cls(tuple(parse_label_selector(label_selector or "")), tuple(parse_field_selector(field_selector or "")))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        if not all(req.matches(labels) for req in self.labels):
            return False
        return all((_field(obj, path) == value) == equal for path, equal, value in self.fields)
