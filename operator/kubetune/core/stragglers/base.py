"""The straggler-policy interface: a batch of jobs' tasks in, which tasks to copy (and whether to kill) out.

Decides: nothing by itself; it is the vocabulary every straggler policy speaks (one abstract base class,
:class:`StragglerPolicy`, the way Optuna's samplers share ``BaseSampler``), and the contract between a policy and the
two shells that drive it: the simulator (``kubetune simulate``, which calls it for hundreds of thousands of synthetic
jobs at once) and a live runner/operator (which calls it with a batch of one job built from trials' heartbeats).

The interface
-------------
A *job* is a set of ``n`` tasks (trials) that all have to finish; a task may run as several *copies* at once (the
original and replicas); the task finishes when its first copy does, and then every other copy is cancelled.

``policy.decide(batch) -> Decision`` is called at decision points: at least whenever a task of a job finishes (a
slot comes free), and again at the time a policy asks for in ``Decision.wake_at``. ``batch`` is a
:class:`TaskBatch`: numpy arrays of shape ``(jobs,)`` or ``(jobs, tasks)``, one row per job (a live shell passes
``jobs == 1``; :meth:`TaskBatch.from_tasks` builds that row from per-task facts). Every job in a batch is unfinished,
and each job has its own clock (``now[j]``). The policy returns, per job and task:

- ``copies[j, i]``: how many new copies of task ``i`` to launch now (0 = none). Ignored for finished tasks.
- ``kill_original[j, i]``: cancel the copies of task ``i`` running now (in practice: the original) before the new
  ones start. Only meaningful together with ``copies[j, i] >= 1``: a shell rejects a kill without new copies.
- ``resume[j, i]`` (optional; all False when absent): the new copies of task ``i`` resume from its checkpoint (the
  progress of its most advanced live copy) instead of starting over: together with ``kill_original`` a *move* of the
  task to a fresh machine that keeps its progress (the slowdown belongs to the machine, the progress to the task).
- ``prune[j, i]`` (optional; all False when absent): keep only the live copy of task ``i`` that will finish first
  (the shortest estimated time left: ``(1 - progress) / rate``) and cancel its other copies now, before any new
  copies start: a *hedged launch* races several copies until their speeds show, then keeps the fastest. Meaningless
  for a task with one live copy.
- ``wake_at[j]``: the next time (on the job's clock) to be asked even if no task finishes by then; ``inf`` when only
  completions matter. A time not after ``now[j]`` is ignored.

:meth:`Decision.for_job` turns one row into :class:`Replicate` actions (task, copies, kill_original) for a live
shell. A policy keeps no per-job state between calls: everything it needs is in the batch (``launched`` says whether
a task was copied already, ``first_copy_at`` when). Policies are deterministic functions of the batch (the adaptive
one also of what it has fitted so far).

Pure: numpy and the standard library only; must not import kopf, kubernetes, optuna, mlflow or torch (an
import-linter contract holds this).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]


@dataclass(frozen=True)
class TaskState:
    """What a live shell knows of one task (trial) of a job, to build a batch of one with :meth:`TaskBatch.from_tasks`.

    ``start``: when the original copy was launched. ``finished_at``: when the task's first copy finished (``None``
    while running). ``progress``/``rate``: the most advanced live copy's progress fraction (0..1) and its rate in
    fractions per second (``None`` when unknown; see :mod:`kubetune.core.progress`). ``copies``: live copies now.
    ``launched``: copies ever launched, the original included (so ``>= 1``). ``first_copy_at``: when the first extra
    copy was launched, if any. ``copy_start``: when the most advanced live copy was launched (``None``: unknown).
    ``cancelled``: the policy cancelled the original copy (a move, or a copy that replaced it) before the task finished.
    """

    start: float
    finished_at: float | None = None
    progress: float | None = None
    rate: float | None = None
    copies: int = 1
    launched: int = 1
    first_copy_at: float | None = None
    copy_start: float | None = None
    cancelled: bool = False


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True, eq=False)
class TaskBatch:
    """The state of a batch of unfinished jobs, ``J`` jobs of ``N`` tasks each (all arrays numpy).

    Per job, shape ``(J,)``: ``now`` (the job's clock), ``slots`` (how many copies may run at once: the job's
    parallelism; LATE caps its copies at 10% of it).
    Per task, shape ``(J, N)``: ``start`` (launch time of the original copy), ``finished`` (bool),
    ``finish_time`` (the first copy's finish time; NaN while running), ``progress`` (the most advanced live copy's
    fraction done, 0..1; NaN when unknown; 1 when finished), ``rate`` (that copy's progress fractions per second; NaN
    when unknown), ``copies`` (live copies now; 0 when finished), ``launched`` (copies ever launched including the
    original, ``>= 1``), ``first_copy_at`` (launch time of the first extra copy; NaN when never copied), and, optional,
    ``copy_start`` (launch time of the most advanced live copy, the one ``progress`` and ``rate`` describe; NaN when
    unknown or finished; absent: taken as ``start``) and ``cancelled`` (bool: the policy cancelled the task's original
    copy, a move or a copy that replaced it; absent: none was).
    """

    now: Floats
    start: Floats
    finished: Bools
    finish_time: Floats
    progress: Floats
    rate: Floats
    copies: Ints
    launched: Ints
    first_copy_at: Floats
    slots: Ints
    copy_start: Floats | None = None
    cancelled: Bools | None = None

    def __post_init__(self) -> None:
        jobs, tasks = self.start.shape
        names = (
            "finished", "finish_time", "progress", "rate", "copies", "launched", "first_copy_at", "copy_start",
            "cancelled",
        )  # fmt: skip
        for name in names:
            if getattr(self, name) is not None and getattr(self, name).shape != (jobs, tasks):
                raise ValueError(f"TaskBatch.{name}: shape {getattr(self, name).shape}, expected {(jobs, tasks)}")
        for name in ("now", "slots"):
            if getattr(self, name).shape != (jobs,):
                raise ValueError(f"TaskBatch.{name}: shape {getattr(self, name).shape}, expected {(jobs,)}")

    @property
    def jobs(self) -> int:
        return int(self.start.shape[0])

    @property
    def tasks(self) -> int:
        return int(self.start.shape[1])

    @property
    def original_cancelled(self) -> Bools:
        """``(J, N)``: ``cancelled``, all False when the shell gave none."""
        if self.cancelled is None:
            return np.zeros(self.start.shape, dtype=np.bool_)
        return self.cancelled

    @property
    def running(self) -> Bools:
        """``(J, N)``: the task has not finished yet."""
        return ~self.finished

    @property
    def done(self) -> Ints:
        """``(J,)``: how many tasks of each job have finished."""
        done: Ints = self.finished.sum(axis=1, dtype=np.int64)
        return done

    @property
    def elapsed(self) -> Floats:
        """``(J, N)``: time since the original copy was launched (until now, for finished tasks too)."""
        return self.now[:, None] - self.start

    @property
    def copy_elapsed(self) -> Floats:
        """``(J, N)``: how long the most advanced live copy has run (NaN when unknown or finished)."""
        launch = self.start if self.copy_start is None else self.copy_start
        return np.where(self.running, self.now[:, None] - launch, np.nan)

    @property
    def task_time(self) -> Floats:
        """``(J, N)``: a finished task's time from its original's launch to its first finish (NaN while running)."""
        return self.finish_time - self.start

    @property
    def time_left(self) -> Floats:
        """``(J, N)``: LATE's estimate ``(1 - progress) / rate`` for running tasks; NaN when unknown or finished."""
        with np.errstate(divide="ignore", invalid="ignore"):
            left = (1.0 - self.progress) / self.rate
        return np.where(self.running & (self.rate > 0), left, np.nan)

    @classmethod
    def from_tasks(cls, now: float, tasks: Sequence[TaskState], slots: int | None = None) -> TaskBatch:
        """A batch of one job (what a live shell passes), from per-task facts."""
        if not tasks:
            raise ValueError("TaskBatch.from_tasks: a job needs at least one task")
        finished = np.array([[task.finished_at is not None for task in tasks]], dtype=np.bool_)
        progress = np.array([[_float(task.progress) for task in tasks]], dtype=np.float64)
        return cls(
            now=np.array([float(now)]),
            start=np.array([[float(task.start) for task in tasks]], dtype=np.float64),
            finished=finished,
            finish_time=np.array([[_float(task.finished_at) for task in tasks]], dtype=np.float64),
            progress=np.where(finished, 1.0, progress),
            rate=np.array([[_float(task.rate) for task in tasks]], dtype=np.float64),
            copies=np.where(finished, 0, np.array([[task.copies for task in tasks]], dtype=np.int64)),
            launched=np.array([[max(1, task.launched) for task in tasks]], dtype=np.int64),
            first_copy_at=np.array([[_float(task.first_copy_at) for task in tasks]], dtype=np.float64),
            slots=np.array([len(tasks) if slots is None else slots], dtype=np.int64),
            copy_start=np.array(
                [
                    [
                        math.nan if done else _float(task.copy_start)
                        for task, done in zip(tasks, finished[0], strict=True)
                    ]
                ],
                dtype=np.float64,
            ),
            cancelled=np.array([[task.cancelled for task in tasks]], dtype=np.bool_),
        )


