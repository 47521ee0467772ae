"""What a finished study leaves behind: the parent MLflow run's params, metrics and artifacts, and the best job.

Decides the study's record in MLflow (the parent run of the trials' nested runs): the search space, sampler and
pruner as params; the best value and the trial counts as metrics; as artifacts the optimization history, parallel
coordinates and parameter importances (Optuna's plotly figures as HTML that loads plotly.js from its CDN), every
trial as JSON, and the best configuration as a ready-to-apply TrainingJob YAML (also written next to the study's
local state). Each figure is best effort: a study too small for importances still gets the rest. Imports optuna and
mlflow (lazily); never kopf or kubernetes.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kubetune.api import TrainingJob
from kubetune.tracking import RunRef
from kubetune.tuning.controller import StudyController
from kubetune.tuning.space import apply_params

logger = logging.getLogger(__name__)
BEST_FILE = "best-trainingjob.yaml"


def best_manifest(job: TrainingJob, params: Mapping[str, Any]) -> dict[str, Any]:
    """The best trial as a plain TrainingJob (no tuning section), named ``<study>-best``."""
    metadata: dict[str, Any] = {"name": f"{job.name}-best"}
    if job.namespace != "default":
        metadata["namespace"] = job.namespace
    return {
        "apiVersion": job.manifest.get("apiVersion"),
        "kind": job.manifest.get("kind"),
        "metadata": metadata,
        "spec": apply_params(job.manifest["spec"], job, params),
    }


def best_yaml(job: TrainingJob, status: Mapping[str, Any]) -> str | None:
    best = status.get("best") or next(iter(status.get("paretoFront") or ()), None)
    if not best:
        return None
    header = f"# The best trial ({best.get('number')}) of study {job.name}, ready to apply.\n"
    return header + yaml.safe_dump(best_manifest(job, best.get("params") or {}), sort_keys=False)


def _figures(controller: StudyController) -> dict[str, Any]:
    import optuna.visualization as vis

    study = controller.study
    makers: dict[str, Any] = {
        "optimization_history.html": lambda: vis.plot_optimization_history(
            study, target=(lambda t: t.values[0]) if controller.tuning.multi_objective else None
        ),
        "parallel_coordinate.html": lambda: vis.plot_parallel_coordinate(
            study, target=(lambda t: t.values[0]) if controller.tuning.multi_objective else None
        ),
        "param_importances.html": lambda: vis.plot_param_importances(
            study, target=(lambda t: t.values[0]) if controller.tuning.multi_objective else None
        ),
    }
    if controller.tuning.multi_objective:
        makers["pareto_front.html"] = lambda: vis.plot_pareto_front(study)
    figures = {}
    for name, make in makers.items():
        try:
            figures[name] = make()
        except Exception as error:  # a figure Optuna cannot draw for this study (too few trials, ...)
            logger.warning("study %s: no %s: %s", controller.name, name, error)
    return figures


def log_study(ref: RunRef, job: TrainingJob, controller: StudyController, status: Mapping[str, Any]) -> list[str]:
    """Log the study into its parent run; returns the artifact names written."""
    from mlflow.tracking import MlflowClient

    tuning = controller.tuning
    client = MlflowClient(tracking_uri=ref.tracking_uri)
    params = {
        "study": controller.name,
        "sampler": tuning.sampler.name,
        "pruner": tuning.pruner.name,
        "maxTrials": str(tuning.max_trials),
        "parallelTrials": str(tuning.parallel_trials),
        "objectives": ", ".join(f"{o.metric} ({o.direction})" for o in tuning.objectives),
        **{f"space.{p.name}": _describe(p) for p in tuning.parameters},
    }
    for key, value in params.items():
        client.log_param(ref.run_id, key, value[:6000])
    for key, value in (status.get("trials") or {}).items():
        client.log_metric(ref.run_id, f"trials_{key}", float(value))
    best = status.get("best")
    if best and "value" in best:
        client.log_metric(ref.run_id, f"best_{tuning.objectives[0].metric}", float(best["value"]))
        client.set_tag(ref.run_id, "kubetune.best_trial", str(best.get("number")))
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, figure in _figures(controller).items():
            figure.write_html(str(root / name), include_plotlyjs="cdn")
            written.append(name)
        (root / "trials.json").write_text(
            json.dumps([row.to_dict() for row in controller.rows()], indent=2, default=str), encoding="utf-8"
        )
        written.append("trials.json")
        text = best_yaml(job, status)
        if text:
            (root / BEST_FILE).write_text(text, encoding="utf-8")
            written.append(BEST_FILE)
        client.log_artifacts(ref.run_id, str(root), artifact_path="study")
    return written


def _describe(parameter: Any) -> str:
    if parameter.type == "categorical":
        return f"categorical {list(parameter.choices)}"
    scale = " log" if parameter.log else ""
    step = f" step {parameter.step:g}" if parameter.step is not None else ""
    return f"{parameter.type} [{parameter.min:g}, {parameter.max:g}]{scale}{step}"
