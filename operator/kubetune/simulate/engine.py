"""The vectorised discrete-event engine of ``kubetune simulate``: many jobs of n i.i.d. tasks, all at once.

Decides how a straggler policy plays out on synthetic jobs. Every job has ``n`` tasks (originals) with durations
drawn i.i.d. from the distribution, and ``S`` slots (``1 <= S <= n``; ``S = n`` by default): the first ``S`` tasks
start at time 0 and the others wait in a queue, in order (FIFO), each starting the moment a slot frees; a task's slot
frees when its first copy finishes. Replicas run on extra machines: they take no slot. Each job has its own clock; at
every step of the loop, every unfinished job advances to its own next event: the first end among its running copies,
or the time its policy asked to be woken at (``Decision.wake_at``). Tasks whose first copy ends then finish; the job
ends when its last task finishes (its latency ``T``). The policy (the same object a live shell uses) is then called
with all unfinished jobs as one :class:`~kubetune.core.stragglers.TaskBatch` (and once at time 0), and its decision
is carried out: kill a task's running copies if asked, then launch the new copies, each with a fresh i.i.d. duration
from its launch.

What the policy sees with a queue (``S < n``), as the live study controller (:mod:`kubetune.core.study`) presents a
study: only the tasks started so far are in the batch (the controller's batch holds the trials asked so far, and a
trial is asked only for a free slot), so ``batch.tasks`` is the job's started count ``k`` (the first ``k`` tasks, by
FIFO), and ``batch.slots`` is ``S``. Jobs of one batch must have the same ``k``: the engine calls the policy once per
distinct ``k`` among the jobs being decided (with ``S = n`` that is one call, as before; a policy that pools
its batch's jobs, as ``adaptive``'s tail fit does, pools the jobs of one call). At an event where slots
free and queued tasks start, the policy is asked twice at the same instant, as the controller does (it plans with
the finished trial told but before the new trial exists, then re-plans at once with the new trial started): first
on the tasks started before the event, then, for the jobs that started tasks, again with them included.

Cost ``C`` is the machine time of every copy from its launch until it finishes or is cancelled: a task's copies are
all cancelled when its first copy finishes, and a killed copy costs nothing after the kill. As copies of a task only
ever stop all together, the engine keeps per task only the earliest end among its live copies, that copy's launch,
the live copy count and the sum of their launch times: a finish (or kill) at time t costs
``count * t - sum(launch)``.

Progress as policies see it: a copy first spends the distribution's start-up (``shiftedexp``/``shiftedpareto``:
SHIFT; none for the others) making no progress, as a worker process or pod starting does, then advances linearly
through its work: the progress and the rate the batch shows are those of the task's most advanced live copy (the
one that ends first), exact (oracle) estimates from the moment its start-up ends (LATE's ``(1 - progress) / rate``
is then the copy's true time left), unknown (NaN) before; without start-up a copy's progress is known from its launch.

Resumed copies (``Decision.resume``): a new copy that resumes a task starts from the task's progress ``p`` at its
launch (the most advanced live copy's, as a checkpoint written at that moment would hold) and its duration is
``startup + (1 - p) * (X - startup)`` for a fresh draw ``X``: the start-up is paid again, only the work left is done,
at the new copy's own speed. With ``kill_original`` that is a move of the task to another machine.
The no-replication baseline is computed from the same original draws (common random numbers): its cost is their
sum, its latency their maximum (``S = n``) or the makespan of FIFO list scheduling on ``S`` slots (each task starts on
the slot that frees first); copies draw from a separate stream, so the baseline does not depend on the policy. Jobs
run in chunks (a fixed size), each seeded from ``SeedSequence(seed)``: the same seed gives the same numbers, and
``S`` does not change the draws.

May import numpy and kubetune.core; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kubetune.core.stragglers import StragglerPolicy, TaskBatch
from kubetune.core.stragglers.makespan import list_schedule
from kubetune.simulate.distributions import Distribution

Floats = NDArray[np.float64]

# Jobs x tasks per chunk: bounds memory (a dozen float arrays of this many entries) and keeps numpy calls large.
CHUNK_ENTRIES = 4_000_000


class SimulationError(RuntimeError):
    """The simulation cannot go on: a policy asked for something impossible, or a task never ends."""


@dataclass(frozen=True, eq=False)
class JobOutcomes:
    """Per job: latency and cost under the policy, and without replication from the same draws."""

    latency: Floats
    cost: Floats
    baseline_latency: Floats
    baseline_cost: Floats
    slots: int | None = None  # slots per job as simulated (``tasks``: every task starts at 0)

    @property
    def jobs(self) -> int:
        return int(self.latency.size)


class _Chunk:
    """The state of the unfinished jobs of one chunk, one row each (rows are dropped as jobs finish)."""

    def __init__(self, originals: Floats, slots: int, startup: float = 0.0, per_job: bool = False) -> None:
        jobs, tasks = originals.shape
        self.per_job = per_job
        self.tasks = tasks
        self.slots = slots
        self.queued = slots < tasks  # some tasks wait for a slot: the queue model is on
        self.row = np.arange(jobs)
        self.now = np.zeros(jobs)
        self.wake = np.full(jobs, np.inf)
        self.cost = np.zeros(jobs)
        self.start = np.zeros((jobs, tasks))
        self.next_end = originals.astype(np.float64)  # earliest end among the task's live copies (inf once finished)
        self.best_launch = np.zeros((jobs, tasks))  # launch time of that copy
        self.alive = np.ones((jobs, tasks), dtype=np.int64)  # live copies
        self.launch_sum = np.zeros((jobs, tasks))  # sum of the live copies' launch times
        self.finished = np.zeros((jobs, tasks), dtype=np.bool_)
        self.finish_time = np.full((jobs, tasks), np.nan)
        self.launched = np.ones((jobs, tasks), dtype=np.int64)
        self.first_copy_at = np.full((jobs, tasks), np.nan)
        self.base = np.zeros((jobs, tasks))  # progress the best copy started from (> 0 when it resumed the task)
        self.cancelled = np.zeros((jobs, tasks), dtype=np.bool_)  # the policy killed the task's original copy
        self.startup = startup
        self._rows: tuple[str, ...] = self._ROW_ARRAYS
        if self.queued:
            # Tasks S.. wait: nothing of theirs runs yet (no copy, no cost); they start in order as slots free.
            self.originals = originals
            self.started = np.full(jobs, slots, dtype=np.int64)  # tasks started so far: always a prefix (FIFO)
            self.next_end[:, slots:] = np.inf
            self.alive[:, slots:] = 0
            self.start[:, slots:] = np.nan
            self._rows = (*self._ROW_ARRAYS, "originals", "started")

    _ROW_ARRAYS = (
        "row", "now", "wake", "cost", "start", "next_end", "best_launch", "alive", "launch_sum", "finished",
        "finish_time", "launched", "first_copy_at", "base", "cancelled",
    )  # fmt: skip

    _TASK_ARRAYS = (
        "start", "next_end", "best_launch", "finished", "finish_time", "alive", "launched", "first_copy_at", "base",
        "cancelled",
    )  # fmt: skip

    def keep(self, rows: NDArray[np.bool_]) -> None:
        for name in self._rows:
            setattr(self, name, getattr(self, name)[rows])

    def batch(self, rows: NDArray[np.int64] | None = None, tasks: int | None = None) -> TaskBatch:
        """Every job's tasks, or (with a queue) jobs ``rows``' first ``tasks`` tasks: those started so far."""
        if rows is None:
            now, start, next_end, best_launch = self.now, self.start, self.next_end, self.best_launch
            finished, finish_time, alive = self.finished, self.finish_time, self.alive
            launched, first_copy_at, base, cancelled = self.launched, self.first_copy_at, self.base, self.cancelled
        else:
            now = self.now[rows]
            taken = [getattr(self, name)[rows, :tasks] for name in self._TASK_ARRAYS]
            start, next_end, best_launch, finished, finish_time, alive, launched, first_copy_at, base, cancelled = taken
        progress, rate = self.progress(now, next_end, best_launch, base)
        if self.startup > 0:  # unknown until the copy's start-up is over
            starting = np.subtract(now[:, None], best_launch) < self.startup
            np.copyto(progress, np.nan, where=starting)
            np.copyto(rate, np.nan, where=starting)
        np.copyto(progress, 1.0, where=finished)
        np.copyto(rate, np.nan, where=finished)
        return TaskBatch(
            now=now,
            start=start,
            finished=finished,
            finish_time=finish_time,
            progress=progress,
            rate=rate,
            copies=alive,
            launched=launched,
            first_copy_at=first_copy_at,
            slots=np.full(now.size, self.slots, dtype=np.int64),
            copy_start=np.where(finished, np.nan, best_launch),
            cancelled=cancelled,
        )

    def progress(self, now: Floats, next_end: Floats, best_launch: Floats, base: Floats) -> tuple[Floats, Floats]:
        """The best copy's true progress (0..1) and rate (fractions per time unit) at ``now``: ``base`` until its
        start-up is over, then linear to 1 at its end (finished tasks: inf end, rate NaN)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.divide(1.0 - base, next_end - best_launch - self.startup)
        worked = np.maximum(np.subtract(now[:, None], best_launch) - self.startup, 0.0)
        progress = np.minimum(base + worked * rate, 1.0)
        return progress, rate

    def decide(self, policy: StragglerPolicy, rows: NDArray[np.bool_] | None) -> tuple[NDArray[Any], ...]:
        """The policy's copies, kills, resumes and wake-ups for every job (``rows``: only those jobs are asked; the
        others launch nothing and keep their wake-up), one policy call per distinct count of started tasks, or, with
        ``per_job``, one per job."""
        if not self.queued and not self.per_job:
            decision = policy.decide(self.batch())
            return decision.copies, decision.kill_original, decision.resumes, decision.prunes, decision.wake_at
        copies = np.zeros(self.next_end.shape, dtype=np.int64)
        kill = np.zeros(self.next_end.shape, dtype=np.bool_)
        resume = np.zeros(self.next_end.shape, dtype=np.bool_)
        prune = np.zeros(self.next_end.shape, dtype=np.bool_)
        wake = self.wake.copy()
        asked = np.ones(self.row.size, dtype=np.bool_) if rows is None else rows
        started = self.started if self.queued else np.full(self.row.size, self.tasks, dtype=np.int64)
        if self.per_job:
            groups = [np.array([row]) for row in np.flatnonzero(asked)]
        else:
            groups = [np.flatnonzero(asked & (started == count)) for count in np.unique(started[asked])]
        for group in groups:
            tasks = int(started[group[0]])
            decision = policy.decide(self.batch(group, tasks))
            copies[group, :tasks] = decision.copies
            kill[group, :tasks] = decision.kill_original
            resume[group, :tasks] = decision.resumes
            prune[group, :tasks] = decision.prunes
            wake[group] = decision.wake_at
        return copies, kill, resume, prune, wake

    def apply(
        self,
        policy: StragglerPolicy,
        dist: Distribution,
        rng: np.random.Generator,
        rows: NDArray[np.bool_] | None = None,
    ) -> None:
        decided_copies, decided_kill, decided_resume, decided_prune, decided_wake = self.decide(policy, rows)
        copies = np.where(self.finished, 0, np.asarray(decided_copies, dtype=np.int64))
        if (copies < 0).any():
            raise SimulationError(f"policy {policy.describe()} asked for a negative number of copies")
        kill = np.asarray(decided_kill, dtype=np.bool_) & ~self.finished
        if (kill & (copies == 0)).any():
            raise SimulationError(f"policy {policy.describe()} killed a task's copies without launching new ones")
        now = self.now[:, None]
        prune = np.asarray(decided_prune, dtype=np.bool_) & ~self.finished & (self.alive > 1)
        if prune.any():  # only the copy that ends first lives on: the others cost until now
            losers = self.alive * now - self.launch_sum - (now - self.best_launch)
            self.cost += losers.sum(axis=1, where=prune)
            np.copyto(self.alive, 1, where=prune)
            np.copyto(self.launch_sum, self.best_launch, where=prune)
        resume = np.asarray(decided_resume, dtype=np.bool_) & (copies > 0)
        if resume.any():  # the checkpoint's progress, taken before a kill ends the copy that made it
            progress, _ = self.progress(self.now, self.next_end, self.best_launch, self.base)
            resumed_at = np.where(resume & np.isfinite(progress), progress, 0.0)
        if kill.any():
            self.cancelled |= kill  # every live copy ends, the original among them if it was still running
            self.cost += (self.alive * now - self.launch_sum).sum(axis=1, where=kill)
            np.copyto(self.alive, 0, where=kill)
            np.copyto(self.launch_sum, 0.0, where=kill)
            np.copyto(self.next_end, np.inf, where=kill)
        launching = copies > 0
        if launching.any():
            counts = copies[launching]
            draws = dist.sample(rng, int(counts.sum()))
            starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
            when = np.broadcast_to(now, launching.shape)[launching]
            duration = np.minimum.reduceat(draws, starts)
            base = resumed_at[launching] if resume.any() else np.zeros(duration.shape)
            duration = np.where(base > 0, self.startup + (1.0 - base) * (duration - self.startup), duration)
            end = when + duration
            previous = self.next_end[launching]
            better = end < previous
            self.next_end[launching] = np.where(better, end, previous)
            self.best_launch[launching] = np.where(better, when, self.best_launch[launching])
            self.base[launching] = np.where(better, base, self.base[launching])
            self.alive[launching] += counts
            self.launch_sum[launching] += counts * when
            self.first_copy_at = np.where(launching & np.isnan(self.first_copy_at), now, self.first_copy_at)
            self.launched += copies
        wake = np.asarray(decided_wake, dtype=np.float64)
        self.wake = np.where(wake > self.now, wake, np.inf)

    def advance(self) -> NDArray[np.bool_]:
        """Move every job to its next event and finish the tasks that end then; the jobs now complete."""
        self.now = np.minimum(self.next_end.min(axis=1), self.wake)
        if not np.isfinite(self.now).all():
            raise SimulationError("a task never ends (an infinite task time: is the distribution's tail too heavy?)")
        ending = self.next_end <= self.now[:, None]
        if ending.any():
            finish = np.where(ending, self.next_end, 0.0)  # 0 where not ending: no inf * 0
            self.cost += (self.alive * finish - self.launch_sum).sum(axis=1, where=ending)
            self.finish_time = np.where(ending, self.next_end, self.finish_time)
            self.finished |= ending
            np.copyto(self.next_end, np.inf, where=ending)
            np.copyto(self.alive, 0, where=ending)
            np.copyto(self.launch_sum, 0.0, where=ending)
        return np.asarray(self.finished.all(axis=1), dtype=np.bool_)

    def refill(self) -> NDArray[np.bool_]:
        """Start queued tasks, in order, on the slots free now (a slot frees when its task's first copy finishes);
        the jobs that started any."""
        busy = self.started - self.finished.sum(axis=1)
        fresh = np.minimum(self.slots - busy, self.tasks - self.started)
        starting: NDArray[np.bool_] = fresh > 0
        if not starting.any():
            return starting
        column = np.arange(self.tasks)
        new = (column >= self.started[:, None]) & (column < (self.started + fresh)[:, None])
        now = np.broadcast_to(self.now[:, None], new.shape)
        np.copyto(self.start, now, where=new)
        np.copyto(self.next_end, now + self.originals, where=new)
        np.copyto(self.best_launch, now, where=new)
        np.copyto(self.base, 0.0, where=new)
        np.copyto(self.launch_sum, now, where=new)
        np.copyto(self.alive, 1, where=new)
        self.started += np.maximum(fresh, 0)
        return starting


