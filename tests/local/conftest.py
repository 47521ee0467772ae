"""Fixtures of the local runner's tests: a tiny built-in TrainingJob (an MLP 1x16 on digits, 30 steps, untracked)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubetune.api import TrainingJob, parse

TinyJob = Callable[..., TrainingJob]


def _tiny_job(name: str, **spec: Any) -> TrainingJob:
    """The tiny job named ``name``; ``spec`` replaces whole sections of its spec."""
    return parse(
        {
            "apiVersion": "kubetune.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": name},
            "spec": {
                "trainer": {"model": {"family": "mlp", "depth": 1, "width": 16}},
                "hyperparameters": {"steps": 30},
                "checkpoint": {"everySteps": 10, "minIntervalSeconds": 0},
                "tracking": {"enabled": False},
                **spec,
            },
        }
    )


@pytest.fixture
def tiny_job() -> TinyJob:
    return _tiny_job
