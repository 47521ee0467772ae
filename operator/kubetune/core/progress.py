"""The progress model: how fast a worker (and a trial) is going, how long it has left, and whether it is still there.

Decides, from a worker's heartbeats (``(time, step)`` pairs, oldest first) and ``now``:

- its step rate over a window: ``(step_last - step_first) / (time_last - time_first)`` over the heartbeats of the
  last ``window`` seconds (ending at the newest heartbeat), reaching back to the one heartbeat just before the window
  when the window alone holds fewer than two;
- its estimated time left, as LATE does: ``(1 - progress) / rate`` with progress a fraction of the total steps and
  rate in fractions per second (``inf`` when the rate is unknown or zero);
- its liveness: ``lost`` once no heartbeat came for ``2 x interval`` seconds (a lost worker is not a slow one: the
  straggler policies only ever see live workers' rates), ``starting`` before the first heartbeat, else ``alive``.

A trial (a gang of workers stepping together) is as far as its least advanced worker, goes at its slowest worker's
rate, and is lost when any worker is lost.

Pure: standard library only, no I/O and no clock (``now`` is given); must not import kopf, kubernetes, optuna,
mlflow or torch (an import-linter contract holds this).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Liveness = Literal["starting", "alive", "lost"]

DEFAULT_WINDOW_S = 60.0
# A worker is lost (not slow) after this many heartbeat intervals without one.
LOST_AFTER_INTERVALS = 2.0


def step_rate(beats: Sequence[tuple[float, float]], window: float = DEFAULT_WINDOW_S) -> float | None:
    """Steps per second over the last ``window`` seconds of ``beats`` (``(time, step)``, oldest first).

    ``None`` when it cannot be told: fewer than two heartbeats, or no time between the ones used.
    """
    if window <= 0:
        raise ValueError(f"window: must be > 0 seconds, got {window}")
    if len(beats) < 2:
        return None
    last_time, last_step = beats[-1]
    first = len(beats) - 1
    while first > 0 and beats[first - 1][0] >= last_time - window:
        first -= 1
    if first == len(beats) - 1:
        first -= 1  # the window holds one heartbeat only: reach back to the one before it
    first_time, first_step = beats[first]
    elapsed = last_time - first_time
    if elapsed <= 0:
        return None
    return max(0.0, (last_step - first_step) / elapsed)


def time_left(progress: float, rate: float | None) -> float:
    """Seconds left at ``rate`` (progress fractions per second) from ``progress`` (0..1): ``(1 - progress) / rate``."""
    remaining = max(0.0, 1.0 - progress)
    if remaining == 0.0:
        return 0.0
    if rate is None or not rate > 0 or math.isnan(rate):
        return math.inf
    return remaining / rate


def liveness(last_beat: float | None, now: float, interval: float) -> Liveness:
    """``lost`` when the newest heartbeat is over ``2 x interval`` seconds old, ``starting`` when there is none yet."""
    if interval <= 0:
        raise ValueError(f"interval: must be > 0 seconds, got {interval}")
    if last_beat is None:
        return "starting"
    return "lost" if now - last_beat > LOST_AFTER_INTERVALS * interval else "alive"


@dataclass(frozen=True)
class WorkerProgress:
    """One worker's progress now.

    ``progress`` is the fraction of ``total_steps`` done (``None`` when the total is unknown), ``step_rate`` is in
    steps per second, ``rate`` in progress fractions per second, ``eta_s`` in seconds (``inf`` when unknown).
    """

    step: int
    progress: float | None
    step_rate: float | None
    rate: float | None
    eta_s: float
    liveness: Liveness
    last_beat: float | None


def worker_progress(
    beats: Sequence[tuple[float, float]],
    now: float,
    *,
    total_steps: int | None,
    interval: float,
    window: float = DEFAULT_WINDOW_S,
) -> WorkerProgress:
    """The progress of one worker from its heartbeats (``(time, step)``, oldest first)."""
    last_beat = beats[-1][0] if beats else None
    step = int(beats[-1][1]) if beats else 0
    steps_per_s = step_rate(beats, window)
    progress: float | None = None
    rate: float | None = None
    eta = math.inf
    if total_steps is not None and total_steps > 0:
        progress = min(1.0, max(0.0, step / total_steps))
        rate = None if steps_per_s is None else steps_per_s / total_steps
        eta = time_left(progress, rate)
    return WorkerProgress(
        step=step,
        progress=progress,
        step_rate=steps_per_s,
        rate=rate,
        eta_s=eta,
        liveness=liveness(last_beat, now, interval),
        last_beat=last_beat,
    )


@dataclass(frozen=True)
class TrialProgress:
    """A trial's progress: its least advanced worker's progress, its slowest worker's rate, the longest ETA."""

    progress: float | None
    rate: float | None
    eta_s: float
    liveness: Liveness
    workers: int


def trial_progress(workers: Sequence[WorkerProgress]) -> TrialProgress:
    """Combine a trial's workers: a synchronous gang is as far as, and as fast as, its slowest member."""
    if not workers:
        return TrialProgress(progress=None, rate=None, eta_s=math.inf, liveness="starting", workers=0)
    states = {worker.liveness for worker in workers}
    state: Liveness = "lost" if "lost" in states else "starting" if "starting" in states else "alive"
    progresses = [worker.progress for worker in workers]
    rates = [worker.rate for worker in workers]
    progress = None if any(p is None for p in progresses) else min(p for p in progresses if p is not None)
    rate = None if any(r is None for r in rates) else min(r for r in rates if r is not None)
    eta = max(worker.eta_s for worker in workers)
    return TrialProgress(progress=progress, rate=rate, eta_s=eta, liveness=state, workers=len(workers))
