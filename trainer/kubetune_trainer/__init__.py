"""kubetune's training workload and progress SDK.

Public surface: :func:`report` and :func:`write_result` (the contract's outputs, usable from any training
script), :class:`TrainerConfig` (the contract's inputs) and :func:`main` (the built-in trainer, ``python -m
kubetune_trainer``), imported lazily: ``report`` needs no torch. The built-in trainer's Python entry point is
``kubetune_trainer.train.train(config)``; the package does not re-export it under the name ``train``, which is its
submodule's (a function of that name on the package would be replaced by the submodule the moment it is imported).

Must not import: kopf, kubernetes or ``kubetune``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kubetune_trainer.config import TrainerConfig
from kubetune_trainer.progress import report, write_result

if TYPE_CHECKING:
    from kubetune_trainer.train import main

__all__ = ["TrainerConfig", "main", "report", "write_result"]


def __getattr__(name: str) -> Any:
    if name == "main":
        return importlib.import_module("kubetune_trainer.train").main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
