"""The README stays true: its reference lists every field of the CRD, its commands are the CI's."""

from __future__ import annotations

from pathlib import Path

from kubetune.api import crd

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_reference_lists_every_spec_field() -> None:
    spec = crd.schema()["properties"]["spec"]["properties"]
    missing = [f"`{key}`" for key in spec if f"| `{key}`" not in README]
    for key, sub in spec.items():
        if key != "resources":
            missing += [f"`{key}.{leaf}`" for leaf in sub.get("properties", {}) if f"| `{key}.{leaf}`" not in README]
    assert missing == []


def test_ci_runs_the_readme_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install -e '.[dev]'" in README and "pip install -e '.[dev]'" in ci
    assert "\npytest\n" in README and "\npytest\n" in ci
