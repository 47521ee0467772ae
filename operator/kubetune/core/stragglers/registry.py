"""The table of straggler policies by name, and ``build_policy(name, **options)``.

Decides: which names select which policy (the spec's ``spec.resilience.stragglers.policy``: ``none``, ``spark``,
``late``, ``singleFork``, ``timeout``, ``migrate``, ``adaptive``; ``single-fork`` and ``single_fork`` are accepted too),
and which options each takes (spec spelling, camelCase; the constructor's snake_case spelling is accepted as well). Bad
input raises a ValueError naming the option (``stragglers.<option>: ...``).

Pure: numpy only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kubetune.core.stragglers.adaptive import Adaptive
from kubetune.core.stragglers.base import StragglerPolicy
from kubetune.core.stragglers.late import Late
from kubetune.core.stragglers.migrate import Migrate
from kubetune.core.stragglers.none import NoReplication
from kubetune.core.stragglers.single_fork import SingleFork
from kubetune.core.stragglers.spark import Spark
from kubetune.core.stragglers.timeout import TaskTimeout

POLICIES: dict[
    str,
    type[NoReplication]
    | type[Spark]
    | type[Late]
    | type[SingleFork]
    | type[TaskTimeout]
    | type[Migrate]
    | type[Adaptive],
] = {
    "none": NoReplication,
    "spark": Spark,
    "late": Late,
    "singleFork": SingleFork,
    "timeout": TaskTimeout,
    "migrate": Migrate,
    "adaptive": Adaptive,
}
_ALIASES = {"single-fork": "singleFork", "single_fork": "singleFork", "singlefork": "singleFork"}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def policy_names() -> tuple[str, ...]:
    return tuple(POLICIES)


def build_policy(name: str, **options: Any) -> StragglerPolicy:
    """The policy called ``name`` with ``options`` (spec or Python spelling); ValueError naming a bad option."""
    key = _ALIASES.get(name, name)
    if key not in POLICIES:
        raise ValueError(f"stragglers.policy: unknown policy {name!r} (known: {', '.join(POLICIES)})")
    cls = POLICIES[key]
    known = cls.OPTIONS
    by_python = {python: spec for spec, python in known.items()}
    kwargs: dict[str, Any] = {}
    for option, value in options.items():
        spec = option if option in known else by_python.get(option) or by_python.get(re.sub(r"-", "_", option))
        if spec is None and _camel(option) in known:
            spec = _camel(option)
        if spec is None:
            listed = ", ".join(known) or "none"
            raise ValueError(f"stragglers.{option}: unknown option for policy {key} (known: {listed})")
        kwargs[known[spec]] = value
    try:
        return cls(**kwargs)
    except TypeError as error:  # a value of the wrong kind reached a constructor
        raise ValueError(f"stragglers: bad options for policy {key}: {error}") from None


def from_spec(spec: Mapping[str, Any]) -> StragglerPolicy:
    """The policy a ``spec.resilience.stragglers`` mapping selects: ``{policy: NAME, <options>...}``."""
    options = dict(spec)
    name = options.pop("policy", "none")
    if not isinstance(name, str):
        raise ValueError(f"stragglers.policy: must be a string, got {name!r}")
    return build_policy(name, **options)
