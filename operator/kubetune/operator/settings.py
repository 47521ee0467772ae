"""Operator settings from the environment (the Deployment's env, or flags of ``kubetune operator``).

Decides: the operator's defaults. Pure: standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

PROGRESS_ANNOTATION = "kubetune.dev/progress"
JOB_LABEL = "kubetune.dev/job"
RANK_LABEL = "kubetune.dev/rank"
ATTEMPT_LABEL = "kubetune.dev/attempt"
MANAGED_BY = ("app.kubernetes.io/managed-by", "kubetune")


@dataclass(frozen=True)
class OperatorSettings:
    namespace: str | None = None  # None: every namespace
    tracking_uri: str | None = None  # MLflow for jobs that do not name their own
    metrics_port: int = 8080  # 0: no Prometheus endpoint
    master_port: int = 29500
    trainer_service_account: str = "kubetune-trainer"
    termination_grace_seconds: int = 120
    progress_interval_seconds: float = 10.0
    resync_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if env is None else env
        return cls(
            namespace=env.get("KUBETUNE_NAMESPACE") or None,
            tracking_uri=env.get("KUBETUNE_MLFLOW_TRACKING_URI") or None,
            metrics_port=int(env.get("KUBETUNE_METRICS_PORT", "8080")),
            trainer_service_account=env.get("KUBETUNE_TRAINER_SERVICE_ACCOUNT", "kubetune-trainer"),
            termination_grace_seconds=int(env.get("KUBETUNE_TERMINATION_GRACE_SECONDS", "120")),
            progress_interval_seconds=float(env.get("KUBETUNE_PROGRESS_INTERVAL_SECONDS", "10")),
            resync_seconds=float(env.get("KUBETUNE_RESYNC_SECONDS", "5")),
        )
