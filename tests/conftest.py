"""Fixtures shared by every test folder: a benchmark script run end to end or imported (the benchmarks' smoke tests),
and a child process that a test can interrupt with SIGINT."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_benchmark(script: str, *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _load_benchmark(script: str) -> ModuleType:
    name = Path(script).stem
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_benchmark() -> Callable[[str], ModuleType]:
    """``load_benchmark("name.py")``: the benchmark script imported as a module, to call its functions in-process."""
    return _load_benchmark


@pytest.fixture
def run_benchmark() -> Callable[..., str]:
    """``run_benchmark("name.py", *args, timeout=120)``: the script's stdout, run in a subprocess from the repository
    root (its threads and files stay out of the test session); a nonzero exit fails the test with its output."""
    return _run_benchmark


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def interruptible() -> Callable[[], None]:
    """A ``preexec_fn`` for a child that the test interrupts with SIGINT: SIGINT back to its default before exec, so
    that Python makes it KeyboardInterrupt even when the tests run in a background job of a non-interactive shell,
    which starts with SIGINT ignored (and every child inherits that)."""
    return _sigint_default
