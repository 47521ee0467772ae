"""How many training epochs does a study spend to find a good model? (goal: TPE + Hyperband <= 0.3x random search)

Four strategies run the study of ``examples/digits-tune.yaml`` (a CNN on scikit-learn's digits; learning rate,
batch size, momentum, depth and width) with the same trial budget, epochs per trial and parallelism, on several
seeds: ``random`` sampler without pruning, ``tpe`` without pruning, ``tpe`` + ``hyperband``, and ``tpe`` +
``successiveHalving`` (Hyperband's building block, one bracket: every trial meets the first rung; TPE learns from
every trial under both). For each seed the target is random search's final
best objective value (``--objective``: ``val_accuracy``, the example's, or ``val_loss``, minimised) on that seed; a
strategy's cost is the number of epochs trained (by every trial, pruned ones included) until its first completed
trial is at least as good as the target (accuracy on 270 validation samples moves in steps of 1/270, so ties
count). A strategy that never reaches it is charged every epoch it trained and marked. The table gives the mean
over seeds and the ratio to random search. Beside it, the view HPO papers read their speed-ups from (Hyperband,
BOHB): the curve of the mean over seeds of the best completed value so far against epochs, and the epochs at which
each strategy's curve first reaches random search's mean final best. And it counts the seeds on which random
search's target came from a trial of TPE's random start: TPE draws its first ``n_startup_trials`` trials from a
random sampler with the same seed, so those trials are the same in every strategy, and on such a seed no pruner can
reach the target much sooner than random search.

Decides: the workload and how a study is driven without processes. The study is kubetune's own: the TrainingJob is
parsed by :func:`kubetune.api.parse`, every decision is :func:`kubetune.core.study.plan_study`'s, and Optuna is
driven by :class:`kubetune.tuning.controller.StudyController` (samplers and pruners from kubetune's tables, one
journal storage per strategy and seed in a temporary directory). Only the children are in-process: each trial's
child manifest goes through ``child_manifest`` -> ``parse`` -> ``worker_env`` -> ``TrainerConfig.from_env`` into
the real :class:`kubetune_trainer.train.Trainer` (one thread, CPU), which trains one epoch per tick of the loop;
the epoch's metrics reach the controller as ``ChildRun(epoch=..., epoch_metrics=...)``, so reporting and pruning
happen exactly as in production, and a ``StopTrial`` ends the child before its next epoch. Every run is
deterministic given its seed (the seed is the sampler's and the trainer's: data split, initial weights, batches).

    python benchmarks/hpo_efficiency.py                  # the default: 20 trials x 12 epochs, 2 at a time, 8 seeds
    python benchmarks/hpo_efficiency.py --output json
    python benchmarks/hpo_efficiency.py --quick          # tiny (the smoke test's)
    python benchmarks/hpo_efficiency.py --trials 40 --seeds 6 --space wide   # a wider search, more trials
    python benchmarks/hpo_efficiency.py --strategies tpe+hyperband --min-resource 1   # random + one variant
    python benchmarks/hpo_efficiency.py --tpe-options '{"n_ei_candidates": 48}'   # more TPESampler options (JSON)

``--space wide`` replaces the example's search space (already narrowed to good values: random search reaches the
validation ceiling within about a dozen trials) by the wide ranges a user starts from (``WIDE_SPACE``).

The exit status is 0 even when the goal is missed: this is a measurement; the table says whether it was met.

Must not import: kopf, kubernetes or mlflow (no cluster, no tracking: the study and its trials run in this process).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
import yaml
from kubetune.api import SpecError, TrainingJob, parse
from kubetune.core.study import AskTrial, ChildRun, StartTrial, StopTrial, StudyPlan, TellTrial, plan_study
from kubetune.core.workerenv import Placement, worker_env
from kubetune.tuning.controller import StudyController
from kubetune.tuning.space import child_manifest
from kubetune.tuning.storage import journal_url
from kubetune_trainer.config import ConfigError, TrainerConfig
from kubetune_trainer.data import Splits, load_dataset
from kubetune_trainer.train import Diverged, Trainer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits-tune.yaml"
OBJECTIVES = {"val_accuracy": "maximize", "val_loss": "minimize"}  # what a study may optimise here, and which way
GOAL_STRATEGY = "tpe+hyperband"
GOAL_RATIO = 0.3


@dataclass(frozen=True)
class Strategy:
    name: str
    sampler: str
    pruner: str


STRATEGIES = (
    Strategy("random", "random", "none"),
    Strategy("tpe", "tpe", "none"),
    Strategy("tpe+hyperband", "tpe", "hyperband"),
    # Hyperband's building block, one bracket: every trial meets the first rung at min_resource (Hyperband sends some
    # trials to brackets whose first rung comes later, and prunes each bracket against its own trials only).
    Strategy("tpe+successiveHalving", "tpe", "successiveHalving"),
)
BASELINE = STRATEGIES[0].name


# The ranges a user starts from, before narrowing: learning rates that barely move or overshoot, no momentum to
# nearly 1, tiny to large batches and models.
WIDE_SPACE: tuple[dict[str, Any], ...] = (
    {"name": "learningRate", "type": "float", "min": 0.0001, "max": 1.0, "log": True},
    {"name": "batchSize", "type": "categorical", "choices": [16, 32, 64, 128, 256]},
    {"name": "momentum", "type": "float", "min": 0.0, "max": 0.99},
    {"name": "model.depth", "type": "int", "min": 1, "max": 4},
    {"name": "model.width", "type": "categorical", "choices": [4, 8, 16, 32, 64]},
)


@dataclass(frozen=True)
class Settings:
    trials: int = 20
    epochs: int = 12
    parallel: int = 2
    seeds: tuple[int, ...] = tuple(range(8))
    jobs: int = 1
    min_resource: int | None = None  # Hyperband's; default max(1, epochs // 6): 2 for 12 epochs, as in the example
    reduction_factor: int = 3
    space: str = "example"  # or "wide": WIDE_SPACE
    objective: str = "val_accuracy"  # or "val_loss" (minimised)
    startup_trials: int | None = None  # TPE's n_startup_trials; default the example's 6 (fewer for tiny budgets)
    tpe_extra: tuple[tuple[str, Any], ...] = ()  # more TPESampler options (--tpe-options), e.g. multivariate
    strategies: tuple[str, ...] = tuple(s.name for s in STRATEGIES)  # which run; random search always does

    @property
    def tpe_options(self) -> dict[str, Any]:
        return {"n_startup_trials": self.n_startup_trials, **dict(self.tpe_extra)}

    @property
    def chosen(self) -> tuple[Strategy, ...]:
        return tuple(s for s in STRATEGIES if s.name in (BASELINE, GOAL_STRATEGY) or s.name in self.strategies)

    @property
    def n_startup_trials(self) -> int:
        """TPE's random start: the example's 6, fewer for a tiny budget, unless set."""
        return self.startup_trials if self.startup_trials is not None else min(6, max(1, self.trials // 3))

    @property
    def maximize(self) -> bool:
        return OBJECTIVES[self.objective] == "maximize"

    @property
    def successive_halving(self) -> dict[str, int]:
        return {"min_resource": self.hyperband["min_resource"], "reduction_factor": self.reduction_factor}

    def pruner_options(self, pruner: str) -> dict[str, int]:
        return {"hyperband": self.hyperband, "successiveHalving": self.successive_halving}.get(pruner, {})

    @property
    def hyperband(self) -> dict[str, int]:
        min_resource = self.min_resource if self.min_resource is not None else max(1, self.epochs // 6)
        return {"min_resource": min_resource, "max_resource": self.epochs, "reduction_factor": self.reduction_factor}


QUICK = Settings(trials=4, epochs=3, parallel=2, seeds=(0, 1))


# --- the study ----------------------------------------------------------------------------------------------------


def study_manifest(settings: Settings, strategy: Strategy, seed: int) -> dict[str, Any]:
    """The example's TrainingJob with this run's budget, seed, sampler and pruner (the search space untouched)."""
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    spec = doc["spec"]
    spec["hyperparameters"]["epochs"] = settings.epochs
    spec["hyperparameters"]["seed"] = seed
    tuning = spec["tuning"]
    options: dict[str, Any] = settings.tpe_options if strategy.sampler == "tpe" else {}
    tuning["sampler"] = {"name": strategy.sampler, "seed": seed, "options": options}
    tuning["pruner"] = {"name": strategy.pruner, "options": settings.pruner_options(strategy.pruner)}
    tuning["objective"] = {"metric": settings.objective, "direction": OBJECTIVES[settings.objective]}
    tuning["maxTrials"] = settings.trials
    tuning["parallelTrials"] = settings.parallel
    if settings.space == "wide":
        tuning["parameters"] = [dict(parameter) for parameter in WIDE_SPACE]
    return doc


@cache
def _splits(dataset: str, family: str, seed: int) -> Splits:
    return load_dataset(dataset, family, seed)


class InProcessChild:
    """One trial's child run: the real trainer, one epoch per :meth:`tick`, observed as a :class:`ChildRun`."""

    def __init__(self, job: TrainingJob, number: int, name: str, params: Mapping[str, Any]) -> None:
        self.name = name
        self.phase = "Running"
        self.reason: str | None = None
        self.message = ""
        self.stop_requested: str | None = None
        self.final_metrics: dict[str, float] = {}
        self.epoch_metrics: dict[str, float] = {}
        self.epochs = 0
        self.seconds = 0.0
        self.trainer: Trainer | None = None
        started = time.perf_counter()
        try:
            child = parse(child_manifest(job, number, params))
            placement = Placement("127.0.0.1", 29500, checkpoint_dir="", progress="none", threads=1)
            config = TrainerConfig.from_env(worker_env(child, 0, 0, placement))
            splits = _splits(config.dataset, config.model_family, config.seed)
            self.trainer = Trainer(config, splits=splits)
        except (SpecError, ConfigError) as error:
            self._end("Failed", "InvalidSpec" if isinstance(error, SpecError) else "InvalidConfig", str(error))
        self.seconds += time.perf_counter() - started

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed", "Stopped")

    def _end(self, phase: str, reason: str | None, message: str = "") -> None:
        self.phase, self.reason, self.message = phase, reason, message
        if self.trainer is not None:
            self.trainer.close("FINISHED" if phase == "Succeeded" else "KILLED")
            self.trainer = None

    def tick(self) -> int:
        """Train one epoch, or stop if a stop was requested; returns the epochs trained (0 or 1)."""
        if self.finished:
            return 0
        if self.stop_requested:
            self._end("Stopped", self.stop_requested, f"stopped after epoch {self.epochs}")
            return 0
        trainer = self.trainer
        assert trainer is not None
        started = time.perf_counter()
        try:
            trainer.train_steps(trainer.steps_per_epoch - trainer.batch_in_epoch)  # ends with end_epoch()
            self.epochs = trainer.epoch
            self.epoch_metrics = {k: float(v) for k, v in trainer.metrics.items()}
            if trainer.step >= trainer.total_steps:
                final = trainer.evaluate()
                final["epochs"] = float(trainer.epoch)
                self.final_metrics = final
                self._end("Succeeded", "Completed")
        except Diverged as error:
            self.epochs += 1  # the epoch ran; its end found the loss non-finite
            self._end("Failed", "Diverged", str(error))
        self.seconds += time.perf_counter() - started
        return 1

    def observe(self) -> ChildRun:
        return ChildRun(
            name=self.name,
            phase=self.phase,
            reason=self.reason,
            message=self.message,
            final_metrics=dict(self.final_metrics),
            stop_requested=self.stop_requested,
            duration_s=self.seconds if self.finished else None,
            epoch=self.epochs or None,
            epoch_metrics=dict(self.epoch_metrics),
        )


