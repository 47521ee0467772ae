"""A study's search space: Optuna distributions from ``spec.tuning.parameters``, and a trial's child TrainingJob.

Decides what each parameter means to Optuna (float/int with bounds, log scale and step; categorical with its
choices) and how a trial's values enter the child's spec: as values in the fields they name
(``hyperparameters.<name>``, ``trainer.model.<depth|width|family>``, or an ``env`` entry of a bring-your-own
trainer), never by templating strings. The child is validated like any TrainingJob, so a combination the API refuses
(a batch size that is not a multiple of the workers) fails that trial with the field's path, not the study.
Imports optuna (distributions only) and kubetune.api / kubetune.core.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from kubetune.api import TrainingJob
from kubetune.api.trainingjob import TUNABLE, Parameter
from kubetune.core.study import PARENT_RUN_ANNOTATION, REPLICA_LABEL, STUDY_LABEL, TRIAL_LABEL, trial_name


def distribution(parameter: Parameter) -> BaseDistribution:
    """The Optuna distribution of one parameter (the API has already checked bounds and kinds)."""
    if parameter.type == "categorical":
        return CategoricalDistribution(list(parameter.choices))
    assert parameter.min is not None and parameter.max is not None
    if parameter.type == "int":
        step = int(parameter.step) if parameter.step is not None else 1
        return IntDistribution(int(parameter.min), int(parameter.max), log=parameter.log, step=step)
    return FloatDistribution(parameter.min, parameter.max, log=parameter.log, step=parameter.step)


def distributions(job: TrainingJob) -> dict[str, BaseDistribution]:
    """``{parameter name: distribution}`` of a study, in the spec's order."""
    assert job.spec.tuning is not None
    return {parameter.name: distribution(parameter) for parameter in job.spec.tuning.parameters}


def grid(job: TrainingJob) -> dict[str, list[Any]]:
    """The grid sampler's search space: choices, or min..max by step (a float range needs a step)."""
    assert job.spec.tuning is not None
    space: dict[str, list[Any]] = {}
    for index, parameter in enumerate(job.spec.tuning.parameters):
        if parameter.type == "categorical":
            space[parameter.name] = list(parameter.choices)
            continue
        assert parameter.min is not None and parameter.max is not None
        if parameter.type == "float" and parameter.step is None:
            raise ValueError(f"spec.tuning.parameters[{index}].step: the grid sampler needs a step for a float range")
        step = parameter.step if parameter.step is not None else 1
        count = round((parameter.max - parameter.min) / step) + 1
        values = [parameter.min + i * step for i in range(count)]
        space[parameter.name] = [int(v) for v in values] if parameter.type == "int" else values
    return space


def _typed(parameter: Parameter, value: Any) -> Any:
    if parameter.type == "int":
        return int(value)
    if parameter.type == "float":
        return float(value)
    return value


def apply_params(spec: Mapping[str, Any], job: TrainingJob, params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` (without ``tuning``) with each parameter's value set in the field it names."""
    assert job.spec.tuning is not None
    out = copy.deepcopy(dict(spec))
    out.pop("tuning", None)
    for parameter in job.spec.tuning.parameters:
        if parameter.name not in params:
            continue
        value = _typed(parameter, params[parameter.name])
        if parameter.name.startswith("env."):
            name = parameter.name.removeprefix("env.")
            env = [item for item in out["trainer"].get("env", []) if item.get("name") != name]
            env.append({"name": name, "value": str(value)})
            out["trainer"]["env"] = env
            continue
        *parents, leaf = TUNABLE[parameter.name]
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def child_manifest(
    job: TrainingJob,
    number: int,
    params: Mapping[str, Any],
    *,
    parent_run_id: str | None = None,
    replica: int = 0,
    resume_from: str | None = None,
) -> dict[str, Any]:
    """Trial ``number``'s child TrainingJob (or its ``replica``): the study's spec with the trial's values; a copy
    that moves the trial starts from ``resume_from``'s newest checkpoint (``spec.checkpoint.resumeFrom``)."""
    manifest = job.manifest
    labels = {**job.labels, STUDY_LABEL: job.name, TRIAL_LABEL: str(number)}
    annotations = {PARENT_RUN_ANNOTATION: parent_run_id} if parent_run_id else {}
    if replica:
        labels[REPLICA_LABEL] = str(replica)
    metadata: dict[str, Any] = {
        "name": trial_name(job.name, number, replica),
        "namespace": job.namespace,
        "labels": labels,
    }
    if annotations:
        metadata["annotations"] = annotations
    spec = apply_params(manifest["spec"], job, params)
    if resume_from:
        spec["checkpoint"] = {**spec.get("checkpoint", {}), "resumeFrom": resume_from}
    return {"apiVersion": manifest.get("apiVersion"), "kind": manifest.get("kind"), "metadata": metadata, "spec": spec}
