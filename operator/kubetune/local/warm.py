"""Warm trainer processes: the local runner's pool of built-in trainers that have already imported torch.

Decides: how many warm processes wait (``size``), when they start (``first`` of them, by default all, at once when the
pool is made, because the first workers are wanted at once; after that, one more only when none the pool started is
still loading, handed out or not: loading torch, scikit-learn and MLflow costs several CPU-seconds, and several
processes loading at once on a small machine slow each other and every running worker; a process says it is loaded by
writing ``ready`` to its stdout pipe), how one is started (like a worker: its own session, a parent-death signal, one
thread until it is handed a worker) and handed a worker (one JSON line, the protocol of :mod:`kubetune_trainer.warm`),
and when the pool gives none (closed, or none alive: the caller then starts a cold one). Taking never waits: a process
still loading reads its hand-over when it is ready. :meth:`WarmPool.fill` is called on every take and every tick of a
runner.

Only the built-in trainer (``python -m kubetune_trainer``) is ever warm; a bring-your-own command always starts cold.
Imports no kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from kubetune.local.processes import start_loader

if TYPE_CHECKING:
    from kubetune.api import TrainingJob

WARM_COMMAND = (sys.executable, "-m", "kubetune_trainer.warm")


def preloads(job: TrainingJob) -> tuple[str, ...]:
    """What a warm process for ``job``'s workers loads besides the trainer: what those workers will import."""
    modules: list[str] = []
    if job.spec.trainer.builtin and job.spec.trainer.dataset in ("digits", "mnist5k"):
        modules += ["sklearn.datasets", "sklearn.model_selection"]  # the data and its stratified split
    if job.spec.tracking.enabled:
        modules.append("mlflow")  # rank 0 logs to the run
    return tuple(modules)


class WarmPool:
    """Keeps ``size`` warm trainer processes, ``first`` of them (default all) started at once and the rest one at a
    time; use as a context manager (closing kills the ones never handed out)."""

    def __init__(
        self,
        size: int,
        *,
        first: int | None = None,
        preload: Sequence[str] = (),
        command: Sequence[str] = WARM_COMMAND,
    ) -> None:
        if size < 0:
            raise ValueError(f"warm pool size must be >= 0, got {size}")
        if first is not None and not 0 <= first <= size:
            raise ValueError(f"warm pool's first must be within 0..{size}, got {first}")
        self.size = size
        self.command = [*command, *preload]
        self.idle: deque[subprocess.Popen[bytes]] = deque()
        self.loading: list[subprocess.Popen[bytes]] = []  # started, not yet ready (idle or handed out)
        self.closed = False
        self.handed = 0  # workers started warm
        # At once: the first workers are wanted now (they would load as cold ones anyway); the spares for later
        # copies load one at a time by fill(), beside the running workers rather than all against them.
        for _ in range(size if first is None else first):
            process = self._start()
            self.idle.append(process)
            self.loading.append(process)

    def fill(self) -> None:
        """Drop dead processes; start one more if fewer than ``size`` wait and none is loading."""
        for process in [p for p in self.idle if p.poll() is not None]:
            self.idle.remove(process)
            _close_pipes(process)
        self.loading = [p for p in self.loading if not _loaded(p)]
        if not self.closed and len(self.idle) < self.size and not self.loading:
            process = self._start()
            self.idle.append(process)
            self.loading.append(process)

    def _start(self) -> subprocess.Popen[bytes]:
        process = start_loader(self.command)
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        return process

    def take(self, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes] | None:
        """A warm process become the worker with environment ``env`` (the whole of it) writing to ``log``; None when
        the pool has none to give (the caller starts the worker cold)."""
        while self.idle and not self.closed:
            process = self.idle.popleft()
            line = json.dumps({"env": dict(env), "log": str(log)}).encode() + b"\n"
            try:
                if process.poll() is not None or process.stdin is None:
                    raise BrokenPipeError
                process.stdin.write(line)
                process.stdin.close()  # the hand-over is all it will read
            except (BrokenPipeError, OSError):
                _close_pipes(process)
                continue
            self.handed += 1
            self.fill()
            return process
        return None

    def close(self) -> None:
        """Stop the processes never handed out (they hold no work) and start no more."""
        self.closed = True
        while self.idle:
            process = self.idle.popleft()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            _close_pipes(process)
        self.loading.clear()  # a worker still loading may write ``ready`` into a closed pipe: it ignores that

    def __enter__(self) -> WarmPool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def _loaded(process: subprocess.Popen[bytes]) -> bool:
    """Whether ``process`` has said ``ready`` or died; then the pool stops reading its stdout."""
    said: bytes | None = None
    if process.stdout is not None and not process.stdout.closed:
        with contextlib.suppress(BlockingIOError, OSError):
            said = process.stdout.read()  # b"ready\n", or b"" once the child has closed it; None: nothing yet
    if said is not None or process.poll() is not None:
        if process.stdout is not None:
            process.stdout.close()
        return True
    return False


def _close_pipes(process: subprocess.Popen[bytes]) -> None:
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
