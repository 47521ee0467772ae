"""Operator settings from the environment (the Deployment's env, or flags of ``kubetune operator``).

Decides: the operator's defaults. Pure: standard library only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

PROGRESS_ANNOTATION = "kubetune.dev/progress"
JOB_LABEL = "kubetune.dev/job"
RANK_LABEL = "kubetune.dev/rank"
ATTEMPT_LABEL = "kubetune.dev/attempt"
CAPACITY_LABEL = "kubetune.dev/capacity"
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
    # Where studies live unless a TrainingJob names its storage (an Optuna URL: PostgreSQL from the chart, or a
    # journal file on a PVC); without one the operator keeps studies in a journal file under study_dir.
    study_storage: str | None = None
    study_dir: str = "/tmp/kubetune-studies"
    # Price per CPU-hour and GPU-hour by capacity, for status.cost: {"cpu": {"spot": 0.01, "onDemand": 0.034}}.
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

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
            study_storage=env.get("KUBETUNE_STUDY_STORAGE") or None,
            study_dir=env.get("KUBETUNE_STUDY_DIR", "/tmp/kubetune-studies"),
            prices=_prices(env.get("KUBETUNE_PRICES", "")),
        )


def _prices(text: str) -> dict[str, dict[str, float]]:
    """``KUBETUNE_PRICES`` (JSON, from the chart's values); ValueError naming it when malformed."""
    if not text:
        return {}
    try:
        data = json.loads(text)
        return {str(r): {str(c): float(p) for c, p in by.items()} for r, by in data.items()}
    except (ValueError, AttributeError, TypeError) as error:
        raise ValueError(f'KUBETUNE_PRICES: expected JSON like {{"cpu": {{"spot": 0.01}}}}: {error}') from None
