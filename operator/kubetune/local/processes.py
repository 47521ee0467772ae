"""Local workers: processes that stand in for pods.

Decides: how a worker process is started (its own session, the contract's environment, a log file, and a parent-death
signal so that no worker outlives its runner), how it is stopped (SIGTERM, then SIGKILL after a grace period, like a
kubelet), and how its state is observed (exit code, the result file, and the newest line of its heartbeat file).
Imports no kopf, kubernetes, optuna or mlflow.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from kubetune.core import Heartbeat, Result, WorkerObservation

_PR_SET_PDEATHSIG = 1
# While it loads and waits, a process that loads the trainer ahead of workers runs one thread per pool: OpenMP and
# OpenBLAS size their pools from these when loaded (a worker's own count is set when it becomes one).
_LOADER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class WorkerHandle(Protocol):
    """What the runner needs of a worker process: a ``subprocess.Popen``, or a forked one (``forks.ForkedProcess``).
    Its pid is its process group's (signals go to the group)."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class LoadedWorkers(Protocol):
    """Where built-in workers start from processes that have already loaded the trainer: a fork server
    (``forks.ForkServer``) or a pool of warm processes (``warm.WarmPool``)."""

    handed: int  # workers started from it

    def take(self, env: Mapping[str, str], log: Path) -> WorkerHandle | None:
        """A worker with environment ``env`` (the whole of it) writing to ``log``; None: start it cold."""
        ...

    def fill(self) -> None:
        """Called on every tick of a runner: get ready for the next take."""
        ...


@dataclass
class HeartbeatReader:
    """Follows one worker's JSON-lines heartbeat file; keeps the newest heartbeat and the newest checkpoint."""

    path: Path
    offset: int = 0
    latest: Heartbeat | None = None
    checkpoint_step: int | None = None
    _partial: bytes = b""

    def poll(self) -> Heartbeat | None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return self.latest
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._take(line)
        return self.latest

    def _take(self, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return
        if not isinstance(record, dict):
            return
        beat = Heartbeat.from_dict(record)
        if beat.checkpoint_step is not None:  # every record after a checkpoint names it (the trainer contract)
            self.checkpoint_step = beat.checkpoint_step
        # A record without the total or metrics (a checkpoint record, a bare ``report(step=...)``) keeps the last known.
        previous = self.latest
        known_total = previous.total_steps if previous else None
        self.latest = dataclasses.replace(
            beat,
            total_steps=beat.total_steps if beat.total_steps is not None else known_total,
            metrics=beat.metrics or (previous.metrics if previous else {}),
            checkpoint_step=self.checkpoint_step,
        )


@dataclass
class WorkerProcess:
    """One running or finished worker."""

    name: str
    rank: int
    attempt: int
    process: WorkerHandle
    directory: Path
    log: IO[bytes]
    heartbeats: HeartbeatReader
    started: float = field(default_factory=time.monotonic)
    stop_requested: float | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    @property
    def result_path(self) -> Path:
        return self.directory / "result.json"

    def observe(self) -> WorkerObservation:
        code = self.process.poll()
        beat = self.heartbeats.poll()
        if code is None:
            return WorkerObservation(
                self.name,
                self.rank,
                self.attempt,
                "Running",
                terminating=self.stop_requested is not None,
                heartbeat=beat,
                node="localhost",
                started_at=self.started_at,
            )
        if self.finished_at is None:
            self.finished_at = time.time()
        result = _read_result(self.result_path)
        exit_code = code if code >= 0 else 128 - code
        reason = None if code >= 0 else signal.Signals(-code).name
        return WorkerObservation(
            self.name,
            self.rank,
            self.attempt,
            "Succeeded" if code == 0 else "Failed",
            exit_code=exit_code,
            reason=reason,
            heartbeat=beat,
            result=result,
            node="localhost",
            started_at=self.started_at,
            finished_at=self.finished_at,
        )

    def stop(self) -> None:
        """Ask the worker to stop (SIGTERM to its process group); :meth:`enforce` kills it after the grace."""
        if self.process.poll() is None and self.stop_requested is None:
            self.stop_requested = time.monotonic()
            _signal_group(self.process, signal.SIGTERM)

    def enforce(self, grace_seconds: float) -> None:
        if (
            self.stop_requested is not None
            and self.process.poll() is None
            and time.monotonic() - self.stop_requested > grace_seconds
        ):
            _signal_group(self.process, signal.SIGKILL)

    def close(self) -> None:
        if not self.log.closed:
            self.log.close()


def _signal_group(process: WorkerHandle, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _read_result(path: Path) -> Result | None:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Result.from_dict(data) if isinstance(data, dict) else None


def start_loader(command: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start a process that loads the built-in trainer ahead of its workers (a warm process, a fork server): in its
    own session, with a parent-death signal, one thread per pool, stdin and stdout piped to this process, stderr
    discarded (what fails while loading fails again, reported, in the worker)."""
    return subprocess.Popen(
        list(command),
        env={**os.environ, **_LOADER_ENV},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
    )


def start_worker(
    name: str,
    rank: int,
    attempt: int,
    command: Sequence[str],
    env: Mapping[str, str],
    directory: Path,
    progress_path: Path,
    pool: LoadedWorkers | None = None,
) -> WorkerProcess:
    """Start one worker process in its own session, its output going to ``directory/log.txt``; with ``pool`` (the
    command must then be the built-in trainer's), the worker is forked or handed to a warm process if it can be."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "result.json").unlink(missing_ok=True)
    log = (directory / "log.txt").open("ab")
    full_env = {**os.environ, **env}
    process: WorkerHandle | None = pool.take(full_env, directory / "log.txt") if pool is not None else None
    if process is None:
        process = subprocess.Popen(
            list(command),
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
    return WorkerProcess(name, rank, attempt, process, directory, log, HeartbeatReader(progress_path))
