"""Which Optuna pruner a study uses: an explicit table from ``spec.tuning.pruner.name`` to a constructor.

Decides the mapping (none, median, percentile, successiveHalving, hyperband), that ``options`` are the
constructor's keyword arguments (a wrong one is an error that names the field), and the defaults that fit a
TrainingJob: the resource is the epoch, so Hyperband's ``max_resource`` defaults to the job's epochs and the
percentile pruner's ``percentile`` to 25. Imports optuna; never kopf or kubernetes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optuna

from kubetune.api import TrainingJob

Constructor = Callable[[TrainingJob, Mapping[str, Any]], optuna.pruners.BasePruner]


def _hyperband(job: TrainingJob, options: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    epochs = job.spec.hyperparameters.epochs
    defaults: dict[str, Any] = {"max_resource": epochs} if epochs > 0 and job.spec.hyperparameters.steps == 0 else {}
    return optuna.pruners.HyperbandPruner(**{**defaults, **options})


PRUNERS: dict[str, Constructor] = {
    "none": lambda job, options: optuna.pruners.NopPruner(**options),
    "median": lambda job, options: optuna.pruners.MedianPruner(**options),
    "percentile": lambda job, options: optuna.pruners.PercentilePruner(**{"percentile": 25.0, **options}),
    "successiveHalving": lambda job, options: optuna.pruners.SuccessiveHalvingPruner(**options),
    "hyperband": _hyperband,
}


def build_pruner(job: TrainingJob) -> optuna.pruners.BasePruner:
    """The study's pruner; raises ValueError naming ``spec.tuning.pruner...`` on bad options."""
    assert job.spec.tuning is not None
    pruner = job.spec.tuning.pruner
    try:
        constructor = PRUNERS[pruner.name]
    except KeyError:
        raise ValueError(f"spec.tuning.pruner.name: unknown pruner {pruner.name!r}") from None
    try:
        return constructor(job, dict(pruner.options))
    except (TypeError, ValueError) as error:
        raise ValueError(f"spec.tuning.pruner.options: {pruner.name}: {error}") from None
