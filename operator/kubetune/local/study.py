"""The local shell of a study: runs a tuning TrainingJob's trials on this machine, each as a local child run.

Decides: nothing about the study's policy (that is :func:`kubetune.core.study.plan_study`) and nothing about a
trial's gang (each trial is a :class:`~kubetune.local.runner.LocalRunner` driving :func:`kubetune.core.plan`); only
how the plan's actions become local runs and how local runs become observations. Trials run in parallel up to
``parallelTrials`` and the machine's cores, each with its share of the cores as its thread count
(``OMP_NUM_THREADS``), because BLAS threads oversubscribing a small machine slow every trial down several times.

Layout (``./kubetune-runs/<study>/``): ``state.json`` (the study's status), ``study.journal`` (the Optuna storage,
unless ``spec.tuning.storage.url`` names another), ``best-trainingjob.yaml`` at the end, and ``trials/<study>-t<n>/``,
each a child run directory. Killing the runner and running the same command again resumes the study: the storage
says which trials are finished, running trials resume from their checkpoints, no trial number is reused.

Imports optuna through :mod:`kubetune.tuning`; no kopf or kubernetes; mlflow only through :mod:`kubetune.tracking`
and :mod:`kubetune.tuning.report`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubetune import tracking
from kubetune.api import SpecError, TrainingJob, parse
from kubetune.core import STOP_ANNOTATION
from kubetune.core.study import (
    AskTrial,
    ChildRun,
    StartTrial,
    StopTrial,
    StudyEvent,
    StudyPlan,
    TellTrial,
    plan_study,
)
from kubetune.local.runner import (
    STATE_FILE,
    LocalRunner,
    RunOptions,
    _sigterm_as_interrupt,
    load_status,
    save_status,
)
from kubetune.tuning.controller import StudyController, TrialRow
from kubetune.tuning.pruners import build_pruner
from kubetune.tuning.report import BEST_FILE, best_yaml, log_study
from kubetune.tuning.samplers import build_sampler
from kubetune.tuning.space import child_manifest
from kubetune.tuning.storage import journal_url

logger = logging.getLogger(__name__)
JOURNAL_FILE = "study.journal"


def _advance(copy: ChildRun) -> float:
    return copy.epoch if copy.epoch is not None else -1.0


def slots_for(job: TrainingJob, cores: int | None = None) -> int:
    """How many trials this machine runs at once: ``parallelTrials``, capped by cores per trial's workers."""
    assert job.spec.tuning is not None
    cores = cores or os.cpu_count() or 1
    return max(1, min(job.spec.tuning.parallel_trials, cores // job.spec.parallelism.workers))


def warm_processes(job: TrainingJob, cores: int | None = None) -> tuple[int, int]:
    """How many warm trainer processes a local study keeps waiting, and how many of them start at once: one per worker
    of every slot (the first trials', started together), and, under a straggler policy, as many more per slot as
    copies the policy may start for one trial at once (a move's new copy, a hedged launch's racers, a fork's
    replicas), so that a burst of copies starts from warm processes instead of loading torch together on a small
    machine (several CPU-seconds each: on 2 cores, six copies starting cold delayed every trial starting beside them
    by 10 to 30 s). Each waiting process holds about 0.4 GB; ``kubetune run --warm N`` overrides the count."""
    first = slots_for(job, cores) * job.spec.parallelism.workers
    return first * (1 + _copies_at_once(job)), first


def _copies_at_once(job: TrainingJob) -> int:
    stragglers = job.spec.resilience.stragglers
    if stragglers.policy == "none":
        return 0
    if stragglers.policy == "migrate":
        return stragglers.hedge
    if stragglers.policy in ("singleFork", "timeout"):
        return stragglers.replicas
    return 1  # spark and late copy a trial once at a time; adaptive's copies are capped by maxCopiesFraction


def check_options(job: TrainingJob) -> None:
    """Build the study's sampler and pruner once, so that bad options fail before anything starts (ValueError)."""
    build_sampler(job)
    build_pruner(job)


class LocalStudyRunner:
    """Drives one study to its end with local child runs."""

    def __init__(
        self,
        job: TrainingJob,
        options: RunOptions | None = None,
        *,
        on_event: Callable[[StudyEvent], None] | None = None,
        on_tick: Callable[[dict[str, Any], list[TrialRow]], None] | None = None,
        cores: int | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if job.spec.tuning is None:
            raise ValueError(f"TrainingJob {job.name} has no spec.tuning")
        self.job = job
        self.options = options or RunOptions()
        self.run_dir = (self.options.workdir or Path.cwd() / "kubetune-runs") / job.name
        self.on_event = on_event or (lambda event: None)
        self.on_tick = on_tick or (lambda status, rows: None)
        self.clock = clock
        self.slots = slots_for(job, cores)
        cores = cores or os.cpu_count() or 1
        self.child_threads = max(1, cores // (self.slots * job.spec.parallelism.workers))
        # Every copy of every trial by name (the original <study>-t<n> and replicas <study>-t<n>r<r>), with its
        # trial number; a copy stays until its run is over, even after its trial was told.
        self.runs: dict[str, tuple[int, LocalRunner]] = {}
        self.invalid: dict[int, ChildRun] = {}  # trials whose values make an invalid TrainingJob
        self.status: dict[str, Any] = {}
        self.told: set[int] = set()
        self.controller: StudyController | None = None
        self._started = time.monotonic()

    # --- state ------------------------------------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.run_dir / STATE_FILE

    def _load_state(self) -> dict[str, Any]:
        return load_status(self.state_path)

    def _save_state(self) -> None:
        save_status(self.state_path, self.status)

    def storage_url(self) -> str:
        assert self.job.spec.tuning is not None
        return self.job.spec.tuning.storage.url or journal_url(self.run_dir / JOURNAL_FILE)

    def begin(self) -> None:
        """Resume the study in the run directory, or start it (a finished or ``--fresh`` one starts afresh)."""
        self._started = time.monotonic()
        previous = {} if self.options.fresh else self._load_state()
        if previous.get("phase") in ("Succeeded", "Failed") or self.options.fresh or not previous:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            previous = {}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.status = previous
        if self.options.fresh and self.job.spec.tuning and self.job.spec.tuning.storage.url:
            logger.warning("--fresh does not empty the external storage %s", self.job.spec.tuning.storage.url)
        self.controller = StudyController(self.job, self.storage_url())
        self.status["study"] = {"name": self.controller.name, "storage": self.controller.storage_shown}
        if self.job.spec.tracking.enabled and tracking.RunRef.from_dict(self.status.get("mlflow")) is None:
            uri = self.options.tracking_uri or self.job.spec.tracking.tracking_uri or tracking.default_tracking_uri()
            self.options = dataclasses.replace(self.options, tracking_uri=uri)
            self.status["mlflow"] = tracking.start_run(
                self.job, uri, tags={"kubetune.study": self.controller.name}
            ).to_dict()
        ref = tracking.RunRef.from_dict(self.status.get("mlflow"))
        if ref is not None:
            self.options = dataclasses.replace(self.options, tracking_uri=ref.tracking_uri)
        self._save_state()

    # --- children ---------------------------------------------------------------------------------------------------

    def _child_options(self) -> RunOptions:
        return dataclasses.replace(
            self.options,
            workdir=self.run_dir / "trials",
            fresh=False,
            threads=self.child_threads,
            adopt_finished=True,
        )

    def _start(self, action: StartTrial) -> None:
        if action.name in self.runs or action.number in self.invalid:
            return  # create-if-absent
        ref = tracking.RunRef.from_dict(self.status.get("mlflow"))
        manifest = child_manifest(
            self.job,
            action.number,
            action.params,
            parent_run_id=ref.run_id if ref else None,
            replica=action.replica,
            resume_from=action.resume_from,
        )
        try:
            child_job = parse(manifest)
        except SpecError as error:
            self.invalid[action.number] = ChildRun(action.name, "Failed", "InvalidSpec", f"invalid trial: {error}")
            return
        assert self.controller is not None
        if action.replica == 0:
            self.controller.set_child(action.number, action.name)
        runner = LocalRunner(child_job, self._child_options())
        runner.begin()
        self.runs[action.name] = (action.number, runner)

    def _stop(self, action: StopTrial) -> None:
        entry = self.runs.get(action.name)
        if entry is not None:
            runner = entry[1]
            runner.job = dataclasses.replace(
                runner.job, annotations={**runner.job.annotations, STOP_ANNOTATION: action.reason}
            )

    def _copies(self) -> tuple[dict[int, ChildRun], dict[int, tuple[ChildRun, ...]]]:
        """Each trial's original run and its replicas, as observed now."""
        children: dict[int, ChildRun] = dict(self.invalid)
        replicas: dict[int, list[ChildRun]] = {}
        for name, (number, runner) in self.runs.items():
            copy = ChildRun.from_status(name, runner.status, runner.job.annotations)
            if copy.replica == 0:
                children[number] = copy
            else:
                replicas.setdefault(number, []).append(copy)
        return children, {n: tuple(sorted(c, key=lambda r: r.replica)) for n, c in replicas.items()}

    def _tell(self, action: TellTrial) -> None:
        assert self.controller is not None
        self.controller.tell(action)
        self.told.add(action.number)
        self.invalid.pop(action.number, None)

    def _reap(self) -> None:
        """Close the runs that are over: a told trial's copies once they have stopped."""
        for name, (number, runner) in list(self.runs.items()):
            over = runner.status.get("phase") in ("Succeeded", "Failed", "Stopped") and not runner._any_alive()
            if number in self.told and over:
                runner.finish()
                del self.runs[name]

    # --- the loop ---------------------------------------------------------------------------------------------------

    def step(self) -> StudyPlan:
        """Tick every child, then observe, plan and act for the study once."""
        assert self.controller is not None
        if self.options.pool is not None:
            self.options.pool.fill()
        for _, runner in list(self.runs.values()):
            runner.tick()
        children, replicas = self._copies()
        # The pruner reads the most advanced live copy of each trial.
        leads = {
            number: max((c for c in (child, *replicas.get(number, ())) if not c.finished), key=_advance, default=child)
            for number, child in children.items()
        }
        observed = self.controller.observe(leads, self.status, self.slots)
        observed = dataclasses.replace(observed, children=children, replicas=replicas)
        decided = plan_study(self.job, observed, self.clock())
        for event in decided.events:
            self.on_event(event)
        asked = False
        for action in decided.actions:
            if isinstance(action, AskTrial):
                self.controller.ask()
                asked = True
            elif isinstance(action, StartTrial):
                self._start(action)
            elif isinstance(action, StopTrial):
                self._stop(action)
            else:
                self._tell(action)
        new_status = {**decided.status, "study": self.status.get("study")}
        if new_status != self.status:
            self.status = new_status
            self._save_state()
        self._reap()
        if asked:
            return self.step()  # the new trials get their children now, by the same rule as after a restart
        return decided

    def run(self) -> dict[str, Any]:
        """Run the study to its end; Ctrl-C stops every trial (they checkpoint) and keeps the study resumable."""
        self.begin()
        try:
            with _sigterm_as_interrupt():
                while True:
                    decided = self.step()
                    assert self.controller is not None
                    self.on_tick(self.status, self.controller.rows())
                    if decided.terminal and not self.runs:
                        break
                    time.sleep(self.options.poll_interval)
        except KeyboardInterrupt:
            self.shutdown()
            raise
        return self.finish()

    def shutdown(self) -> None:
        for _, runner in self.runs.values():
            runner.shutdown()
            runner.finish()
        self._save_state()

    def finish(self) -> dict[str, Any]:
        assert self.controller is not None
        text = best_yaml(self.job, self.status)
        if text:
            (self.run_dir / BEST_FILE).write_text(text, encoding="utf-8")
        ref = tracking.RunRef.from_dict(self.status.get("mlflow"))
        if ref is not None:
            log_study(ref, self.job, self.controller, self.status)
            tracking.end_run(ref, self.status)
        return study_summary(
            self.job, self.status, self.controller.rows(), time.monotonic() - self._started, self.run_dir
        )


def study_summary(
    job: TrainingJob, status: dict[str, Any], rows: list[TrialRow], duration_s: float, run_dir: Path
) -> dict[str, Any]:
    """The one JSON object ``kubetune run --output json`` prints for a study: a run's summary plus the trials."""
    from kubetune.local.runner import summary

    out = summary(job, status, duration_s, run_dir)
    best = status.get("best")
    out["metrics"] = {job.spec.tuning.objectives[0].metric: best["value"]} if best and job.spec.tuning else {}
    out["trials"] = [row.to_dict() for row in rows]
    out["trial_counts"] = dict(status.get("trials") or {})
    out["best"] = {"number": best["number"], "params": best["params"], "value": best["value"]} if best else None
    if status.get("paretoFront"):
        out["pareto_front"] = [
            {"number": t["number"], "params": t["params"], "values": t.get("values")} for t in status["paretoFront"]
        ]
    out["study"] = status.get("study")
    best_file = run_dir / BEST_FILE
    out["best_trainingjob"] = str(best_file) if best_file.exists() else None
    return out
