"""The Optuna side of a study's controller: read the storage into observations, carry out ask and tell.

Decides how :func:`kubetune.core.study.plan_study`'s vocabulary maps onto an Optuna study: the study's name (from
the TrainingJob's namespace, name and uid, so a recreated TrainingJob starts a new study), its directions, sampler
and pruner; each running trial's newest per-epoch metric is reported to the storage (``trial.report``) and the
pruner asked (``should_prune``) right after, the verdict handed to the plan; ``AskTrial`` is ``study.ask`` with the
spec's fixed distributions (never ``study.optimize``); ``TellTrial`` is ``study.tell`` (idempotent: a trial already
finished is skipped). The storage is the only state: a new controller on the same storage continues the study.

Imports optuna; never kopf or kubernetes (both shells use this module).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from kubetune.api import TrainingJob
from kubetune.core.study import ChildRun, StudyObserved, TellTrial, TrialRecord
from kubetune.tuning.pruners import build_pruner
from kubetune.tuning.samplers import build_sampler
from kubetune.tuning.space import distributions
from kubetune.tuning.storage import open_storage, redact

optuna.logging.set_verbosity(optuna.logging.WARNING)

CHILD_ATTR = "kubetune.child"
MESSAGE_ATTR = "kubetune.message"


def study_name(job: TrainingJob) -> str:
    """``<namespace>.<name>`` (plus the uid's first 8 characters in a cluster)."""
    base = f"{job.namespace}.{job.name}"
    return f"{base}.{job.uid[:8]}" if job.uid else base


@dataclass(frozen=True)
class TrialRow:
    """One trial, as ``kubetune run --output json`` and the live table show it."""

    number: int
    state: str
    params: Mapping[str, Any]
    value: float | list[float] | None
    duration_s: float | None
    intermediate: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "state": self.state,
            "params": dict(self.params),
            "value": self.value,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
        }


class StudyController:
    """One study's Optuna objects, opened on its storage."""

    def __init__(self, job: TrainingJob, storage_url: str) -> None:
        if job.spec.tuning is None:
            raise ValueError(f"TrainingJob {job.name} has no spec.tuning")
        self.job = job
        self.tuning = job.spec.tuning
        self.storage_url = storage_url
        self.distributions = distributions(job)
        self.study = optuna.create_study(
            storage=open_storage(storage_url),
            study_name=study_name(job),
            directions=[objective.direction for objective in self.tuning.objectives],
            sampler=build_sampler(job),
            pruner=build_pruner(job),
            load_if_exists=True,
        )
        self._verdicts: dict[int, bool] = {}

    @property
    def name(self) -> str:
        return self.study.study_name

    @property
    def storage_shown(self) -> str:
        return redact(self.storage_url)

    # --- observing ------------------------------------------------------------------------------------------------

    def trials(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def observe(
        self, children: Mapping[int, ChildRun], status: Mapping[str, Any], slots: int | None = None
    ) -> StudyObserved:
        """Report new intermediate values, ask the pruner about them, and return what the plan needs."""
        trials = self.trials()
        for trial in trials:
            child = children.get(trial.number)
            if trial.state == TrialState.RUNNING and child is not None and self._report(trial, child):
                self._verdicts[trial.number] = self._should_prune(trial)
        trials = self.trials()
        records = tuple(_record(trial) for trial in trials)
        running = {t.number for t in trials if t.state == TrialState.RUNNING}
        prune = frozenset(n for n, verdict in self._verdicts.items() if verdict and n in running)
        return StudyObserved(trials=records, children=dict(children), prune=prune, status=status, slots=slots)

    def _report(self, trial: FrozenTrial, child: ChildRun) -> bool:
        """``trial.report`` the child's newest epoch metric; True when a value is new (or first seen here)."""
        if self.tuning.multi_objective or child.epoch is None:
            return False
        value = child.epoch_metrics.get(self.tuning.objectives[0].metric)
        if value is None or not math.isfinite(value):
            return False
        if child.epoch not in trial.intermediate_values:
            self.study._storage.set_trial_intermediate_value(trial._trial_id, child.epoch, value)
            return True
        return trial.number not in self._verdicts

    def _should_prune(self, trial: FrozenTrial) -> bool:
        fresh = self.study._storage.get_trial(trial._trial_id)
        return bool(self.study.pruner.prune(self.study, fresh))

    # --- acting ---------------------------------------------------------------------------------------------------

    def ask(self) -> int:
        """A new trial from the sampler (RUNNING in the storage from now on); its number."""
        trial = self.study.ask(self.distributions)
        return trial.number

    def tell(self, action: TellTrial) -> None:
        """Finish a trial in the storage (a trial that is already finished is left as it is)."""
        trial_id = self.study._storage.get_trial_id_from_study_id_trial_number(self.study._study_id, action.number)
        if action.message:
            self.study._storage.set_trial_user_attr(trial_id, MESSAGE_ATTR, action.message[:1000])
        values = list(action.values) if action.state == "COMPLETE" and action.values is not None else None
        self.study.tell(action.number, values, state=TrialState[action.state], skip_if_finished=True)
        self._verdicts.pop(action.number, None)

    def set_child(self, number: int, name: str) -> None:
        trial_id = self.study._storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        self.study._storage.set_trial_user_attr(trial_id, CHILD_ATTR, name)

    # --- reporting ------------------------------------------------------------------------------------------------

    def rows(self) -> list[TrialRow]:
        out = []
        for trial in self.trials():
            duration = trial.duration.total_seconds() if trial.duration is not None else None
            value: float | list[float] | None = None
            if trial.values is not None:
                value = trial.values[0] if len(trial.values) == 1 else list(trial.values)
            out.append(
                TrialRow(
                    trial.number, trial.state.name, dict(trial.params), value, duration, len(trial.intermediate_values)
                )
            )
        return out


def _record(trial: FrozenTrial) -> TrialRecord:
    values = tuple(float(v) for v in trial.values) if trial.values is not None else None
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,  # type: ignore[arg-type]
        params=dict(trial.params),
        values=values if trial.state == TrialState.COMPLETE else None,
        last_step=trial.last_step,
        started=trial.datetime_start.timestamp() if trial.datetime_start else None,
        finished=trial.datetime_complete.timestamp() if trial.datetime_complete else None,
    )


def open_controller(job: TrainingJob, storage_url: str) -> StudyController:
    """Open (or create) ``job``'s study on ``storage_url``; ValueError names the spec field at fault."""
    return StudyController(job, storage_url)
