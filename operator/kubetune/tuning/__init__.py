"""The Optuna side of a study (``spec.tuning``): search spaces, samplers, pruners, storages, and the controller.

Decides how the pure study policy (:func:`kubetune.core.study.plan_study`) meets Optuna: which Optuna objects a
spec names (explicit name -> constructor tables), how a trial's values become a child TrainingJob's spec, how the
storage is read into observations and how the plan's ask/tell actions are carried out. Imports optuna (and mlflow
lazily, for the study's parent run); never kopf or kubernetes: the local runner and the operator both use it.
"""

from kubetune.tuning.controller import StudyController, open_controller
from kubetune.tuning.space import child_manifest, distributions

__all__ = ["StudyController", "child_manifest", "distributions", "open_controller"]
