"""Kubernetes resource quantities (``500m``, ``2``, ``1.5Gi``, ``1e3``): what the TrainingJob schema accepts in
``spec.resources`` and what such a quantity is worth as a number.

Decides: the quantity grammar (:data:`QUANTITY_PATTERN`, the CRD's ``pattern`` for ``resources.requests`` and
``resources.limits`` values, kept equal by a test) and :func:`parse_quantity`. The string form is unsigned: the API
server would reject a negative request or limit only when the pod is created, so the schema rejects it when the
TrainingJob is (an integer is taken as it is; the quantity's users clamp it).

Pure: the standard library only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

import math
import re

# Kubernetes' resource.Quantity grammar (as controller-gen writes it into CRDs) without the sign.
QUANTITY_PATTERN = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# The same grammar with named groups, for the parser (the test checks that both accept the same strings).
_QUANTITY = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))?"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


def parse_quantity(value: int | float | str) -> float:
    """The quantity's value (``"500m"`` -> 0.5, ``"1Ki"`` -> 1024.0, ``4`` -> 4.0); ValueError when it is not one."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"not a quantity: {value!r} (examples: 500m, 2, 1.5Gi)")
    number, suffix = float(match["number"]), match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    if suffix:
        exponent = float(suffix[1:])
        return number * math.pow(10.0, exponent)
    return number
