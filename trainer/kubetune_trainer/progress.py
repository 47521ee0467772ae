"""Heartbeats and the result message: the trainer's only outputs besides checkpoints and MLflow.

Decides: the heartbeat and result JSON shapes of docs/trainer-contract.md, the rate limit (at most one
``heartbeat`` per ``KUBETUNE_PROGRESS_INTERVAL`` seconds; ``epoch``, ``checkpoint`` and ``final`` always go
out), samples/s over the window since the previous heartbeat, and where the result goes. Sinks are pluggable
through a scheme registry (``file:``, ``stdout``, ``none``; ``k8s:`` lazily imports
:mod:`kubetune_trainer.k8s_progress`).

Must not import: torch, mlflow, kopf, ``kubetune``; kubernetes only lazily, inside the ``k8s:`` sink's factory.
This module is the public SDK for users' own training scripts (``kubetune_trainer.report``).
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

KINDS = ("heartbeat", "epoch", "checkpoint", "final")
ALWAYS_SENT = frozenset({"epoch", "checkpoint", "final"})
RESULT_LIMIT_BYTES = 4096
TERMINATION_LOG = "/dev/termination-log"


class Sink(Protocol):
    """Where heartbeats go. ``emit`` gets one JSON-serialisable dict."""

    def emit(self, record: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class NullSink:
    def emit(self, record: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class StdoutSink:
    def emit(self, record: Mapping[str, Any]) -> None:
        sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        pass


class FileSink:
    """JSON lines appended to a file, flushed after every line (several ranks may share the file)."""

    def __init__(self, path: str) -> None:
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def emit(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _pod_annotation_sink(target: str) -> Sink:
    """``k8s:``: the in-cluster sink, imported only when asked for (it pulls in the kubernetes client)."""
    from kubetune_trainer.k8s_progress import PodAnnotationSink

    return PodAnnotationSink(target)


SinkFactory = Callable[[str], Sink]
_SINKS: dict[str, SinkFactory] = {
    "file": FileSink,
    "stdout": lambda _target: StdoutSink(),
    "none": lambda _target: NullSink(),
    "k8s": _pod_annotation_sink,
}


def register_sink(scheme: str, factory: SinkFactory) -> None:
    """Make ``SCHEME:TARGET`` progress specs build sinks with ``factory(TARGET)``."""
    _SINKS[scheme] = factory


def open_sink(spec: str) -> Sink:
    """``file:/tmp/p.jsonl`` -> FileSink, ``stdout`` -> StdoutSink, ``none``/empty -> NullSink."""
    scheme, _, target = (spec or "none").partition(":")
    try:
        factory = _SINKS[scheme]
    except KeyError:
        raise ValueError(f"KUBETUNE_PROGRESS={spec!r}: unknown sink scheme {scheme!r}") from None
    return factory(target)


class Reporter:
    """Rate-limited heartbeats of one worker. ``clock`` is injectable for tests."""

    def __init__(
        self,
        sink: Sink,
        *,
        job: str = "local",
        rank: int = 0,
        attempt: int = 0,
        interval: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sink = sink
        self.job = job
        self.rank = rank
        self.attempt = attempt
        self.interval = interval
        self.clock = clock
        self._last_sent: float | None = None
        self._window_start = clock()
        self._window_samples: int | None = None
        self._window_step = 0
        self._rate: float | None = None
        self._step_rate: float | None = None
        # The newest epoch record's metrics, repeated in every later record so that a coalescing channel (the pod
        # annotation keeps only the newest record) never loses a study's intermediate values.
        self._last_epoch: dict[str, Any] | None = None
        # Likewise the newest checkpoint's step: in a coalescing channel a checkpoint record is soon replaced.
        self._checkpoint_step: int | None = None
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Would a ``heartbeat`` go out now? Cheap enough to ask every step."""
        return self._last_sent is None or self.clock() - self._last_sent >= self.interval

    def report(
        self,
        step: int,
        metrics: Mapping[str, float] | None = None,
        *,
        total_steps: int | None = None,
        epoch: int | None = None,
        samples: int | None = None,
        kind: str = "heartbeat",
        local_step_s: float | None = None,
    ) -> bool:
        """Emit one record unless rate-limited; returns whether it went out.

        ``samples`` is the cumulative number of samples this worker processed; samples/s is computed over the
        window since the previous record that carried it.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown heartbeat kind {kind!r} (one of {', '.join(KINDS)})")
        with self._lock:
            now = self.clock()
            if kind not in ALWAYS_SENT and not self.due():
                return False
            rate: float | None = None
            step_rate: float | None = None
            if samples is not None and samples == self._window_samples:
                rate, step_rate = self._rate, self._step_rate  # nothing new since the last record (an epoch record)
            elif samples is not None:
                if self._window_samples is not None and now > self._window_start:
                    rate = (samples - self._window_samples) / (now - self._window_start)
                    step_rate = (step - self._window_step) / (now - self._window_start)
                self._window_samples, self._window_step = samples, step
                self._window_start = now
                self._rate, self._step_rate = rate, step_rate
            self._last_sent = now
            clean = {key: float(value) for key, value in (metrics or {}).items()}
            if kind == "epoch" and epoch is not None:
                self._last_epoch = {"epoch": epoch, "metrics": clean}
            if kind == "checkpoint" and (self._checkpoint_step is None or step > self._checkpoint_step):
                self._checkpoint_step = step
            record = {
                "kind": kind,
                "job": self.job,
                "rank": self.rank,
                "attempt": self.attempt,
                "step": step,
                "total_steps": total_steps,
                "epoch": epoch,
                "samples_per_s": None if rate is None else round(rate, 3),
                "steps_per_s": None if step_rate is None else round(step_rate, 6),
                "metrics": clean,
                "time": now,
            }
            if self._last_epoch is not None:
                record["last_epoch"] = self._last_epoch
            if self._checkpoint_step is not None:
                record["checkpoint_step"] = self._checkpoint_step
            if local_step_s is not None:
                record["local_step_s"] = round(local_step_s, 6)
            self.sink.emit(record)
            return True

    def close(self) -> None:
        self.sink.close()


def reporter_from_env(env: Mapping[str, str]) -> Reporter:
    """The reporter a worker's environment asks for (used by :func:`report` in users' scripts)."""
    return Reporter(
        open_sink(env.get("KUBETUNE_PROGRESS", "none")),
        job=env.get("KUBETUNE_JOB", "local"),
        rank=int(env.get("RANK", env.get("PET_NODE_RANK", "0"))),
        attempt=int(env.get("KUBETUNE_ATTEMPT", "0")),
        interval=float(env.get("KUBETUNE_PROGRESS_INTERVAL", "2")),
    )


_default: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> None:
    """Install the reporter :func:`report` uses (the trainer installs its own; None: rebuild from env)."""
    global _default
    _default = reporter


def report(
    step: int,
    metrics: Mapping[str, float] | None = None,
    *,
    total_steps: int | None = None,
    epoch: int | None = None,
    samples: int | None = None,
    kind: str = "heartbeat",
) -> bool:
    """Send a heartbeat from any training script; configured by the contract's environment."""
    global _default
    if _default is None:
        _default = reporter_from_env(os.environ)
    return _default.report(step, metrics, total_steps=total_steps, epoch=epoch, samples=samples, kind=kind)


