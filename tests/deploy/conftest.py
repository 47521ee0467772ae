"""Fixtures of the deployment tests: the real kubectl/helm binaries, and chart renders cached per value set."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from kubetune.testing.tools import Tools, ToolsUnavailable, ensure_tools

from .support import CHART, NAMESPACE, RELEASE, Render, documents, run_tool


@pytest.fixture(scope="session")
def tools() -> Tools:
    try:
        return ensure_tools()
    except ToolsUnavailable as error:
        pytest.skip(f"kubectl/helm unavailable: {error}")


@pytest.fixture(scope="session")
def helm_template(tools: Tools) -> Callable[[Sequence[str]], subprocess.CompletedProcess[str]]:
    """``helm template`` of the chart with extra arguments; results cached per argument list."""
    cache: dict[tuple[str, ...], subprocess.CompletedProcess[str]] = {}

    def template(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        key = tuple(args)
        if key not in cache:
            cache[key] = run_tool(tools.helm, "template", RELEASE, CHART, "--namespace", NAMESPACE, *args)
        return cache[key]

    return template


@pytest.fixture(scope="session")
def render(helm_template: Callable[[Sequence[str]], subprocess.CompletedProcess[str]]) -> Render:
    """The rendered documents for ``--set`` values (``render("a=1", "b=2")``); fails the test on a helm error."""

    def rendered(*values: str) -> list[dict[str, Any]]:
        args = [arg for value in values for arg in ("--set", value)]
        done = helm_template(args)
        assert done.returncode == 0, done.stderr
        return documents(done.stdout)

    return rendered
