"""Resource quantities: the grammar the CRD enforces and the values the controller reads from it."""

from __future__ import annotations

import re

import pytest
from kubetune.api import crd
from kubetune.api.quantities import QUANTITY_PATTERN, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", 0.5),
        ("2", 2.0),
        (4, 4.0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("2.", 2.0),
        ("100n", 1e-7),
        ("250u", 2.5e-4),
        ("3k", 3000.0),
        ("1M", 1e6),
        ("1Ki", 1024.0),
        ("1.5Gi", 1.5 * 2**30),
        ("1e3", 1000.0),
        ("1E-2", 0.01),
    ],
)
def test_parse_quantity(text: int | str, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["lots", "-1", "+1", "1.5.2", "1e", "m", "", "Gi", "1 Gi", "1gi", "2\n", True])
def test_not_a_quantity(text: object) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity(text)  # type: ignore[arg-type]


def test_the_crd_pattern_is_the_parsers_grammar() -> None:
    resources = crd.schema()["properties"]["spec"]["properties"]["resources"]["properties"]
    for kind in ("requests", "limits"):
        assert resources[kind]["additionalProperties"]["pattern"] == QUANTITY_PATTERN
    for text in ["500m", "1.5Gi", "1e3", "2E-1.5", ".5", "1E", "lots", "-1", "1e", "1e+", "Gi", "1gi", "1Ki2"]:
        accepted = re.fullmatch(QUANTITY_PATTERN, text) is not None
        try:
            parse_quantity(text)
            parsed = True
        except ValueError:
            parsed = False
        assert accepted == parsed, text
