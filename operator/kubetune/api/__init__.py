"""The TrainingJob API (``kubetune.dev/v1alpha1``): the CRD, its schema rules and the typed, defaulted model.

Pure: imports no kopf, kubernetes, optuna, mlflow or torch (an import-linter contract holds this).
"""

from kubetune.api.crd import API_VERSION, GROUP, KIND, PLURAL, VERSION
from kubetune.api.schema import Problem
from kubetune.api.trainingjob import SpecError, TrainingJob, TrainingJobSpec, load, parse

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "Problem",
    "SpecError",
    "TrainingJob",
    "TrainingJobSpec",
    "load",
    "parse",
]