@dataclass(frozen=True)
class Replicate:
    """One action for a live shell: launch ``copies`` new copies of task ``task`` now, killing its running copies
    first when ``kill_original``; the new copies resume from the task's checkpoint when ``resume``. With ``prune``,
    first cancel every live copy but the one that will finish first (``copies`` may then be 0)."""

    task: int
    copies: int
    kill_original: bool = False
    resume: bool = False
    prune: bool = False


@dataclass(frozen=True, eq=False)
class Decision:
    """A policy's answer for a batch: ``copies``, ``kill_original`` (and optionally ``resume`` and ``prune``) of shape
    ``(J, N)``, ``wake_at`` of ``(J,)``."""

    copies: Ints
    kill_original: Bools
    wake_at: Floats
    resume: Bools | None = None
    prune: Bools | None = None

    @property
    def resumes(self) -> Bools:
        """``resume``, all False when the policy gave none."""
        if self.resume is None:
            return np.zeros(self.copies.shape, dtype=np.bool_)
        return self.resume

    @property
    def prunes(self) -> Bools:
        """``prune``, all False when the policy gave none."""
        if self.prune is None:
            return np.zeros(self.copies.shape, dtype=np.bool_)
        return self.prune

    @classmethod
    def nothing(cls, batch: TaskBatch) -> Decision:
        """No copies, no kills, no wake-up: wait for the next completion."""
        return cls(
            copies=np.zeros((batch.jobs, batch.tasks), dtype=np.int64),
            kill_original=np.zeros((batch.jobs, batch.tasks), dtype=np.bool_),
            wake_at=np.full(batch.jobs, np.inf),
        )

    def for_job(self, job: int = 0) -> tuple[Replicate, ...]:
        """Row ``job`` as actions, in task order (what a live shell with a batch of one carries out)."""
        resume, prune = self.resumes, self.prunes
        return tuple(
            Replicate(
                task=int(task),
                copies=int(self.copies[job, task]),
                kill_original=bool(self.kill_original[job, task]),
                resume=bool(resume[job, task]),
                prune=bool(prune[job, task]),
            )
            for task in np.flatnonzero((self.copies[job] > 0) | prune[job])
        )


