"""`kubetune run` end to end: real trainer processes, real checkpoints, a real MLflow store (SQLite)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubetune.api import load, parse
from kubetune.local.runner import LocalRunner, RunOptions

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


def kubetune(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubetune.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def run_json(example: str, store: Path) -> dict[str, Any]:
    done = kubetune("run", str(EXAMPLES / example), "--output", "json", cwd=store)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def progress_records(run_dir: Path, worker: str) -> list[dict[str, Any]]:
    path = run_dir / "workers" / worker / "progress.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def mlp(store: Path) -> dict[str, Any]:
    return run_json("digits-mlp.yaml", store)


def test_digits_mlp_reaches_97_percent(mlp: dict[str, Any]) -> None:
    assert mlp["phase"] == "Succeeded" and mlp["reason"] == "AllWorkersSucceeded"
    assert mlp["metrics"]["test_accuracy"] >= 0.97
    assert set(mlp) >= {"name", "phase", "metrics", "mlflow", "workers", "duration_s"}
    assert mlp["workers"][0]["name"] == "digits-mlp-w0-a0"


def test_digits_ddp_within_one_point_of_one_worker(mlp: dict[str, Any], store: Path) -> None:
    ddp = run_json("digits-ddp.yaml", store)
    assert ddp["phase"] == "Succeeded"
    assert [w["rank"] for w in ddp["workers"]] == [0, 1]
    assert abs(ddp["metrics"]["test_accuracy"] - mlp["metrics"]["test_accuracy"]) <= 0.01


def test_digits_pipeline_reaches_96_percent(store: Path) -> None:
    pipeline = run_json("digits-pipeline.yaml", store)
    assert pipeline["phase"] == "Succeeded"
    assert pipeline["metrics"]["test_accuracy"] >= 0.96


def test_mlflow_holds_the_run_with_params_and_per_epoch_metrics(
    mlp: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    ref = mlp["mlflow"]
    client = MlflowClient(tracking_uri=ref["tracking_uri"])
    run = client.get_run(ref["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["kubetune.job"] == "digits-mlp"
    assert run.data.tags["kubetune.phase"] == "Succeeded"
    assert float(run.data.params["learning_rate"]) == 0.05
    history = client.get_metric_history(ref["run_id"], "val_accuracy")
    assert len(history) == 30 and sorted(m.step for m in history) == list(range(1, 31))
    assert run.data.metrics["test_accuracy"] == pytest.approx(mlp["metrics"]["test_accuracy"])

    import mlflow

    # set_tracking_uri also sets $MLFLOW_TRACKING_URI, which later tests' subprocesses would inherit: scope it.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", ref["tracking_uri"])
    mlflow.set_tracking_uri(ref["tracking_uri"])
    found = mlflow.search_runs(
        experiment_ids=[ref["experiment_id"]],
        filter_string="tags.`kubetune.job` = 'digits-mlp'",
        output_format="list",
    )
    assert [r.info.run_id for r in found] == [ref["run_id"]]


def test_sigkill_of_one_worker_restarts_the_gang_from_the_last_checkpoint(tmp_path: Path) -> None:
    job = load(EXAMPLES / "digits-ddp.yaml")
    killed: dict[str, int] = {}

    def kill_rank1_after_a_checkpoint(status: dict[str, Any]) -> None:
        checkpoint = (status.get("lastCheckpoint") or {}).get("step", 0)
        if not killed and status.get("attempt") == 0 and checkpoint >= 100:
            worker = runner.workers["digits-ddp-w1-a0"]
            os.kill(worker.process.pid, signal.SIGKILL)
            killed["at_checkpoint"] = checkpoint

    runner = LocalRunner(
        job,
        RunOptions(workdir=tmp_path, tracking_uri=f"sqlite:///{tmp_path}/m.db"),
        on_tick=kill_rank1_after_a_checkpoint,
    )
    result = runner.run()
    assert killed, "the worker was never killed"
    assert result["phase"] == "Succeeded"
    assert result["attempt"] == 1 and result["restarts"] == 1 and result["preemptions"] == 0
    run_dir = Path(result["run_dir"])
    saved = [r["step"] for r in progress_records(run_dir, "digits-ddp-w0-a0") if r["kind"] == "checkpoint"]
    resumed = progress_records(run_dir, "digits-ddp-w0-a1")
    # attempt 1 starts right after the newest checkpoint of attempt 0: no work before it is redone
    assert resumed[0]["step"] == max(saved) + 1
    assert max(saved) >= killed["at_checkpoint"]
    assert result["metrics"]["steps"] == resumed[-1]["total_steps"]
    assert result["metrics"]["test_accuracy"] >= 0.96


def test_interrupting_the_runner_stops_every_worker_and_a_rerun_resumes(
    tmp_path: Path, interruptible: Callable[[], None]
) -> None:
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubetune.cli", "run", str(EXAMPLES / "digits-ddp.yaml"), "--output", "json"],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    state = tmp_path / "kubetune-runs" / "digits-ddp" / "state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if state.exists() and (json.loads(state.read_text())["status"].get("lastCheckpoint") or {}).get("step"):
            break
        time.sleep(0.2)
    status = json.loads(state.read_text())["status"]
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again" in err
    time.sleep(0.5)
    leftovers = [pid for pid in pids if _is_trainer_of(pid, tmp_path)]
    assert leftovers == []
    assert status["phase"] in ("Pending", "Running")
    again = kubetune("run", str(EXAMPLES / "digits-ddp.yaml"), "--output", "json", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    result = json.loads(again.stdout)
    assert result["attempt"] >= 1 and result["restarts"] == 0
    assert result["mlflow"]["run_id"] == status["mlflow"]["runId"]  # the relaunch continues the same run


def _is_trainer_of(pid: int, workdir: Path) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return b"KUBETUNE_JOB=digits-ddp" in environ and str(workdir).encode() in environ


def test_validate_errors_exit_2_before_anything_runs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "digits-mlp.yaml").read_text().replace("workers: 1", "workers: 0"))
    done = kubetune("run", str(bad), cwd=tmp_path)
    assert done.returncode == 2
    assert "spec.parallelism.workers: must be >= 1, got 0" in done.stderr
    assert not (tmp_path / "kubetune-runs").exists()


def test_a_run_with_resume_from_starts_at_the_source_runs_newest_checkpoint(tmp_path: Path) -> None:
    def job(name: str, steps: int, **checkpoint: Any) -> Any:
        return parse(
            {
                "apiVersion": "kubetune.dev/v1alpha1",
                "kind": "TrainingJob",
                "metadata": {"name": name},
                "spec": {
                    "trainer": {"model": {"family": "mlp", "depth": 1, "width": 16}},
                    "hyperparameters": {"steps": steps},
                    "checkpoint": {"everySteps": 10, "minIntervalSeconds": 0, **checkpoint},
                    "tracking": {"enabled": False},
                },
            }
        )

    options = RunOptions(workdir=tmp_path)
    assert LocalRunner(job("source", 30), options).run()["phase"] == "Succeeded"
    moved = LocalRunner(job("moved", 50, resumeFrom="source"), options)
    assert moved.run()["phase"] == "Succeeded"
    records = progress_records(tmp_path / "moved", "moved-w0-a0")
    assert min(r["step"] for r in records) >= 30  # started from the source's step 30, not from 0
    assert json.loads((tmp_path / "moved" / "workers" / "moved-w0-a0" / "result.json").read_text())["step"] == 50
    assert sorted(p.name for p in (tmp_path / "source" / "checkpoints").glob("step-*")) == [
        "step-00000020",
        "step-00000030",
    ]  # read, never written