def result_path(env: Mapping[str, str]) -> str | None:
    """``KUBETUNE_RESULT_FILE``, else the pod's termination log when it exists, else nowhere."""
    path = env.get("KUBETUNE_RESULT_FILE", "").strip()
    if path:
        return path
    return TERMINATION_LOG if os.path.exists(TERMINATION_LOG) else None


def write_result(
    outcome: str,
    *,
    step: int = 0,
    metrics: Mapping[str, float] | None = None,
    checkpoint_step: int | None = None,
    reason: str = "",
    message: str = "",
    path: str | None = None,
) -> dict[str, Any]:
    """Write the contract's result JSON (< 4 KiB; the message is truncated to fit) and return it."""
    if outcome not in ("succeeded", "preempted", "failed"):
        raise ValueError(f"unknown outcome {outcome!r}")
    result: dict[str, Any] = {
        "outcome": outcome,
        "step": step,
        # Strict JSON has no NaN/Infinity: a non-finite metric is left out.
        "metrics": {key: float(v) for key, v in (metrics or {}).items() if math.isfinite(float(v))},
        "checkpoint_step": checkpoint_step,
        "reason": reason,
        "message": message,
    }
    text = json.dumps(result, separators=(",", ":"))
    while len(text.encode()) >= RESULT_LIMIT_BYTES and result["message"]:
        result["message"] = result["message"][: max(0, len(result["message"]) // 2 - 3)] + "..."
        if len(result["message"]) <= 3:
            result["message"] = ""
        text = json.dumps(result, separators=(",", ":"))
    target = path if path is not None else result_path(os.environ)
    if target:
        directory = os.path.dirname(target)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
    return result
