"""The Optuna side of a study: spaces, the sampler and pruner tables, storages, and the controller's ask/tell."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import pytest
from kubetune.api import SpecError, TrainingJob, parse
from kubetune.core.study import AskTrial, ChildRun, StudyObserved, TellTrial, plan_study
from kubetune.tuning.controller import StudyController, study_name
from kubetune.tuning.pruners import PRUNERS, build_pruner
from kubetune.tuning.report import best_manifest
from kubetune.tuning.samplers import SAMPLERS, build_sampler
from kubetune.tuning.space import apply_params, child_manifest, distributions, grid
from kubetune.tuning.storage import journal_url, open_storage, redact

BASE: dict[str, Any] = {
    "apiVersion": "kubetune.dev/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "s", "namespace": "ml"},
    "spec": {
        "trainer": {"model": {"family": "cnn", "depth": 2, "width": 16}},
        "hyperparameters": {"epochs": 9},
        "tuning": {
            "objective": {"metric": "val_accuracy"},
            "parameters": [
                {"name": "learningRate", "type": "float", "min": 0.001, "max": 0.5, "log": True},
                {"name": "batchSize", "type": "categorical", "choices": [32, 64]},
                {"name": "momentum", "type": "float", "min": 0.5, "max": 0.9, "step": 0.1},
                {"name": "model.depth", "type": "int", "min": 1, "max": 3},
                {"name": "model.width", "type": "categorical", "choices": [8, 16]},
            ],
            "maxTrials": 6,
            "parallelTrials": 2,
        },
    },
}


def study(**tuning: Any) -> TrainingJob:
    doc = copy.deepcopy(BASE)
    doc["spec"]["tuning"].update(tuning)
    return parse(doc)


def test_distributions_follow_the_spec() -> None:
    space = distributions(study())
    assert space["learningRate"] == optuna.distributions.FloatDistribution(0.001, 0.5, log=True)
    assert space["batchSize"] == optuna.distributions.CategoricalDistribution([32, 64])
    assert space["momentum"] == optuna.distributions.FloatDistribution(0.5, 0.9, step=0.1)
    assert space["model.depth"] == optuna.distributions.IntDistribution(1, 3)


def test_values_go_into_the_fields_they_name_not_into_strings() -> None:
    job = study()
    params = {"learningRate": 0.01, "batchSize": 64, "momentum": 0.8, "model.depth": 3, "model.width": 8}
    spec = apply_params(job.manifest["spec"], job, params)
    assert "tuning" not in spec
    assert spec["hyperparameters"]["learningRate"] == 0.01 and spec["hyperparameters"]["batchSize"] == 64
    assert spec["trainer"]["model"] == {"family": "cnn", "depth": 3, "width": 8}
    child = parse(child_manifest(job, 7, params, parent_run_id="abc"))
    assert child.name == "s-t7" and child.namespace == "ml"
    assert child.labels == {"kubetune.dev/study": "s", "kubetune.dev/trial": "7"}
    assert child.annotations == {"kubetune.dev/mlflow-parent-run": "abc"}
    assert child.spec.tuning is None and child.spec.trainer.model is not None
    assert child.spec.trainer.model.depth == 3 and child.spec.hyperparameters.learning_rate == 0.01


def test_env_parameters_of_a_bring_your_own_trainer() -> None:
    doc = copy.deepcopy(BASE)
    doc["spec"]["trainer"] = {"command": ["python", "train.py"], "env": [{"name": "DROPOUT", "value": "0.1"}]}
    doc["spec"]["tuning"]["parameters"] = [{"name": "env.DROPOUT", "type": "float", "min": 0.0, "max": 0.5}]
    job = parse(doc)
    child = parse(child_manifest(job, 0, {"env.DROPOUT": 0.25}))
    assert [(e.name, e.value) for e in child.spec.trainer.env] == [("DROPOUT", "0.25")]


def test_a_trial_whose_values_make_an_invalid_job_is_refused_with_the_field() -> None:
    doc = copy.deepcopy(BASE)
    doc["spec"]["parallelism"] = {"workers": 3}
    doc["spec"]["hyperparameters"]["batchSize"] = 48
    job = parse(doc)
    with pytest.raises(SpecError, match=r"spec.hyperparameters.batchSize: .*multiple of parallelism.workers"):
        parse(child_manifest(job, 0, {"batchSize": 32}))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_name_builds_the_real_optuna_sampler(name: str) -> None:
    job = study(
        sampler={"name": name, "seed": 1},
        parameters=[
            {"name": "momentum", "type": "float", "min": 0.5, "max": 0.9, "step": 0.1},
            {"name": "batchSize", "type": "categorical", "choices": [32, 64]},
        ],
    )
    sampler = build_sampler(job)
    expected = {
        "tpe": "TPESampler",
        "random": "RandomSampler",
        "cmaes": "CmaEsSampler",
        "grid": "GridSampler",
        "qmc": "QMCSampler",
        "nsga2": "NSGAIISampler",
        "gp": "GPSampler",
    }[name]
    assert type(sampler).__name__ == expected


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_every_pruner_name_builds_the_real_optuna_pruner(name: str) -> None:
    pruner = build_pruner(study(pruner={"name": name}))
    expected = {
        "none": "NopPruner",
        "median": "MedianPruner",
        "percentile": "PercentilePruner",
        "successiveHalving": "SuccessiveHalvingPruner",
        "hyperband": "HyperbandPruner",
    }[name]
    assert type(pruner).__name__ == expected


def test_hyperband_measures_its_resource_in_the_jobs_epochs() -> None:
    pruner = build_pruner(study(pruner={"name": "hyperband"}))
    assert pruner._max_resource == 9  # type: ignore[attr-defined]


class _Delegating(optuna.pruners.BasePruner):
    """Prunes exactly as the Hyperband inside, without being one (so Optuna gives the sampler no bracket view)."""

    def __init__(self, inner: optuna.pruners.BasePruner) -> None:
        self.inner = inner

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return self.inner.prune(study, trial)


def test_under_optunas_hyperband_tpe_learns_from_every_bracket() -> None:
    """What the README says of TPE + Hyperband: Optuna's bracket view of the study filters ``get_trials`` (what the
    pruning reads) but not ``_get_trials`` (what TPE reads), so TPE draws exactly what it draws when no pruner
    splits the study into brackets. If a later Optuna filters both, this fails and the README must change."""

    def draws(wrap: bool) -> list[float]:
        hyperband = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)
        sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=4)
        tuned = optuna.create_study(  # one name: Hyperband assigns brackets by hashing it with the trial number
            study_name="pinned",
            direction="maximize",
            sampler=sampler,
            pruner=_Delegating(hyperband) if wrap else hyperband,
        )
        for _ in range(16):
            trial = tuned.ask({"x": optuna.distributions.FloatDistribution(0.0, 1.0)})
            for epoch in range(9):
                trial.report(-((trial.params["x"] - 0.3) ** 2) * (epoch + 1), epoch)
                if trial.should_prune():
                    tuned.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    break
            else:
                tuned.tell(trial, -((trial.params["x"] - 0.3) ** 2))
        assert any(t.state == optuna.trial.TrialState.PRUNED for t in tuned.trials)
        return [t.params["x"] for t in tuned.trials]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    assert draws(wrap=False) == draws(wrap=True)


def test_bad_options_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"spec.tuning.sampler.options: tpe: .*n_startup"):
        build_sampler(study(sampler={"name": "tpe", "options": {"n_startup": 3}}))
    with pytest.raises(ValueError, match=r"spec.tuning.pruner.options: median"):
        build_pruner(study(pruner={"name": "median", "options": {"warmup": 1}}))
    with pytest.raises(ValueError, match=r"spec.tuning.parameters\[0\].step: the grid sampler needs a step"):
        grid(study(sampler={"name": "grid"}))


def test_storages_and_their_redaction(tmp_path: Path) -> None:
    assert redact("postgresql://kubetune:s3cret@db:5432/optuna") == "postgresql://kubetune:***@db:5432/optuna"
    assert isinstance(open_storage(journal_url(tmp_path / "a" / "s.journal")), optuna.storages.JournalStorage)
    assert isinstance(open_storage(f"sqlite:///{tmp_path}/s.db"), optuna.storages.RDBStorage)
    with pytest.raises(ValueError, match=r"spec.tuning.storage.url: unsupported storage 'redis://x:\*\*\*@h'"):
        open_storage("redis://x:pw@h")


def _children(numbers: list[int], **kw: Any) -> dict[int, ChildRun]:
    return {n: ChildRun(f"s-t{n}", "Running", **kw) for n in numbers}


def test_controller_ask_report_prune_tell_and_a_second_controller_continues(tmp_path: Path) -> None:
    job = study(pruner={"name": "median", "options": {"n_startup_trials": 1, "n_warmup_steps": 0}}, maxTrials=4)
    url = journal_url(tmp_path / "s.journal")
    ctl = StudyController(job, url)
    assert ctl.name == "ml.s"
    first, second = ctl.ask(), ctl.ask()
    assert (first, second) == (0, 1)
    # Trial 0 reports two epochs and completes.
    for epoch, value in ((1, 0.8), (2, 0.9)):
        ctl.observe({0: ChildRun("s-t0", "Running", epoch=epoch, epoch_metrics={"val_accuracy": value})}, {})
    ctl.tell(TellTrial(0, "COMPLETE", (0.9,)))
    # Trial 1 is far worse at the same epoch: the median pruner says prune.
    observed = ctl.observe({1: ChildRun("s-t1", "Running", epoch=2, epoch_metrics={"val_accuracy": 0.1})}, {})
    assert observed.prune == frozenset({1})
    assert [t.state for t in observed.trials] == ["COMPLETE", "RUNNING"]
    ctl.tell(TellTrial(1, "PRUNED"))
    ctl.tell(TellTrial(1, "PRUNED"))  # idempotent
    # A controller restarted on the same storage sees the same study; asking continues the numbering.
    again = StudyController(job, url)
    records = again.observe({}, {}).trials
    assert [(t.number, t.state) for t in records] == [(0, "COMPLETE"), (1, "PRUNED")]
    assert records[0].values == (0.9,)
    assert again.ask() == 2
    rows = [row.to_dict() for row in again.rows()]
    assert rows[1]["state"] == "PRUNED" and rows[1]["value"] == 0.1  # a pruned trial keeps its last value


def test_a_recreated_trainingjob_is_a_new_study() -> None:
    doc = copy.deepcopy(BASE)
    doc["metadata"]["uid"] = "0123456789abcdef"
    assert study_name(parse(doc)) == "ml.s.01234567"


def test_plan_and_controller_together_never_exceed_max_trials(tmp_path: Path) -> None:
    """Drive the pure plan with the real controller, every child succeeding at once: exactly maxTrials trials."""
    job = study(maxTrials=5)
    ctl = StudyController(job, journal_url(tmp_path / "s.journal"))
    status: dict[str, Any] = {}
    for _ in range(20):
        trials = ctl.observe({}, status).trials
        children = {
            t.number: ChildRun(f"s-t{t.number}", "Succeeded", final_metrics={"val_accuracy": 0.5 + t.number / 100})
            for t in trials
            if t.state == "RUNNING"
        }
        decided = plan_study(job, StudyObserved(trials, children, status=status), datetime.now(UTC))
        for action in decided.actions:
            if isinstance(action, TellTrial):
                ctl.tell(action)
            elif isinstance(action, AskTrial):
                ctl.ask()
        status = dict(decided.status)
        if decided.terminal:
            break
    assert status["phase"] == "Succeeded"
    numbers = [t.number for t in ctl.trials()]
    assert numbers == [0, 1, 2, 3, 4]
    assert status["best"]["number"] == 4


def test_the_best_trial_as_a_ready_to_apply_trainingjob() -> None:
    job = study()
    manifest = best_manifest(job, {"learningRate": 0.02, "batchSize": 32, "model.depth": 1})
    best = parse(manifest)
    assert best.name == "s-best" and best.namespace == "ml" and best.spec.tuning is None
    assert best.spec.hyperparameters.learning_rate == 0.02
