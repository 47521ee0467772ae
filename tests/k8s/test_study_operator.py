"""Studies in the cluster: the real operator runs a study's trials as child TrainingJobs against the test API server
and the fake kubelet (real trainer processes), resumes after its own restart without duplicates, prunes through the
stop annotation, and deleting the study removes its trials."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from kubetune.operator.settings import OperatorSettings
from kubetune.testing.devcluster import DevCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    workdir = tmp_path_factory.mktemp("study-cluster")
    settings = OperatorSettings(
        metrics_port=0,
        tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
        progress_interval_seconds=1.0,
        resync_seconds=2.0,
        termination_grace_seconds=30,
        study_storage=f"journal://{workdir / 'studies.journal'}",
    )
    with DevCluster(workdir, settings=settings) as dev:
        yield dev


def study(name: str, trials: int, **tuning: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "trainer": {"model": {"family": "cnn", "depth": 1, "width": 8}, "dataset": "digits"},
            "hyperparameters": {"epochs": 3, "batchSize": 64},
            "checkpoint": {"everySteps": 0},
            "resources": {"requests": {"cpu": "1"}},
            "tuning": {
                "objective": {"metric": "val_accuracy"},
                "parameters": [
                    {"name": "learningRate", "type": "categorical", "choices": [0.1, 0.00001]},
                    {"name": "momentum", "type": "float", "min": 0.5, "max": 0.9},
                ],
                "sampler": {"name": "random", "seed": 2},
                "maxTrials": trials,
                "parallelTrials": 2,
                **tuning,
            },
        },
    }


def wait_for(predicate: Callable[[], Any], timeout: float = 240, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def status_of(cluster: DevCluster, name: str) -> dict[str, Any]:
    return dict((cluster.api.get("trainingjobs", name) or {}).get("status") or {})


def trials_of(cluster: DevCluster, study_name: str) -> list[dict[str, Any]]:
    return cluster.api.objects("trainingjobs", "default", label_selector=f"kubetune.dev/study={study_name}")


def test_a_study_runs_as_child_trainingjobs_survives_an_operator_restart_and_prunes(
    cluster: DevCluster, tmp_path: Path
) -> None:
    pruner = {"name": "median", "options": {"n_startup_trials": 1, "n_warmup_steps": 0}}
    cluster.api.create(study("tune", 5, pruner=pruner), namespace="default")
    wait_for(lambda: status_of(cluster, "tune").get("trials", {}).get("complete", 0) >= 1, what="a complete trial")
    cluster.stop_operator()  # mid-study: trials keep running (their pods do), nothing is lost
    time.sleep(1.0)
    cluster.start_operator()
    wait_for(lambda: status_of(cluster, "tune").get("phase") == "Succeeded", timeout=400, what="the study to end")
    status = status_of(cluster, "tune")
    assert status["trials"]["total"] == 5 and status["trials"]["running"] == 0
    assert status["trials"]["pruned"] >= 1, status["trials"]  # the tiny learning rates are cut short
    assert status["best"]["params"]["learningRate"] == 0.1
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert condition["reason"] == "MaxTrialsReached"
    children = trials_of(cluster, "tune")
    assert sorted(c["metadata"]["name"] for c in children) == [f"tune-t{n}" for n in range(5)]  # no duplicates
    for child in children:
        assert child["metadata"]["ownerReferences"][0]["name"] == "tune"
        assert child["metadata"]["labels"]["kubetune.dev/trial"] in {str(n) for n in range(5)}
        assert "tuning" not in child["spec"]
        assert child["status"]["phase"] in ("Succeeded", "Stopped")
    pruned = [c for c in children if c["status"]["phase"] == "Stopped"]
    assert pruned and all(c["metadata"]["annotations"]["kubetune.dev/stop"] == "Pruned" for c in pruned)
    # The storage holds exactly the five trials, each told once.
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(cluster.workdir / "studies.journal"))
    )
    [summary] = [s for s in optuna.get_all_study_summaries(storage) if s.study_name.startswith("default.tune")]
    assert summary.n_trials == 5
    # MLflow: the study's parent run and one nested run per trial.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{cluster.workdir / 'mlflow.db'}")
    parent = status["mlflow"]["runId"]
    nested = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], f"tags.mlflow.parentRunId = '{parent}'"
    )
    assert sorted(r.data.tags["kubetune.trial"] for r in nested) == [str(n) for n in range(5)]
    reasons = {e["reason"] for e in cluster.api.objects("events", "default") if e["involvedObject"]["name"] == "tune"}
    assert {"TrialStarted", "TrialCompleted", "TrialPruned", "MaxTrialsReached"} <= reasons


def test_deleting_a_study_removes_its_trials(cluster: DevCluster) -> None:
    cluster.api.create(study("doomed", 4), namespace="default")
    wait_for(lambda: len(trials_of(cluster, "doomed")) >= 2, what="trials")
    cluster.api.delete("trainingjobs", "doomed", namespace="default")
    wait_for(lambda: not trials_of(cluster, "doomed"), timeout=120, what="the trials to be collected")
    wait_for(
        lambda: not [p for p in cluster.api.objects("pods", "default") if p["metadata"]["name"].startswith("doomed-")],
        timeout=120,
        what="the trials' pods to be collected",
    )
