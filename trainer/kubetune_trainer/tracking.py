"""MLflow logging into the run the controller created.

Decides: that only the metrics-owning worker logs (rank 0: in model parallelism the last stage broadcasts its
metrics to every rank, so rank 0 has them), only when ``MLFLOW_TRACKING_URI`` and ``KUBETUNE_MLFLOW_RUN_ID``
are both set; params are logged only where not already present (a relaunch continues the same run; a param
that exists with a different value is left alone rather than erroring); per-epoch metrics use ``step=epoch``.

Must not import at module level: mlflow (imported lazily, so a worker without tracking starts fast); never
kopf, kubernetes or ``kubetune``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

import torch

from kubetune_trainer.config import TrainerConfig


class Tracker:
    """No-op unless enabled; every method is safe to call on every rank."""

    def __init__(self, config: TrainerConfig) -> None:
        self.enabled = bool(config.rank == 0 and config.mlflow_tracking_uri and config.mlflow_run_id)
        self._config = config
        self._mlflow: Any = None

    def start(self, params: Mapping[str, str]) -> None:
        if not self.enabled:
            return
        import mlflow

        mlflow.set_tracking_uri(self._config.mlflow_tracking_uri)
        run = mlflow.start_run(run_id=self._config.mlflow_run_id)
        self._mlflow = mlflow
        existing = run.data.params
        missing = {key: value for key, value in params.items() if key not in existing}
        if missing:
            mlflow.log_params(missing)

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self._mlflow is not None:
            self._mlflow.log_metrics(dict(metrics), step=epoch)

    def log_final(
        self, epoch: int, metrics: Mapping[str, float], model_state: Mapping[str, torch.Tensor] | None
    ) -> None:
        """Final metrics at ``step=epoch`` (the last epoch), and the weights as an artifact."""
        if self._mlflow is None:
            return
        self._mlflow.log_metrics(dict(metrics), step=epoch)
        if model_state is not None:
            with tempfile.TemporaryDirectory() as directory:
                path = os.path.join(directory, "model_state_dict.pt")
                torch.save(dict(model_state), path)
                self._mlflow.log_artifact(path, artifact_path="model")

    def end(self, status: str) -> None:
        """``status``: FINISHED, FAILED or KILLED (preempted; a relaunch resumes the run)."""
        if self._mlflow is not None:
            self._mlflow.end_run(status=status)
            self._mlflow = None