def reaches(value: float, target: float, maximize: bool, slack: float = 0.0) -> bool:
    """Whether ``value`` is at least as good as ``target`` (ties count; ``slack`` forgives a mean's rounding)."""
    return value >= target - slack if maximize else value <= target + slack


@dataclass
class Completion:
    number: int
    value: float
    epochs_so_far: int  # epochs trained by the whole study when this trial completed


@dataclass
class RunResult:
    strategy: str
    seed: int
    total_epochs: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    completions: list[Completion] = field(default_factory=list)
    wall_s: float = 0.0
    maximize: bool = True

    @property
    def best(self) -> float | None:
        values = [c.value for c in self.completions]
        return (max if self.maximize else min)(values) if values else None

    def first_reaching(self, target: float) -> Completion | None:
        """The first completed trial at least as good as ``target``; None if none reached it."""
        return next((c for c in self.completions if reaches(c.value, target, self.maximize)), None)


class InProcessStudy:
    """The local shell's loop (observe, plan, act) with in-process children ticked one epoch at a time."""

    def __init__(self, job: TrainingJob, storage_url: str) -> None:
        self.job = job
        self.controller = StudyController(job, storage_url)
        self.children: dict[int, InProcessChild] = {}
        self.status: dict[str, Any] = {}
        self.epochs = 0
        self.completions: list[Completion] = []

    def _act(self, decided: StudyPlan) -> bool:
        asked = False
        for action in decided.actions:
            if isinstance(action, AskTrial):
                self.controller.ask()
                asked = True
            elif isinstance(action, StartTrial):
                if action.number not in self.children:
                    self.controller.set_child(action.number, action.name)
                    self.children[action.number] = InProcessChild(self.job, action.number, action.name, action.params)
            elif isinstance(action, StopTrial):
                child = self.children.get(action.number)
                if child is not None and not child.stop_requested:
                    child.stop_requested = action.reason
            elif isinstance(action, TellTrial):
                self.controller.tell(action)
                self.children.pop(action.number, None)
                if action.state == "COMPLETE" and action.values is not None:
                    self.completions.append(Completion(action.number, action.values[0], self.epochs))
        return asked

    def plan(self) -> StudyPlan:
        """Observe, plan and act until the plan asks for no more trials (new trials then have their children)."""
        while True:
            children = {number: child.observe() for number, child in self.children.items()}
            observed = self.controller.observe(children, self.status)
            decided = plan_study(self.job, observed, datetime.now(UTC))
            asked = self._act(decided)
            self.status = dict(decided.status)
            if not asked:
                return decided

    def run(self) -> None:
        assert self.job.spec.tuning is not None
        limit = 2 * self.job.spec.tuning.max_trials * (self.job.spec.hyperparameters.epochs + 2)
        decided = self.plan()
        ticks = 0
        while not (decided.terminal and not self.children):
            for number in sorted(self.children):  # every running child trains one epoch per tick
                self.epochs += self.children[number].tick()
            decided = self.plan()
            ticks += 1
            if ticks > limit:
                raise RuntimeError(f"the study made no progress in {limit} ticks: {self.status.get('message')}")

    def counts(self) -> dict[str, int]:
        states = [row.state for row in self.controller.rows()]
        counts = {state.lower(): states.count(state) for state in ("COMPLETE", "PRUNED", "FAIL")}
        return {"total": len(states), **counts}


