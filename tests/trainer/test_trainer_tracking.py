"""MLflow: rank 0 logs into the controller's run; a relaunch continues it without re-logging params."""

from __future__ import annotations

from pathlib import Path

import pytest
from trainer_harness import base_env, launch, read_result

mlflow = pytest.importorskip("mlflow")


@pytest.mark.slow
def test_params_epoch_metrics_final_metrics_and_model_land_in_the_existing_run(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("kubetune-test", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment).info.run_id

    env = base_env(tmp_path, MLFLOW_TRACKING_URI=uri, KUBETUNE_MLFLOW_RUN_ID=run_id, KUBETUNE_EPOCHS="3")
    proc = launch(env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err

    # A relaunch with more epochs continues the run from its checkpoint.
    proc = launch({**env, "KUBETUNE_EPOCHS": "4", "KUBETUNE_ATTEMPT": "1"})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err

    run = client.get_run(run_id)
    params = run.data.params
    assert params["model_family"] == "mlp" and params["learning_rate"] == "0.05" and params["parallelism"] == "data"
    assert params["epochs"] == "3"  # logged once by the first attempt, never overwritten
    history = client.get_metric_history(run_id, "val_accuracy")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    for name in ("train_loss", "val_loss", "epoch_time_s", "samples_per_s"):
        assert len(client.get_metric_history(run_id, name)) == 4, name
    assert run.data.metrics["test_accuracy"] > 0.8
    assert {"test_loss", "val_accuracy"} <= set(run.data.metrics)
    artifacts = [a.path for a in client.list_artifacts(run_id, "model")]
    assert artifacts == ["model/model_state_dict.pt"]


@pytest.mark.slow
def test_an_unexpected_error_still_leaves_a_result(tmp_path: Path) -> None:
    uri = "bogus-scheme://nowhere"
    proc = launch(base_env(tmp_path, MLFLOW_TRACKING_URI=uri, KUBETUNE_MLFLOW_RUN_ID="r", KUBETUNE_STEPS="2"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "Traceback" in err  # an unexpected error keeps its traceback for the logs
    result = read_result(tmp_path)
    assert (result["outcome"], result["reason"]) == ("failed", "Error")
    assert result["message"]