def _run_chunk(
    originals: Floats,
    policy: StragglerPolicy,
    dist: Distribution,
    rng: np.random.Generator,
    slots: int,
    per_job: bool = False,
) -> tuple[Floats, Floats]:
    jobs, tasks = originals.shape
    latency = np.empty(jobs)
    cost = np.empty(jobs)
    state = _Chunk(originals, slots, dist.startup, per_job)
    limit = 1000 * (tasks + 1)
    steps = 0
    state.apply(policy, dist, rng)
    while state.row.size:
        steps += 1
        if steps > limit:
            raise SimulationError(f"policy {policy.describe()} keeps the jobs from finishing ({limit} events)")
        complete = state.advance()
        if complete.any():
            latency[state.row[complete]] = state.now[complete]
            cost[state.row[complete]] = state.cost[complete]
            state.keep(~complete)
            if not state.row.size:
                break
        state.apply(policy, dist, rng)
        if state.queued:
            starting = state.refill()
            if starting.any():
                # Asked above with the tasks started before this event; asked again now with the new ones started.
                state.apply(policy, dist, rng, rows=starting)
    return latency, cost


def simulate(
    dist: Distribution,
    policy: StragglerPolicy,
    *,
    tasks: int,
    jobs: int,
    seed: int = 0,
    slots: int | None = None,
    chunk_entries: int = CHUNK_ENTRIES,
    per_job: bool = False,
) -> JobOutcomes:
    """Run ``jobs`` jobs of ``tasks`` i.i.d. tasks on ``slots`` slots each (default: one per task) under ``policy``,
    and the no-replication baseline, from ``seed``. ``per_job``: ask the policy about each job on its own (a batch of
    one, as a live shell does), not about all the jobs at a decision point together: the same decisions for a policy
    that decides each job from its own row, slower, but honest for one that pools its batch (``adaptive``'s fit)."""
    if tasks < 1:
        raise ValueError(f"--tasks: must be >= 1, got {tasks}")
    if jobs < 1:
        raise ValueError(f"--jobs: must be >= 1, got {jobs}")
    if slots is not None and slots < 1:
        raise ValueError(f"--slots: must be >= 1, got {slots}")
    slots = tasks if slots is None else min(slots, tasks)
    per_chunk = max(1, chunk_entries // tasks)
    chunks = -(-jobs // per_chunk)
    streams = np.random.SeedSequence(seed).spawn(chunks)
    parts: list[tuple[Floats, Floats, Floats, Floats]] = []
    for index, stream in enumerate(streams):
        size = min(per_chunk, jobs - index * per_chunk)
        originals_stream, copies_stream = stream.spawn(2)
        originals = dist.sample(np.random.default_rng(originals_stream), (size, tasks))
        latency, cost = _run_chunk(originals, policy, dist, np.random.default_rng(copies_stream), slots, per_job)
        parts.append((latency, cost, list_schedule(originals, slots), originals.sum(axis=1)))
    latency, cost, base_latency, base_cost = (np.concatenate(column) for column in zip(*parts, strict=True))
    return JobOutcomes(latency=latency, cost=cost, baseline_latency=base_latency, baseline_cost=base_cost, slots=slots)
