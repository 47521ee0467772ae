"""Which Optuna sampler a study uses: an explicit table from ``spec.tuning.sampler.name`` to a constructor.

Decides the mapping (tpe, random, cmaes, grid, qmc, nsga2, gp), that ``seed`` makes suggestions reproducible, and
that ``options`` are the constructor's keyword arguments, a wrong one being an error that names the field.
Imports optuna; never kopf or kubernetes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna

from kubetune.api import TrainingJob
from kubetune.tuning.space import grid

Constructor = Callable[[TrainingJob, int | None, Mapping[str, Any]], optuna.samplers.BaseSampler]

SAMPLERS: dict[str, Constructor] = {
    "tpe": lambda job, seed, options: optuna.samplers.TPESampler(seed=seed, **options),
    "random": lambda job, seed, options: optuna.samplers.RandomSampler(seed=seed, **options),
    "cmaes": lambda job, seed, options: optuna.samplers.CmaEsSampler(seed=seed, **options),
    "grid": lambda job, seed, options: optuna.samplers.GridSampler(grid(job), seed=seed, **options),
    "qmc": lambda job, seed, options: optuna.samplers.QMCSampler(seed=seed, **options),
    "nsga2": lambda job, seed, options: optuna.samplers.NSGAIISampler(seed=seed, **options),
    "gp": lambda job, seed, options: optuna.samplers.GPSampler(seed=seed, **options),
}


def build_sampler(job: TrainingJob) -> optuna.samplers.BaseSampler:
    """The study's sampler; raises ValueError naming ``spec.tuning.sampler...`` on bad options."""
    assert job.spec.tuning is not None
    sampler = job.spec.tuning.sampler
    try:
        constructor = SAMPLERS[sampler.name]
    except KeyError:
        raise ValueError(f"spec.tuning.sampler.name: unknown sampler {sampler.name!r}") from None
    try:
        with warnings.catch_warnings():  # qmc and gp are "experimental" in Optuna: chosen on purpose here
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return constructor(job, sampler.seed, dict(sampler.options))
    except (TypeError, ValueError) as error:
        raise ValueError(f"spec.tuning.sampler.options: {sampler.name}: {error}") from None
