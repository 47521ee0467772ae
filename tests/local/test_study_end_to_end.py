"""`kubetune run` of a study end to end: real trials (trainer processes), a real journal storage, real MLflow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import optuna.storages.journal
import pytest
import yaml

pytestmark = pytest.mark.slow

SLOW_STEPS = {"KUBETUNE_STEP_DELAY": "shiftedexp:1,1e9,0.03"}
STUDY: dict[str, Any] = {
    "apiVersion": "kubetune.dev/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "small-study"},
    "spec": {
        # A small CNN whose steps are stretched (SLOW_STEPS: 30 ms a step, about a second an epoch) so that the
        # controller sees every epoch's metric before the trial ends; unstretched, a forked trial's epoch takes
        # about 0.3 s and a tiny-learning-rate trial can finish between two looks.
        "trainer": {"model": {"family": "cnn", "depth": 1, "width": 8}, "dataset": "digits"},
        "hyperparameters": {"epochs": 3, "batchSize": 64, "seed": 0},
        "checkpoint": {"everySteps": 0},
        "tuning": {
            "objective": {"metric": "val_accuracy"},
            "parameters": [
                {"name": "learningRate", "type": "categorical", "choices": [0.1, 0.00001]},
                {"name": "momentum", "type": "float", "min": 0.5, "max": 0.9},
            ],
            # Seed 2 draws learning rates 0.1, 0.1, then 1e-5: the tiny ones start once a good trial is complete.
            "sampler": {"name": "random", "seed": 2},
            "pruner": {"name": "median", "options": {"n_startup_trials": 1, "n_warmup_steps": 0}},
            "maxTrials": 5,
            "parallelTrials": 2,
        },
    },
}


def write(tmp_path: Path, doc: dict[str, Any], name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def kubetune(
    *args: str, cwd: Path, timeout: float = 300, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the default: ./mlflow.db in cwd
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "kubetune.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def nested_runs(cwd: Path, parent: str) -> list[dict[str, Any]]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], f"tags.mlflow.parentRunId = '{parent}'"
    )
    return [{"name": r.info.run_name, "status": r.info.status, **r.data.tags, "metrics": r.data.metrics} for r in runs]


def test_a_small_study_runs_prunes_and_logs_parent_and_nested_runs(tmp_path: Path) -> None:
    done = kubetune("run", str(write(tmp_path, STUDY)), "--output", "json", cwd=tmp_path, extra_env=SLOW_STEPS)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["phase"] == "Succeeded" and result["reason"] == "MaxTrialsReached"
    trials = result["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3, 4]
    assert {t["state"] for t in trials} <= {"COMPLETE", "PRUNED"}
    assert any(t["state"] == "PRUNED" for t in trials), trials  # the tiny learning rate is cut short
    for t in trials:
        assert set(t) == {"number", "state", "params", "value", "duration_s"}
    best = result["best"]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert best["value"] == max(t["value"] for t in complete) and best["params"]["learningRate"] == 0.1
    assert result["metrics"] == {"val_accuracy": best["value"]}
    # MLflow: the study's parent run, one nested run per trial tagged with its number, plots and the best job.
    parent = result["mlflow"]["run_id"]
    children = nested_runs(tmp_path, parent)
    assert sorted(int(c["kubetune.trial"]) for c in children) == [0, 1, 2, 3, 4]
    assert {c["status"] for c in children} <= {"FINISHED", "KILLED"}
    assert all("val_accuracy" in c["metrics"] for c in children)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    artifacts = {a.path for a in client.list_artifacts(parent, "study")}
    assert {"study/optimization_history.html", "study/trials.json", "study/best-trainingjob.yaml"} <= artifacts
    best_job = Path(result["best_trainingjob"])
    check = kubetune("validate", str(best_job), cwd=tmp_path)
    assert check.returncode == 0, check.stderr


def test_killed_mid_study_the_same_command_resumes_without_duplicates(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(STUDY))
    doc["spec"]["hyperparameters"]["epochs"] = 6
    doc["spec"]["tuning"]["pruner"] = {"name": "none"}
    doc["spec"]["tuning"]["maxTrials"] = 4
    path = write(tmp_path, doc)
    state = tmp_path / "kubetune-runs" / "small-study" / "state.json"
    runner = subprocess.Popen(
        [sys.executable, "-m", "kubetune.cli", "run", str(path), "--output", "json"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            try:
                counts = json.loads(state.read_text())["status"].get("trials", {})
            except (OSError, ValueError):
                counts = {}
            if counts.get("complete", 0) >= 1 and counts.get("running", 0) >= 1:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the study never had a completed and a running trial")
    finally:
        runner.send_signal(signal.SIGKILL)  # no chance to clean up: the trials get SIGTERM from their parent's death
        runner.wait()
    before = json.loads(state.read_text())["status"]
    done_before = {t["number"] for t in before.get("topTrials", ())}
    done = kubetune("run", str(path), "--output", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    numbers = [t["number"] for t in result["trials"]]
    assert numbers == [0, 1, 2, 3]  # exactly maxTrials, unique numbers
    assert all(t["state"] == "COMPLETE" for t in result["trials"])
    # Completed trials were not rerun, and resumed ones continued their run: one MLflow run per trial.
    children = nested_runs(tmp_path, result["mlflow"]["run_id"])
    assert sorted(int(c["kubetune.trial"]) for c in children) == [0, 1, 2, 3]
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "kubetune-runs" / "small-study" / "study.journal"))
    )
    trials = optuna.load_study(study_name="default.small-study", storage=storage).trials
    assert len(trials) == 4
    for number in done_before:
        log = tmp_path / "kubetune-runs" / "small-study" / "trials" / f"small-study-t{number}" / "workers"
        assert [p.name for p in log.iterdir()] == [f"small-study-t{number}-w0-a0"]  # one attempt, never restarted


def test_a_study_whose_trials_all_diverge_fails_with_max_failed_trials_reached(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(STUDY))
    doc["metadata"]["name"] = "diverging"
    doc["spec"]["tuning"]["parameters"] = [
        {"name": "learningRate", "type": "float", "min": 1000, "max": 100000, "log": True},
        {"name": "momentum", "type": "float", "min": 0.95, "max": 0.99},
    ]
    doc["spec"]["tuning"]["maxTrials"] = 3
    doc["spec"]["tuning"]["maxFailedTrials"] = 3
    doc["spec"]["tracking"] = {"enabled": False}
    done = kubetune("run", str(write(tmp_path, doc)), "--output", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["phase"] == "Failed" and result["reason"] == "MaxFailedTrialsReached"
    assert "3 trial(s) failed" in result["message"]
    assert [t["state"] for t in result["trials"]] == ["FAIL", "FAIL", "FAIL"]
    assert "TrainingDiverged" in done.stderr  # each trial's failure is an event with its reason


def test_bad_sampler_options_are_refused_before_anything_runs(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(STUDY))
    doc["spec"]["tuning"]["sampler"] = {"name": "tpe", "options": {"n_startup": 2}}
    done = kubetune("run", str(write(tmp_path, doc)), cwd=tmp_path)
    assert done.returncode == 2
    assert "spec.tuning.sampler.options: tpe:" in done.stderr
    assert not (tmp_path / "kubetune-runs").exists()
