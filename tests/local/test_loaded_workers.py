"""The suite every way of starting built-in workers from loaded processes passes (a fork server, warm processes):
a worker started so trains exactly like a cold one, checkpoints on SIGTERM, and a bring-your-own trainer never
starts from one. One suite, as Optuna tests its samplers."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from kubetune.local import forks
from kubetune.local.forks import ForkServer
from kubetune.local.processes import LoadedWorkers
from kubetune.local.runner import LocalRunner, RunOptions
from kubetune.local.warm import WarmPool
from kubetune_trainer.preemption import PREEMPTED_EXIT_CODE

from local.conftest import TinyJob

linux_only = pytest.mark.skipif(not forks.available(), reason="forking workers needs Linux")
KINDS: dict[str, Callable[[], AbstractContextManager[Any]]] = {
    "forkserver": lambda: ForkServer(),
    "warm": lambda: WarmPool(1),
}


@pytest.fixture(params=[pytest.param("forkserver", marks=linux_only), "warm"])
def loaded(request: pytest.FixtureRequest) -> Iterator[LoadedWorkers]:
    with KINDS[request.param]() as source:
        yield source


def records(run_dir: Path, worker: str) -> list[dict[str, Any]]:
    path = run_dir / "workers" / worker / "progress.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_worker_started_loaded_trains_exactly_like_a_cold_one(
    tiny_job: TinyJob, tmp_path: Path, loaded: LoadedWorkers
) -> None:
    cold = LocalRunner(tiny_job("same"), RunOptions(workdir=tmp_path / "cold")).run()
    warm = LocalRunner(tiny_job("same"), RunOptions(workdir=tmp_path / "loaded", pool=loaded)).run()
    assert loaded.handed == 1
    assert cold["phase"] == warm["phase"] == "Succeeded"
    assert warm["metrics"] == cold["metrics"]  # same seed, same environment: the same numbers

    def losses(run_dir: Path) -> dict[int, float]:  # heartbeats are rate-limited by time: compare common steps
        return {r["step"]: r["metrics"]["train_loss"] for r in records(run_dir, "same-w0-a0") if r["metrics"]}

    cold_losses, warm_losses = losses(tmp_path / "cold" / "same"), losses(tmp_path / "loaded" / "same")
    common = cold_losses.keys() & warm_losses.keys()
    assert common and all(cold_losses[step] == warm_losses[step] for step in common)


def test_a_worker_started_loaded_writes_its_log_and_checkpoints_on_sigterm(
    tiny_job: TinyJob, tmp_path: Path, loaded: LoadedWorkers
) -> None:
    slow = tiny_job("slow", hyperparameters={"steps": 2000})
    delay = {"KUBETUNE_STEP_DELAY": "shiftedexp:1,1e9,0.01"}  # 10 ms a step: time to see it run
    runner = LocalRunner(slow, RunOptions(workdir=tmp_path, pool=loaded, extra_env=delay))
    runner.begin()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runner.tick()
        beat = runner.workers["slow-w0-a0"].heartbeats.latest if runner.workers else None
        if beat is not None and beat.step >= 20:
            break
        time.sleep(0.2)
    worker = runner.workers["slow-w0-a0"]
    worker.stop()
    assert worker.process.wait(timeout=30) == PREEMPTED_EXIT_CODE
    result = json.loads(worker.result_path.read_text())
    runner.shutdown()
    runner.finish()
    assert loaded.handed == 1
    assert result["outcome"] == "preempted" and result["step"] >= 20
    assert (tmp_path / "slow" / "checkpoints" / f"step-{result['step']:08d}").is_dir()


def test_a_bring_your_own_trainer_never_starts_loaded(tiny_job: TinyJob, tmp_path: Path, loaded: LoadedWorkers) -> None:
    script = tmp_path / "train.py"
    script.write_text("import kubetune_trainer\nkubetune_trainer.write_result('succeeded')\n")
    own = tiny_job("own", trainer={"image": "example.com/own:1", "command": [sys.executable, str(script)]})
    result = LocalRunner(own, RunOptions(workdir=tmp_path, pool=loaded)).run()
    assert loaded.handed == 0
    assert result["phase"] == "Succeeded"


def test_a_data_parallel_job_starts_every_rank_loaded(tiny_job: TinyJob, tmp_path: Path, loaded: LoadedWorkers) -> None:
    ddp = tiny_job("ddp", parallelism={"workers": 2})
    result = LocalRunner(ddp, RunOptions(workdir=tmp_path, pool=loaded)).run()
    assert result["phase"] == "Succeeded", result.get("message")
    assert loaded.handed >= 1  # the warm pool of one hands out one; the fork server forks both