def run_one(settings: Settings, strategy: Strategy, seed: int) -> RunResult:
    """One study of ``strategy`` on ``seed``, in a temporary directory (its journal storage)."""
    torch.set_num_threads(1)
    job = parse(study_manifest(settings, strategy, seed))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kubetune-hpo-") as directory:
        study = InProcessStudy(job, journal_url(Path(directory) / "study.journal"))
        study.run()
        counts = study.counts()
    wall_s = time.perf_counter() - started
    return RunResult(strategy.name, seed, study.epochs, counts, study.completions, wall_s, settings.maximize)


# --- the measurement ----------------------------------------------------------------------------------------------


def _run_all(settings: Settings) -> list[RunResult]:
    tasks = [(strategy, seed) for seed in settings.seeds for strategy in settings.chosen]
    results: list[RunResult] = []
    if settings.jobs <= 1:
        for strategy, seed in tasks:
            results.append(run_one(settings, strategy, seed))
            _progress(results[-1])
        return results
    with ProcessPoolExecutor(max_workers=settings.jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_one, settings, strategy, seed) for strategy, seed in tasks]
        for future in futures:
            results.append(future.result())
            _progress(results[-1])
    return results


def _progress(result: RunResult) -> None:
    best = "none" if result.best is None else f"{result.best:.4f}"
    print(
        f"  {result.strategy:<21} seed {result.seed}: best {best}, {result.total_epochs} epochs, "
        f"{result.counts.get('pruned', 0)} pruned, {result.wall_s:.1f} s",
        file=sys.stderr,
        flush=True,
    )


