"""The makespan of a queue of tasks on a few slots: FIFO list scheduling, vectorised over jobs.

Decides when a job of ``n`` tasks run in order on ``S`` slots ends, given each task's time on its slot: the first
``S`` tasks start at once, every later one on the slot that frees first. This is the queue model of a study
(``parallelTrials`` slots, ``maxTrials`` tasks), shared by the simulator's no-replication baseline and the adaptive
policy's forecasts, so that both reason about the same queue.

Pure: numpy only; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

import numpy as np

from kubetune.core.stragglers.base import Floats


def list_schedule(durations: Floats, slots: int) -> Floats:
    """Per job (row): the makespan of running its tasks in order on ``slots`` slots, each task starting on the slot
    that frees first (FIFO list scheduling); the maximum when ``slots`` covers every task."""
    if slots < 1:
        raise ValueError(f"slots: must be >= 1, got {slots}")
    jobs, tasks = durations.shape
    if slots >= tasks:
        latest: Floats = durations.max(axis=1)
        return latest
    free = durations[:, :slots].copy()  # when each slot frees
    rows = np.arange(jobs)
    for task in range(slots, tasks):
        slot = free.argmin(axis=1)
        free[rows, slot] += durations[:, task]
    makespan: Floats = free.max(axis=1)
    return makespan
