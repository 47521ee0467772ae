"""The local shell: runs a TrainingJob on this machine, processes standing in for pods.

Decides: nothing about the job's policy (that is :func:`kubetune.core.plan`); only how the plan's actions become
processes and how processes become observations. Layout of a run directory (``./kubetune-runs/<job>/`` by default):
``state.json`` (the job's status, as the operator would keep it in the TrainingJob), ``checkpoints/`` (shared by the
ranks, like a PersistentVolumeClaim), and ``workers/<pod-name>/`` with ``log.txt``, ``progress.jsonl`` and
``result.json``. A run whose last state is not terminal is resumed by running the same command again; a finished
one starts afresh.

Imports no kopf, kubernetes or optuna; mlflow only through :mod:`kubetune.tracking`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from kubetune import tracking
from kubetune.api import TrainingJob
from kubetune.core import CreateWorker, DeleteWorker, Event, Observed, Plan, plan
from kubetune.core.workerenv import Placement, worker_env
from kubetune.local.chaos import Chaos
from kubetune.local.processes import LoadedWorkers, WorkerProcess, start_worker

STATE_FILE = "state.json"


@dataclass
class RunOptions:
    workdir: Path | None = None
    tracking_uri: str | None = None
    fresh: bool = False
    poll_interval: float = 0.25
    grace_seconds: float = 30.0
    threads: int | None = None
    progress_interval: float = 1.0
    extra_env: dict[str, str] = field(default_factory=dict)
    # Keep a finished earlier run as it is instead of starting afresh (a study adopting its trials' runs).
    adopt_finished: bool = False
    chaos: Chaos | None = None
    # Price per CPU-hour and GPU-hour by capacity ({"cpu": {"spot": 0.01, "onDemand": 0.033}}), for status.cost.
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    # Where built-in workers start from loaded processes (a fork server or warm processes: ``kubetune run
    # --start-method``); the caller owns and closes it. None: every worker starts cold.
    pool: LoadedWorkers | None = None


def load_status(path: Path) -> dict[str, Any]:
    """The status kept in a run directory's ``state.json`` ({} when there is none or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    status = data.get("status") if isinstance(data, dict) else None
    return status if isinstance(status, dict) else {}


