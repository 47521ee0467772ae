"""The controller's side of MLflow: which experiment and run a TrainingJob logs into, and how the run is closed.

Decides: the tracking URI (the job's ``tracking.trackingUri``, else ``MLFLOW_TRACKING_URI``, else a SQLite file in
the working directory), the experiment (``tracking.experiment``, else ``kubetune-<namespace>``), and that the run is
created by the controller before any worker starts, so that every attempt of every rank logs into the same run.
Workers log params and metrics (rank 0 only); the controller tags the outcome and ends the run.

mlflow is imported lazily, inside the functions: the rest of kubetune starts without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubetune.api import TrainingJob
from kubetune.core.study import PARENT_RUN_ANNOTATION, STUDY_LABEL, TRIAL_LABEL

DEFAULT_DB = "mlflow.db"


def default_tracking_uri(cwd: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<cwd>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(cwd or Path.cwd()).resolve() / DEFAULT_DB}"


def experiment_name(job: TrainingJob) -> str:
    return job.spec.tracking.experiment or f"kubetune-{job.namespace}"


@dataclass(frozen=True)
class RunRef:
    tracking_uri: str
    experiment_id: str
    run_id: str

    def to_dict(self) -> dict[str, str]:
        return {"trackingUri": self.tracking_uri, "experimentId": self.experiment_id, "runId": self.run_id}

    @classmethod
    def from_dict(cls, data: Any) -> RunRef | None:
        if not isinstance(data, dict) or not all(k in data for k in ("trackingUri", "experimentId", "runId")):
            return None
        return cls(str(data["trackingUri"]), str(data["experimentId"]), str(data["runId"]))


def start_run(job: TrainingJob, tracking_uri: str, tags: dict[str, str] | None = None) -> RunRef:
    """Create the job's run (status RUNNING) in its experiment, creating the experiment if needed."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    name = experiment_name(job)
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    run_tags = {
        "kubetune.job": job.name,
        "kubetune.namespace": job.namespace,
        "mlflow.runName": job.name,
        **(tags or {}),
    }
    # A study's trial is a nested run under the study's parent run, tagged with its trial number.
    parent = job.annotations.get(PARENT_RUN_ANNOTATION)
    if parent:
        run_tags["mlflow.parentRunId"] = parent
    for label, tag in ((STUDY_LABEL, "kubetune.study"), (TRIAL_LABEL, "kubetune.trial")):
        if label in job.labels:
            run_tags[tag] = job.labels[label]
    if job.spec.tuning is not None:
        run_tags["kubetune.kind"] = "study"
    run = client.create_run(experiment_id, tags=run_tags, run_name=job.name)
    return RunRef(tracking_uri, experiment_id, run.info.run_id)


def end_run(ref: RunRef, status: dict[str, Any]) -> None:
    """Tag the run with the job's outcome, pods and nodes, and end it (FINISHED, KILLED when stopped, or FAILED)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=ref.tracking_uri)
    phase = str(status.get("phase", ""))
    for key in ("phase", "attempt", "restarts", "preemptions", "message"):
        if key in status:
            client.set_tag(ref.run_id, f"kubetune.{key}", str(status[key])[:5000])
    workers = [w for w in status.get("workers", ()) if isinstance(w, dict)]
    for key, tag in (("name", "kubetune.pods"), ("node", "kubetune.nodes")):
        values = sorted({str(w[key]) for w in workers if w.get(key)})
        if values:
            client.set_tag(ref.run_id, tag, ",".join(values)[:5000])
    outcome = {"Succeeded": "FINISHED", "Stopped": "KILLED"}.get(phase, "FAILED")
    client.set_terminated(ref.run_id, status=outcome)


def ensure_run(job: TrainingJob, status: dict[str, Any], uri: str | None, tags: dict[str, str]) -> str | None:
    """Create the job's run once, keeping its reference in ``status["mlflow"]``; the error, if MLflow failed.

    MLflow being down must not stop training: the caller reports the error (an Event) and goes on.
    """
    if not job.spec.tracking.enabled or not uri or RunRef.from_dict(status.get("mlflow")) is not None:
        return None
    try:
        status["mlflow"] = start_run(job, uri, tags=tags).to_dict()
    except Exception as error:
        return f"MLflow at {uri}: {error}"[:1024]
    return None
