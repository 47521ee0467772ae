"""The architecture and the style hold: import contracts (the pure core), ruff (lint and format) and mypy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    path = str(found) if found.exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return path


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_import_contracts_keep_the_core_pure_and_the_trainer_apart() -> None:
    done = _run(_tool("lint-imports"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "broken" in done.stdout and "0 broken" in done.stdout


def test_ruff_is_clean() -> None:
    done = _run(_tool("ruff"), "check", "operator", "trainer", "tests", "benchmarks")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_is_clean() -> None:
    done = _run(_tool("ruff"), "format", "--check", "operator", "trainer", "tests", "benchmarks")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_is_clean() -> None:
    # The packages and the tests in one run: about half the time of two cold runs (one pass over shared libraries).
    done = _run(_tool("mypy"), "operator/kubetune", "trainer/kubetune_trainer", "tests")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_is_clean_on_the_benchmarks() -> None:
    done = _run(_tool("mypy"), "benchmarks")  # a run of its own: tests/stragglers would clash with stragglers.py
    assert done.returncode == 0, done.stdout + done.stderr