def mean_curve_epochs(runs: Sequence[Mapping[str, Any]], target: float, maximize: bool) -> int | None:
    """The fewest epochs at which the mean over seeds of the best completed value so far reaches ``target``.

    The curve is the one HPO papers plot (Hyperband, BOHB: anytime performance averaged over repetitions); it is
    defined from the epoch at which every seed has a completed trial, and a study that ended keeps its final best.
    """
    best: dict[int, float] = {}
    events = sorted((c["epochs_so_far"], run["seed"], c["value"]) for run in runs for c in run["completions"])
    seeds = {run["seed"] for run in runs}
    pick = max if maximize else min
    for epochs, seed, value in events:
        best[seed] = pick(best.get(seed, value), value)
        if len(best) == len(seeds) and reaches(statistics.fmean(best.values()), target, maximize, slack=1e-12):
            return int(epochs)
    return None


def summarise(settings: Settings, results: Sequence[RunResult], wall_s: float) -> dict[str, Any]:
    """The JSON report: per run, per strategy (means over seeds, ratio to random search), and the goal."""
    baseline = {r.seed: r for r in results if r.strategy == BASELINE}
    # Seeds on which random search's target came from a trial that TPE's random start draws too (same seed): every
    # TPE strategy then trains that very trial early, and no pruner can reach the target much sooner than random.
    shared_start: list[int] = []
    runs: list[dict[str, Any]] = []
    for result in results:
        target = baseline[result.seed].best
        first = None if target is None else result.first_reaching(target)
        reached = None if first is None else first.epochs_so_far
        if result.strategy == BASELINE and first is not None and first.number < settings.n_startup_trials:
            shared_start.append(result.seed)
        runs.append(
            {
                "strategy": result.strategy,
                "seed": result.seed,
                "target": target,
                "best": result.best,
                "reached": reached is not None,
                "epochs_to_target": reached if reached is not None else result.total_epochs,
                "total_epochs": result.total_epochs,
                "trials": result.counts,
                "completions": [asdict(c) for c in result.completions],
                "wall_s": round(result.wall_s, 2),
            }
        )
    # The averaged-curve view: random search's mean final best, and the epochs each mean curve needs to reach it.
    finals = [r.best for r in baseline.values() if r.best is not None]
    curve_target = statistics.fmean(finals) if finals else None
    strategies: list[dict[str, Any]] = []
    for strategy in settings.chosen:
        mine = [run for run in runs if run["strategy"] == strategy.name]
        strategies.append(
            {
                "strategy": strategy.name,
                "sampler": strategy.sampler,
                "pruner": strategy.pruner,
                "mean_epochs_to_target": statistics.fmean(run["epochs_to_target"] for run in mine),
                "reached": sum(run["reached"] for run in mine),
                "seeds": len(mine),
                "mean_total_epochs": statistics.fmean(run["total_epochs"] for run in mine),
                "mean_best": statistics.fmean(run["best"] if run["best"] is not None else 0.0 for run in mine),
                "trials": {
                    key: sum(run["trials"].get(key, 0) for run in mine)
                    for key in ("total", "complete", "pruned", "fail")
                },
                "wall_s": round(sum(run["wall_s"] for run in mine), 2),
                "mean_curve_epochs": (
                    None if curve_target is None else mean_curve_epochs(mine, curve_target, settings.maximize)
                ),
            }
        )
    base = next(s for s in strategies if s["strategy"] == BASELINE)["mean_epochs_to_target"]
    base_per_seed = {run["seed"]: run["epochs_to_target"] for run in runs if run["strategy"] == BASELINE}
    for entry in strategies:
        entry["ratio_vs_random"] = entry["mean_epochs_to_target"] / base if base else None
        entry["per_seed_ratio"] = [
            round(run["epochs_to_target"] / base_per_seed[run["seed"]], 3)
            for run in runs
            if run["strategy"] == entry["strategy"]
        ]
    curve_base = strategies[0]["mean_curve_epochs"]
    for entry in strategies:
        mine_epochs = entry["mean_curve_epochs"]
        entry["mean_curve_ratio"] = mine_epochs / curve_base if mine_epochs is not None and curve_base else None
    goal = next(s for s in strategies if s["strategy"] == GOAL_STRATEGY)
    return {
        "benchmark": "hpo_efficiency",
        "settings": {
            "study": str(EXAMPLE.relative_to(EXAMPLE.parents[1])),
            "space": settings.space,
            "metric": settings.objective,
            "direction": OBJECTIVES[settings.objective],
            "trials": settings.trials,
            "epochs_per_trial": settings.epochs,
            "parallel_trials": settings.parallel,
            "seeds": list(settings.seeds),
            "tpe_options": settings.tpe_options,
            "hyperband_options": settings.hyperband,
            "successive_halving_options": settings.successive_halving,
            "threads_per_trial": 1,
        },
        "strategies": strategies,
        "runs": runs,
        "mean_curve_target": curve_target,
        "target_in_shared_start": sorted(shared_start),
        "goal": {
            "strategy": GOAL_STRATEGY,
            "max_ratio": GOAL_RATIO,
            "ratio": goal["ratio_vs_random"],
            "met": goal["ratio_vs_random"] is not None and goal["ratio_vs_random"] <= GOAL_RATIO,
        },
        "wall_s": round(wall_s, 2),
    }