class StragglerPolicy(abc.ABC):
    """The base class of straggler policies (one module each; :func:`kubetune.core.stragglers.build_policy` builds
    one by name). Subclasses set ``name`` and implement :meth:`decide`, vectorised over the batch's jobs."""

    name: ClassVar[str]

    @abc.abstractmethod
    def decide(self, batch: TaskBatch) -> Decision:
        """What to launch (and kill) now in each job of ``batch``, and when to be asked next."""

    def options(self) -> Mapping[str, Any]:
        """The policy's options (spec spelling), for display and logs."""
        return {}

    def describe(self) -> str:
        """A one-line description: the name and the options."""
        options = ", ".join(f"{key}={value}" for key, value in self.options().items())
        return f"{self.name}({options})" if options else self.name

    def __repr__(self) -> str:
        return self.describe()


def check_number(
    option: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> float:
    """``value`` as a number within bounds, else a ValueError naming ``stragglers.<option>``."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"stragglers.{option}: must be {kind}, got {value!r}")
    number = float(value)
    if math.isnan(number) or (integer and number != int(number)):
        raise ValueError(f"stragglers.{option}: must be {kind}, got {value!r}")
    if low is not None and (number <= low if low_open else number < low):
        raise ValueError(f"stragglers.{option}: must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and number > high:
        raise ValueError(f"stragglers.{option}: must be <= {high:g}, got {value!r}")
    return number