def save_status(path: Path, status: dict[str, Any]) -> None:
    """Write ``state.json`` atomically (a temporary file, then a rename)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"status": status}, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class LocalRunner:
    """Drives one TrainingJob to a terminal phase with local processes."""

    def __init__(
        self,
        job: TrainingJob,
        options: RunOptions | None = None,
        *,
        on_event: Callable[[Event], None] | None = None,
        on_tick: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.job = job
        self.options = options or RunOptions()
        self.run_dir = (self.options.workdir or Path.cwd() / "kubetune-runs") / job.name
        self.on_event = on_event or (lambda event: None)
        self.on_tick = on_tick or (lambda status: None)
        self.clock = clock
        self.workers: dict[str, WorkerProcess] = {}
        self.ports: dict[int, int] = {}
        self.status: dict[str, Any] = {}
        self._started = time.monotonic()
        self.threads = self.options.threads or max(1, (os.cpu_count() or 1) // job.spec.parallelism.workers)

    # --- state ---------------------------------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.run_dir / STATE_FILE

    def _load_state(self) -> dict[str, Any]:
        return load_status(self.state_path)

    def _save_state(self) -> None:
        save_status(self.state_path, self.status)

    def _prepare(self) -> None:
        previous = {} if self.options.fresh else self._load_state()
        finished = previous.get("phase") in ("Succeeded", "Failed", "Stopped")
        if (finished and not self.options.adopt_finished) or self.options.fresh or not previous:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            previous = {}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.status = previous
        if self.job.spec.tracking.enabled and tracking.RunRef.from_dict(self.status.get("mlflow")) is None:
            uri = self.options.tracking_uri or self.job.spec.tracking.tracking_uri or tracking.default_tracking_uri()
            self.status["mlflow"] = tracking.start_run(self.job, uri).to_dict()
        self._save_state()

    # --- acting --------------------------------------------------------------------------------------------------

    def _command(self) -> list[str]:
        trainer = self.job.spec.trainer
        if trainer.builtin:
            return [sys.executable, "-m", "kubetune_trainer"]
        return [*trainer.command, *trainer.args]

    def _create(self, action: CreateWorker) -> None:
        if action.name in self.workers:
            return  # create-if-absent
        port = self.ports.setdefault(action.attempt, free_port())
        directory = self.run_dir / "workers" / action.name
        progress = directory / "progress.jsonl"
        ref = tracking.RunRef.from_dict(self.status.get("mlflow"))
        source = self.job.spec.checkpoint.resume_from  # a run in the same working directory (a study's trials)
        placement = Placement(
            master_addr="127.0.0.1",
            master_port=port,
            checkpoint_dir=str(self.run_dir / "checkpoints"),
            resume_dir=str(self.run_dir.parent / source / "checkpoints") if source else None,
            progress=f"file:{progress}",
            result_file=str(directory / "result.json"),
            tracking_uri=ref.tracking_uri if ref else None,
            run_id=ref.run_id if ref else None,
            threads=self.threads,
        )
        env = worker_env(self.job, action.rank, action.attempt, placement)
        env["KUBETUNE_PROGRESS_INTERVAL"] = str(self.options.progress_interval)
        chaos = self.options.chaos
        slowdown = chaos.slowdown(action.name) if chaos is not None else None
        if slowdown is not None:
            env["KUBETUNE_SLOWDOWN"] = f"{slowdown:.6g}"
        env.update(self.options.extra_env)
        pool = self.options.pool if self.job.spec.trainer.builtin else None
        self.workers[action.name] = start_worker(
            action.name, action.rank, action.attempt, self._command(), env, directory, progress, pool
        )

    def _delete(self, action: DeleteWorker) -> None:
        worker = self.workers.get(action.name)
        if worker is not None:
            worker.stop()

    def _act(self, decided: Plan) -> None:
        for event in decided.events:
            self.on_event(event)
        for action in decided.actions:
            if isinstance(action, CreateWorker):
                self._create(action)
            else:
                self._delete(action)

    def _inject_preemption(self) -> None:
        """``--chaos preempt``: a notice SIGTERMs one running worker of a job on spot capacity."""
        chaos = self.options.chaos
        if chaos is None or self.status.get("capacity") != "spot" or not chaos.preemption_due(time.monotonic()):
            return
        running = [w.name for w in self.workers.values() if w.process.poll() is None and w.stop_requested is None]
        victim = chaos.pick(running)
        if victim is not None:
            self.on_event(Event("Warning", "ChaosPreemption", f"spot preemption notice for {victim} (chaos)"))
            self.workers[victim].stop()

    def _any_alive(self) -> bool:
        return any(worker.process.poll() is None for worker in self.workers.values())

    # --- the loop ------------------------------------------------------------------------------------------------

    def step(self) -> Plan:
        """Observe, plan and act once."""
        self._inject_preemption()
        observed = Observed(tuple(w.observe() for w in self.workers.values()), self.status, self.options.prices)
        decided = plan(self.job, observed, self.clock())
        self._act(decided)
        new_status = dict(decided.status)
        if new_status != self.status:
            self.status = new_status
            self._save_state()
        for worker in self.workers.values():
            worker.enforce(self.options.grace_seconds)
        return decided

    def begin(self) -> None:
        """Load or start the run's state (and its MLflow run); call :meth:`tick` until it returns True."""
        self._started = time.monotonic()
        self._prepare()

    def tick(self) -> bool:
        """One observe-plan-act round; True once the job is terminal and no worker is left."""
        decided = self.step()
        self.on_tick(self.status)
        return decided.terminal and not self._any_alive()

    def finish(self) -> dict[str, Any]:
        """Close the workers' logs and the MLflow run; the summary."""
        for worker in self.workers.values():
            worker.close()
        ref = tracking.RunRef.from_dict(self.status.get("mlflow"))
        if ref is not None and self.status.get("phase") in ("Succeeded", "Failed", "Stopped"):
            tracking.end_run(ref, self.status)
        return summary(self.job, self.status, time.monotonic() - self._started, self.run_dir)

    def run(self) -> dict[str, Any]:
        """Run to a terminal phase and return the summary; Ctrl-C stops every worker and keeps the state."""
        self.begin()
        try:
            with _sigterm_as_interrupt():
                while not self.tick():
                    if self.options.pool is not None:  # a study's runners share its pool: the study fills it
                        self.options.pool.fill()
                    time.sleep(self.options.poll_interval)
        except KeyboardInterrupt:
            self.shutdown()
            for worker in self.workers.values():
                worker.close()
            raise
        return self.finish()

    def shutdown(self) -> None:
        """Stop every worker: SIGTERM (they checkpoint), then SIGKILL after the grace period. No orphans."""
        for worker in self.workers.values():
            worker.stop()
        deadline = time.monotonic() + self.options.grace_seconds
        while self._any_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        for worker in self.workers.values():
            if worker.process.poll() is None:
                worker.stop_requested = 0.0
                worker.enforce(0.0)
                worker.process.wait()
        self._save_state()


def summary(job: TrainingJob, status: dict[str, Any], duration_s: float, run_dir: Path) -> dict[str, Any]:
    """The one JSON object ``kubetune run --output json`` prints."""
    ref = tracking.RunRef.from_dict(status.get("mlflow"))
    reason = next((c.get("reason") for c in status.get("conditions", ()) if c.get("type") == status.get("phase")), None)
    return {
        "name": job.name,
        "phase": status.get("phase"),
        "reason": reason,
        "message": status.get("message", ""),
        "metrics": dict(status.get("finalMetrics") or {}),
        "latest_metrics": dict(status.get("metrics") or {}),
        "mlflow": {
            "tracking_uri": ref.tracking_uri if ref else None,
            "experiment_id": ref.experiment_id if ref else None,
            "run_id": ref.run_id if ref else None,
        },
        "workers": list(status.get("workers", ())),
        "attempt": status.get("attempt", 0),
        "restarts": status.get("restarts", 0),
        "preemptions": status.get("preemptions", 0),
        "last_checkpoint": status.get("lastCheckpoint"),
        "capacity": status.get("capacity"),
        "cost": status.get("cost"),
        "duration_s": round(duration_s, 3),
        "run_dir": str(run_dir),
    }