def table(report: Mapping[str, Any]) -> str:
    """The report as markdown: the summary per strategy, then epochs to the target per seed."""
    s = report["settings"]
    seeds = s["seeds"]
    lines = [
        f"{s['trials']} trials x {s['epochs_per_trial']} epochs, {s['parallel_trials']} at a time, "
        f"{s['space']} search space, seeds "
        f"{', '.join(map(str, seeds))}; target per seed: random search's final best {s['metric']}; "
        f"Hyperband {s['hyperband_options']}, successive halving {s['successive_halving_options']}, "
        f"TPE {s['tpe_options']}",
        "",
        "| strategy | epochs to random's best (mean) | ratio vs random | reached | mean curve: epochs | ratio | "
        f"epochs trained (mean) | trials pruned | best {s['metric']} (mean) | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in report["strategies"]:
        ratio = "" if e["ratio_vs_random"] is None else f"{e['ratio_vs_random']:.2f}x"
        curve = "never" if e["mean_curve_epochs"] is None else str(e["mean_curve_epochs"])
        curve_ratio = "" if e["mean_curve_ratio"] is None else f"{e['mean_curve_ratio']:.2f}x"
        lines.append(
            f"| {e['strategy']} | {e['mean_epochs_to_target']:.1f} | {ratio} | {e['reached']}/{e['seeds']} | "
            f"{curve} | {curve_ratio} | {e['mean_total_epochs']:.1f} | "
            f"{e['trials']['pruned']}/{e['trials']['total']} | {e['mean_best']:.4f} | {e['wall_s']:.0f} |"
        )
    lines += [
        "",
        "| seed | target | " + " | ".join(e["strategy"] for e in report["strategies"]) + " |",
        "| --- | --- |" + " --- |" * len(report["strategies"]),
    ]
    for seed in seeds:
        runs = {r["strategy"]: r for r in report["runs"] if r["seed"] == seed}
        target = runs[BASELINE]["target"]
        cells = [
            f"{runs[e['strategy']]['epochs_to_target']}{'' if runs[e['strategy']]['reached'] else '*'}"
            for e in report["strategies"]
        ]
        lines.append(f"| {seed} | {'' if target is None else f'{target:.4f}'} | " + " | ".join(cells) + " |")
    goal = report["goal"]
    curve_target = "none" if report["mean_curve_target"] is None else f"{report['mean_curve_target']:.4f}"
    verdict = "met" if goal["met"] else "NOT met"
    ratio = "n/a" if goal["ratio"] is None else f"{goal['ratio']:.2f}x"
    lines += [
        "",
        "\\* never reached the target within the trial budget: every epoch it trained is counted.",
        "Mean curve: the epochs at which the mean over seeds of the best completed value so far first reaches random "
        f"search's mean final best ({curve_target}), as HPO papers read speed-ups off averaged curves.",
        f"Random search's target came from TPE's shared random start (a trial number below n_startup_trials) on "
        f"{len(report['target_in_shared_start'])}/{len(seeds)} seeds ({report['target_in_shared_start']}): there "
        "every TPE strategy trains that same trial early.",
        f"Goal: {goal['strategy']} <= {goal['max_ratio']}x the epochs of random search: {verdict} ({ratio}). "
        f"Wall time {report['wall_s']:.0f} s.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a tiny run (4 trials x 3 epochs, 2 seeds)")
    parser.add_argument("--trials", type=int, help=f"trials per study (default {Settings.trials})")
    parser.add_argument("--epochs", type=int, help=f"epochs per trial (default {Settings.epochs})")
    parser.add_argument("--parallel", type=int, help=f"trials at once (default {Settings.parallel})")
    parser.add_argument("--seeds", type=int, help="how many seeds (default 8)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from this one (default 0)")
    parser.add_argument(
        "--min-resource", type=int, help="the pruners' min_resource in epochs (default max(1, epochs // 6))"
    )
    parser.add_argument("--reduction-factor", type=int, default=3, help="the pruners' reduction factor (default 3)")
    parser.add_argument("--startup-trials", type=int, help="TPE's n_startup_trials (default 6, fewer for tiny budgets)")
    parser.add_argument(
        "--tpe-options",
        type=json.loads,
        default={},
        help='more TPESampler options as JSON, e.g. \'{"multivariate": true, "constant_liar": true}\'',
    )
    parser.add_argument(
        "--strategies",
        nargs="+",
        choices=[s.name for s in STRATEGIES],
        help=f"which strategies run (default all; {BASELINE} and {GOAL_STRATEGY} always do)",
    )
    parser.add_argument(
        "--objective", choices=tuple(OBJECTIVES), default="val_accuracy", help="what the studies optimise"
    )
    parser.add_argument(
        "--space", choices=("example", "wide"), default="example", help="the example's search space, or WIDE_SPACE"
    )
    parser.add_argument("--jobs", type=int, default=1, help="studies run at once in worker processes (default 1)")
    parser.add_argument("--output", choices=("table", "json"), default="table")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else Settings()
    settings = Settings(
        trials=args.trials or base.trials,
        epochs=args.epochs or base.epochs,
        parallel=args.parallel or base.parallel,
        seeds=tuple(range(args.first_seed, args.first_seed + (args.seeds or len(base.seeds)))),
        jobs=max(1, args.jobs),
        min_resource=args.min_resource,
        reduction_factor=args.reduction_factor,
        space=args.space,
        objective=args.objective,
        startup_trials=args.startup_trials,
        tpe_extra=tuple(sorted(args.tpe_options.items())),
        strategies=tuple(args.strategies) if args.strategies else base.strategies,
    )
    started = time.perf_counter()
    results = _run_all(settings)
    report = summarise(settings, results, time.perf_counter() - started)
    print(json.dumps(report, indent=2) if args.output == "json" else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
