"""kubetune's training workload and progress SDK.

Public surface: :func:`report` and :func:`write_result` (the contract's outputs, usable from any training
script), :class:`TrainerConfig` (the contract's inputs), :func:`train` and :func:`main` (the built-in
trainer, ``python -m kubetune_trainer``). ``train``/``main`` are imported lazily: ``report`` needs no torch.

Must not import: kopf, kubernetes or ``kubetune``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubetune_trainer.config import TrainerConfig
from kubetune_trainer.progress import report, write_result

if TYPE_CHECKING:
    from kubetune_trainer.train import main, train

__all__ = ["TrainerConfig", "main", "report", "train", "write_result"]


def __getattr__(name: str) -> Any:
    if name in ("train", "main"):
        from kubetune_trainer import train as _train_module

        return getattr(_train_module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
