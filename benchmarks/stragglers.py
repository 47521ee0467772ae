"""Do straggler policies pay off in a real study, and does ``kubetune simulate`` predict by how much? (issue 5)

Goal: in a real local study (16 trials, 4 in parallel, every worker slowed by a Pareto(1, 2) factor), ``adaptive``
has a makespan <= 0.7x ``none``'s and a compute <= 1.05x ``none``'s, and the measured ratios are within 10% of what
``kubetune simulate`` predicts for the task-time distribution fitted on the ``none`` run.

What runs: four real local studies, one per policy (``none``, ``spark``, ``adaptive``, ``migrate``), each a ``kubetune
run FILE --output json --chaos straggler=pareto:1,2 --chaos-seed S`` subprocess in its own temporary directory, from the
same study spec apart from ``spec.resilience.stragglers`` (the policies' spec defaults: spark 0.75 / 1.5, adaptive
maxExtraCost 0.05, planning for maxTrials 16 on parallelTrials 4, moves considered, and hedged launches not, for its
default copy cap (maxCopiesFraction 0.1) lets no slot race; migrate factor 1.5, no hedging; both with restartSeconds
1.0, this machine's start-up of a trial forked from ``kubetune run``'s fork server: median 0.6 s for this MLP, 1.1 s for
the digits CNN of ``benchmarks/warm_start.py``). The study has the same name in every run, and chaos draws are keyed by
worker process name, so trial n's original gets the same slowdown under every policy (common random numbers, as in the
simulator); a replica is a fresh draw. The sampler is seeded and tunes only the learning rate and momentum (a trial's
work does not depend on its values), no pruning, no tracking. The chaos seeds are fixed up front (``--chaos-seeds``,
default 0); several seeds are averaged as ratios of means, and the policies' order rotates from one seed to the next (a
machine whose load drifts favours no policy over three seeds).

The local runner caps parallel trials at the machine's cores (one core per trial); on a smaller machine the benchmark
presents ``--cores`` (default: the parallel trials) to ``kubetune run`` so that 4 trials run at once, which is why
``kubetune run`` is started through a two-line launcher that sets ``os.cpu_count`` and calls ``kubetune.cli.main``.
Trials then share the cores: the slowdown sleeps, so parallel trials mostly wait, but each trial process's start-up
(a fork of the loaded fork server, then the data load and the model's build: about a CPU-second) competes with the
running trials: the simulator's model (replicas on extra machines, i.i.d. task times) does not see that contention.
Before the fork server each start was a whole Python + torch import, several CPU-seconds.

``--step-time S`` emulates accelerator-bound trials, as on a GPU node, where the host's cores wait on the device:
the model shrinks to an MLP 1x64 and every step also sleeps S seconds (the trainer's ``KUBETUNE_STEP_DELAY``), a
sleep the chaos slowdown stretches like the rest of the step. A trial then needs the cores only while it starts,
so 4 trials and their replicas on 2 cores come close to the simulator's model of a slot per copy.

Measured, per policy: makespan (the last trial's end minus the first trial's start, from the study's Optuna storage),
compute (``status.cost.cpuSeconds.trials``: every copy's wall time x its CPU request, replicas included, cancelled
copies until cancelled, the machine time the simulator calls cost), replicas launched and their wasted seconds, and the
CPU-seconds the whole ``kubetune run`` process tree used (``getrusage``), a check on how much of a trial is start-up.

Predicted: a trial's duration is start-up + training x slowdown, a shifted Pareto, so the fit measures the two parts
apart on the ``none`` run's trials: the time each spent in training steps (the sum of its epochs' ``epoch_time_s``
from its worker's progress records: compute x slowdown) and the rest of its duration (start-up: process, imports,
data; evaluation and checkpoints; the final test pass; the runner's polling), none of which is slowed. The shift is
the mean of the rest, the tail a Pareto fitted by maximum likelihood (:func:`kubetune.core.stragglers.fit_pareto`)
on the training times. The simulator
(``--dist shiftedpareto:SHIFT,XM,ALPHA --tasks 16 --slots 4``, the policies built by the study controller's own
:func:`kubetune.core.study.straggler_policy`) gives the predicted mean makespan and compute of each policy, and their
ratios to ``none``. ``adaptive`` is simulated one job at a time (``--per-job``, ``--per-job-jobs`` jobs, 300 by
default): in a batch its tail fit would pool every simulated job running together, hundreds of times the trials a
live study's fit sees, and overstate what it can know. The goal compares the measured ratios with the simulator's
expectation of the same statistic:
with k chaos seeds the benchmark measures sum(policy)/sum(none) over k studies, so the prediction is the mean of
that ratio over simulated groups of k jobs (for one seed: the mean per-job ratio). With a heavy tail this differs
from ``kubetune simulate``'s ratio of means over all simulated jobs, dominated by rare huge jobs; both are
printed. What the online ``adaptive`` policy itself fits on the raw durations
(:func:`kubetune.core.stragglers.fit_tail`) is shown too.

    python benchmarks/stragglers.py                       # 16 trials, 4 at a time, chaos seed 0 (~10-15 min, 2 cores)
    python benchmarks/stragglers.py --chaos-seeds 0 1 2   # average three seeds (three times as long)
    python benchmarks/stragglers.py --step-time 0.08 --chaos-seeds 0 1 2   # accelerator-bound trials, emulated
    python benchmarks/stragglers.py --quick --output json # tiny (the smoke test's): 3 trials, 2 at a time
    python benchmarks/stragglers.py --step-time 0.08 --chaos-seeds 0 1 2 --predict shiftedpareto:4.97,25.5,2.13
                                                          # no studies: the prediction for a given fit alone
    python benchmarks/stragglers.py --step-time 0.08 --chaos-seeds 0 1 2 --policies adaptive --adaptive-copies 1
                                                          # none and adaptive only, every slot allowed to race

The exit status is 0 even when a goal is missed: this is a measurement; the table says whether each goal was met.

Imports optuna (to read the studies' storage); no kopf, kubernetes or mlflow; trials run in ``kubetune run``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

POLICIES = ("none", "spark", "adaptive", "migrate")
# A move pays the trial's start-up again: about 1 s here (a forked worker's start to its first step: median 0.6 s
# for this MLP; it was 2.5 to 5 s from warm or cold processes); the spec's default (10 s) is sized for pods.
# Hedged launches only with --adaptive-copies 1. Before forked workers every racing copy was a process start (about
# 10 CPU-seconds on this 2-core machine), and a study with adaptive at maxCopiesFraction 1 (every slot may race)
# measured 0.946x makespan / 1.219x compute against
# a prediction of 0.774x on 2026-12-07: bursts of copies starting together took 10 to 30 s each to their first step,
# a contention the simulator's fixed restartSeconds does not model (``--adaptive-copies 1`` runs it so); with warm
# spares for the copies, 0.868x / 1.096x against 0.772x / 1.023x (2026-12-08). With forked workers (a copy's start
# is a fork, about a CPU-second) the same option measured 0.690x / 0.937x against 0.674x / 0.848x (2026-12-08), the
# goals met; the spec's default cap stays, as LATE's 10%, and ``--adaptive-copies 1`` lifts it. On a cluster each
# copy starts on its own node.
POLICY_OPTIONS: dict[str, dict[str, Any]] = {
    "migrate": {"restartSeconds": 1.0},
    "adaptive": {"restartSeconds": 1.0},
}
STUDY = "straggler-bench"
CHAOS = "pareto:1,2"
GOALS = {"makespan": 0.7, "compute": 1.05, "tolerance": 0.10}
# kubetune run, with os.cpu_count() replaced by the first argument (the cores presented to the local runner).
LAUNCHER = (
    "import os, sys; cores = int(sys.argv.pop(1)); os.cpu_count = lambda: cores; "
    "from kubetune.cli import main; sys.exit(main(sys.argv[1:]))"
)

WARM_UP = (
    "import kubetune.cli, kubetune.local.study, kubetune_trainer.train, optuna, sklearn.datasets as d; d.load_digits()"
)


@dataclass(frozen=True)
class Settings:
    trials: int = 16
    parallel: int = 4
    epochs: int = 6
    depth: int = 4
    width: int = 1024
    step_time: float = 0.0  # > 0: every step also sleeps this long (emulated device time), see --step-time
    chaos_seeds: tuple[int, ...] = (0,)
    cores: int = 0  # 0: max(parallel, the machine's cores)
    jobs: int = 20_000  # simulated jobs per policy
    per_job_jobs: int = 300  # simulated jobs for a policy asked one job at a time (adaptive): ~1-2 s each
    adaptive_copies: float | None = None  # adaptive's maxCopiesFraction (None: the spec's default), see --help
    policies: tuple[str, ...] = POLICIES  # none and adaptive always (the goals' terms), in POLICIES' order
    quick: bool = False


# Two waves (3 trials, 2 at a time): three studies of 15-30 s each on 2 cores (trial start-up dominates).
QUICK = Settings(trials=3, parallel=2, epochs=1, depth=1, width=32, jobs=2_000, per_job_jobs=30, quick=True)
# Policies whose decision for one job depends on the other jobs of the simulator's batch (adaptive fits its tail on
# every job's tasks at a decision point together): the simulator asks them about one job at a time (--per-job), as a
# live study does; the others decide each job from its own row, and a batch gives them the same numbers, faster.
PER_JOB = frozenset({"adaptive"})


@dataclass
class Run:
    """One real study: one policy, one chaos seed."""

    policy: str
    chaos_seed: int
    phase: str
    wall_s: float  # the kubetune run subprocess, start to exit
    makespan_s: float  # last trial end - first trial start
    compute_s: float  # status.cost.cpuSeconds.trials
    wasted_replicas_s: float  # status.cost.wastedSeconds.replicas
    replicas: int  # replica copies launched
    process_cpu_s: float  # user + sys CPU of the whole kubetune run process tree
    trials: list[dict[str, Any]] = field(default_factory=list)  # number, state, duration_s, start_s, startup_s


def study_manifest(settings: Settings, policy: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": STUDY},
        "spec": {
            "trainer": {
                "model": {"family": "mlp", "depth": settings.depth, "width": settings.width},
                "dataset": "digits",
                "env": _device_time(settings),
            },
            "hyperparameters": {
                "learningRate": 0.05,
                "batchSize": 64,
                "momentum": 0.9,
                "optimizer": "sgd",
                "epochs": settings.epochs,
                "seed": 0,
            },
            "checkpoint": {"everySteps": 0},
            "tracking": {"enabled": False},
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
            "resilience": {"stragglers": {"policy": policy, **_policy_options(settings, policy)}},
            "tuning": {
                "objective": {"metric": "val_accuracy", "direction": "maximize"},
                "parameters": [
                    # Ranges where this MLP never diverges (a diverged trial fails early: a shorter, odd task).
                    {"name": "learningRate", "type": "float", "min": 0.001, "max": 0.05, "log": True},
                    {"name": "momentum", "type": "float", "min": 0.5, "max": 0.9},
                ],
                "sampler": {"name": "random", "seed": 0},
                "pruner": {"name": "none"},
                "maxTrials": settings.trials,
                "parallelTrials": settings.parallel,
            },
        },
    }


def _policy_options(settings: Settings, policy: str) -> dict[str, Any]:
    options = dict(POLICY_OPTIONS.get(policy, {}))
    if policy == "adaptive" and settings.adaptive_copies is not None:
        options["maxCopiesFraction"] = settings.adaptive_copies
    return options


def _device_time(settings: Settings) -> list[dict[str, str]]:
    """The trainer's env: with ``step_time``, a constant per-step sleep (``KUBETUNE_STEP_DELAY``, a shifted
    exponential with a negligible random part), which the chaos slowdown stretches like the rest of the step."""
    if settings.step_time <= 0:
        return []
    return [{"name": "KUBETUNE_STEP_DELAY", "value": f"shiftedexp:1,1e9,{settings.step_time}"}]


def _cores(settings: Settings) -> int:
    return settings.cores or max(settings.parallel, os.cpu_count() or 1)


def _training_time(run_dir: Path, name: str) -> float | None:
    """Seconds a copy spent in its training steps (slowdown sleeps included): the sum of its epochs'
    ``epoch_time_s``, from its worker's progress records (the per-epoch evaluation is mostly outside it)."""
    epochs: dict[tuple[str, int], float] = {}
    for path in (run_dir / "trials" / name / "workers").glob("*/progress.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("kind") != "epoch":
                continue
            seconds = (record.get("metrics") or {}).get("epoch_time_s")
            if isinstance(seconds, int | float) and isinstance(record.get("epoch"), int):
                epochs[(path.parent.name, record["epoch"])] = float(seconds)
    return sum(epochs.values()) if epochs else None


def _trial_times(run_dir: Path, study_name: str) -> list[dict[str, Any]]:
    """Each trial's start and end (seconds since the first trial's start) from the study's Optuna storage."""
    import optuna
    from kubetune.tuning.storage import journal_url, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(journal_url(run_dir / "study.journal"))
    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
    starts = [t.datetime_start.timestamp() for t in trials if t.datetime_start is not None]
    origin = min(starts) if starts else 0.0
    out = []
    for trial in trials:
        if trial.datetime_start is None or trial.datetime_complete is None:
            continue
        start = trial.datetime_start.timestamp() - origin
        end = trial.datetime_complete.timestamp() - origin
        out.append({"number": trial.number, "state": trial.state.name, "start_s": start, "end_s": end})
    return out


def run_study(settings: Settings, policy: str, chaos_seed: int) -> Run:
    with tempfile.TemporaryDirectory(prefix=f"kubetune-stragglers-{policy}-") as tmp:
        root = Path(tmp)
        spec = root / "study.yaml"
        spec.write_text(yaml.safe_dump(study_manifest(settings, policy), sort_keys=False), encoding="utf-8")
        command = [
            sys.executable, "-c", LAUNCHER, str(_cores(settings)), "run", str(spec), "--output", "json",
            "--workdir", str(root / "runs"), "--chaos", f"straggler={CHAOS}", "--chaos-seed", str(chaos_seed),
        ]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode not in (0, 1) or not done.stdout.strip():
            raise RuntimeError(f"kubetune run ({policy}) exited {done.returncode}: {done.stderr[-2000:]}")
        summary = json.loads(done.stdout)
        run_dir = Path(summary["run_dir"])
        status = json.loads((run_dir / "state.json").read_text(encoding="utf-8"))["status"]
        cost = status.get("cost") or {}
        timed = _trial_times(run_dir, summary["study"]["name"])
        trials = []
        for entry in timed:
            duration = entry["end_s"] - entry["start_s"]
            span = _training_time(run_dir, f"{STUDY}-t{entry['number']}")
            trials.append(
                {
                    **entry,
                    "duration_s": duration,
                    "training_s": span,
                    "startup_s": None if span is None else duration - span,
                }
            )
        replicas = sum(1 for path in (run_dir / "trials").glob(f"{STUDY}-t*r*") if path.is_dir())
        return Run(
            policy=policy,
            chaos_seed=chaos_seed,
            phase=str(summary.get("phase")),
            wall_s=wall,
            makespan_s=max((t["end_s"] for t in timed), default=math.nan),
            compute_s=float((cost.get("cpuSeconds") or {}).get("trials", 0.0)),
            wasted_replicas_s=float((cost.get("wastedSeconds") or {}).get("replicas", 0.0)),
            replicas=replicas,
            process_cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            trials=sorted(trials, key=lambda t: t["number"]),
        )


@dataclass(frozen=True)
class Fit:
    shift: float
    xm: float
    alpha: float
    durations: int

    @property
    def dist(self) -> str:
        return f"shiftedpareto:{self.shift:.4g},{self.xm:.4g},{self.alpha:.4g}"


def fit_durations(runs: Sequence[Run]) -> tuple[Fit | None, str | None]:
    """The shifted Pareto of the ``none`` runs' trials (see the module docstring): the mean start-up as the shift, a
    Pareto fitted on the training times; and what the online adaptive policy fits on the raw durations."""
    from kubetune.core.stragglers import fit_pareto, fit_tail

    trials = [t for run in runs for t in run.trials if t["state"] == "COMPLETE"]
    online = fit_tail([t["duration_s"] for t in trials], min_exact=2)
    described = online.describe() if online else None
    timed = [t for t in trials if t["training_s"] is not None and t["training_s"] > 0]
    if len(timed) < 2:
        return None, described
    pareto = fit_pareto([t["training_s"] for t in timed])
    if pareto is None:
        return None, described
    shift = max(0.0, statistics.fmean(t["startup_s"] for t in timed))
    return Fit(shift=shift, xm=pareto.location, alpha=pareto.shape, durations=len(timed)), described


def _grouped_ratio(values: Any, baseline: Any, group: int) -> float:
    """The expected ratio of sums over ``group`` jobs (what a benchmark of ``group`` seeds measures: the mean
    makespan of a policy's studies over the mean of ``none``'s on the same draws), from simulated jobs."""
    usable = (len(values) // group) * group
    policy = values[:usable].reshape(-1, group).sum(axis=1)
    base = baseline[:usable].reshape(-1, group).sum(axis=1)
    return float((policy / base).mean())


def predict(settings: Settings, fit: Fit) -> dict[str, dict[str, float]]:
    """Simulated mean makespan and compute of each policy (the controller's own policy objects) under ``fit``, and
    the expected measured ratios (:func:`_grouped_ratio`, one job per chaos seed)."""
    from kubetune.api import parse
    from kubetune.core.stragglers import build_policy
    from kubetune.core.study import straggler_policy
    from kubetune.simulate import parse_distribution, simulate

    dist = parse_distribution(fit.dist)
    group = len(settings.chaos_seeds)
    out: dict[str, dict[str, float]] = {}
    for policy in settings.policies:
        built = straggler_policy(parse(study_manifest(settings, policy))) or build_policy("none")
        per_job = policy in PER_JOB
        jobs = settings.per_job_jobs if per_job else settings.jobs
        outcome = simulate(
            dist, built, tasks=settings.trials, jobs=jobs, seed=0, slots=settings.parallel, per_job=per_job
        )
        out[policy] = {
            "jobs": jobs,
            "per_job": per_job,
            "mean_latency_s": float(outcome.latency.mean()),
            "mean_cost_s": float(outcome.cost.mean()),
            "baseline_latency_s": float(outcome.baseline_latency.mean()),
            "baseline_cost_s": float(outcome.baseline_cost.mean()),
            "expected_latency_ratio": _grouped_ratio(outcome.latency, outcome.baseline_latency, group),
            "expected_cost_ratio": _grouped_ratio(outcome.cost, outcome.baseline_cost, group),
        }
    return out


def _model_check(settings: Settings, runs: Sequence[Run]) -> dict[str, float | None]:
    """The simulator's queue model on the measured durations themselves: FIFO list scheduling of the ``none`` runs'
    trial durations on ``parallel`` slots against their measured makespan, and their sum against the compute."""
    import numpy as np
    from kubetune.core.stragglers import list_schedule

    if not runs or not all(run.trials for run in runs):
        return {"list_schedule_s": None, "makespan_s": None, "durations_sum_s": None, "compute_s": None}
    durations = [np.array([[t["duration_s"] for t in sorted(run.trials, key=lambda t: t["start_s"])]]) for run in runs]
    return {
        "list_schedule_s": statistics.fmean(float(list_schedule(d, settings.parallel)[0]) for d in durations),
        "makespan_s": statistics.fmean(run.makespan_s for run in runs),
        "durations_sum_s": statistics.fmean(float(d.sum()) for d in durations),
        "compute_s": statistics.fmean(run.compute_s for run in runs),
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator and math.isfinite(numerator) else None


def _deviation(measured: float | None, predicted: float | None) -> float | None:
    return measured / predicted - 1.0 if measured is not None and predicted else None


def summarise(settings: Settings, runs: Sequence[Run], seconds: float) -> dict[str, Any]:
    by_policy = {p: [r for r in runs if r.policy == p] for p in settings.policies}
    mean = {
        p: {k: statistics.fmean(getattr(r, k) for r in rs) for k in ("makespan_s", "compute_s")}
        for p, rs in by_policy.items()
    }
    fit, online = fit_durations(by_policy["none"])
    predicted = predict(settings, fit) if fit is not None else None
    policies: list[dict[str, Any]] = []
    for policy in settings.policies:
        measured = {
            "latency_ratio": _ratio(mean[policy]["makespan_s"], mean["none"]["makespan_s"]),
            "cost_ratio": _ratio(mean[policy]["compute_s"], mean["none"]["compute_s"]),
        }
        guess = None
        if predicted is not None:
            sim = predicted[policy]
            guess = {
                "mean_latency_s": sim["mean_latency_s"],
                "mean_cost_s": sim["mean_cost_s"],
                "jobs": sim["jobs"],
                "per_job": sim["per_job"],
                # kubetune simulate's figures: ratios of the means over all simulated jobs (against no replication
                # on the same draws: adaptive's jobs are fewer than the others').
                "simulate_latency_ratio": _ratio(sim["mean_latency_s"], sim["baseline_latency_s"]),
                "simulate_cost_ratio": _ratio(sim["mean_cost_s"], sim["baseline_cost_s"]),
                # What this benchmark measures (ratios of means over its chaos seeds), in expectation.
                "latency_ratio": sim["expected_latency_ratio"],
                "cost_ratio": sim["expected_cost_ratio"],
            }
        policies.append(
            {
                "policy": policy,
                "makespan_s": mean[policy]["makespan_s"],
                "compute_s": mean[policy]["compute_s"],
                "replicas": sum(r.replicas for r in by_policy[policy]),
                "wasted_replicas_s": statistics.fmean(r.wasted_replicas_s for r in by_policy[policy]),
                "process_cpu_s": statistics.fmean(r.process_cpu_s for r in by_policy[policy]),
                "measured": measured,
                "predicted": guess,
                "deviation": {
                    "latency": _deviation(measured["latency_ratio"], guess["latency_ratio"] if guess else None),
                    "cost": _deviation(measured["cost_ratio"], guess["cost_ratio"] if guess else None),
                },
            }
        )
    adaptive = policies[settings.policies.index("adaptive")]
    deviations = [
        abs(value)
        for entry in policies
        if entry["policy"] != "none"
        for value in entry["deviation"].values()
        if value is not None
    ]
    latency, cost = adaptive["measured"]["latency_ratio"], adaptive["measured"]["cost_ratio"]
    goals = {
        "adaptive_makespan": {
            "ratio": latency,
            "max": GOALS["makespan"],
            "met": latency is not None and latency <= GOALS["makespan"],
        },
        "adaptive_compute": {
            "ratio": cost,
            "max": GOALS["compute"],
            "met": cost is not None and cost <= GOALS["compute"],
        },
        "prediction": {
            "worst_deviation": max(deviations) if deviations else None,
            "tolerance": GOALS["tolerance"],
            "met": bool(deviations)
            and len(deviations) == 2 * (len(settings.policies) - 1)
            and max(deviations) <= GOALS["tolerance"],
        },
    }
    trials = [t for r in by_policy["none"] for t in r.trials]
    model_check = _model_check(settings, by_policy["none"])
    startups = [t["startup_s"] for t in trials if t["startup_s"] is not None]
    cpu_per_copy = [r.process_cpu_s / max(1, len(r.trials) + r.replicas) for r in runs]
    command = None
    if fit is not None:
        command = (
            f"kubetune simulate --dist {fit.dist} --tasks {settings.trials} --slots {settings.parallel} "
            f"--jobs {settings.jobs} --seed 0 --policy POLICY --output json "
            f"(adaptive: --per-job --jobs {settings.per_job_jobs})"
        )
    return {
        "settings": {
            **{k: v for k, v in asdict(settings).items() if k not in ("chaos_seeds", "cores", "policies")},
            "policies": list(settings.policies),
            "chaos": CHAOS,
            "chaos_seeds": list(settings.chaos_seeds),
            "cores_presented": _cores(settings),
            "machine_cores": os.cpu_count(),
        },
        "runs": [asdict(r) for r in runs],
        "startup": {
            "median_s": statistics.median(startups) if startups else None,
            "min_s": min(startups) if startups else None,
            "max_s": max(startups) if startups else None,
            "process_cpu_per_copy_s": statistics.fmean(cpu_per_copy) if cpu_per_copy else None,
        },
        "fit": None
        if fit is None
        else {**asdict(fit), "dist": fit.dist, "online_fit_of_raw_durations": online, "command": command},
        "model_check": model_check,
        "policies": policies,
        "goals": goals,
        "seconds": seconds,
    }


def _f(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def table(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        f"{s['trials']} trials, {s['parallel']} at a time, MLP {s['depth']}x{s['width']}, {s['epochs']} epoch(s)"
        + (f", {s['step_time']} s of emulated device time per step; " if s.get("step_time") else "; ")
        + f"--chaos straggler={s['chaos']}, chaos seed(s) {s['chaos_seeds']}; {s['cores_presented']} cores presented "
        f"to kubetune run ({s['machine_cores']} on this machine); {report['seconds']:.0f} s in all",
    ]
    start = report["startup"]
    lines.append(
        f"trial start-up (duration - training steps' time, none run): median {_f(start['median_s'], '.1f')} s "
        f"(min {_f(start['min_s'], '.1f')}, max {_f(start['max_s'], '.1f')}); CPU per trial process incl. the "
        f"runner's share: {_f(start['process_cpu_per_copy_s'], '.1f')} s"
    )
    fit = report["fit"]
    if fit:
        lines.append(
            f"fitted task time: {fit['dist']} (seconds, {fit['durations']} durations); the online adaptive fit of "
            f"the raw durations: {fit['online_fit_of_raw_durations']}"
        )
        lines.append(f"predicted by: {fit['command']}")
    else:
        lines.append("fitted task time: none (too few durations): no prediction")
    check = report["model_check"]
    lines.append(
        f"queue model check (none run): FIFO list scheduling of the measured durations on {s['parallel']} slots "
        f"{_f(check['list_schedule_s'], '.1f')} s vs makespan {_f(check['makespan_s'], '.1f')} s; sum of durations "
        f"{_f(check['durations_sum_s'], '.1f')} s vs compute {_f(check['compute_s'], '.1f')} s"
    )
    header = (
        f"{'policy':<9} {'makespan s':>10} {'pred s':>8} {'compute s':>10} {'pred s':>8} {'replicas':>8} "
        f"{'T ratio':>8} {'pred':>6} {'dev':>7} {'sim':>6} {'C ratio':>8} {'pred':>6} {'dev':>7} {'sim':>6}"
    )
    lines += ["", header, "-" * len(header)]
    for p in report["policies"]:
        guess = p["predicted"] or {}
        lines.append(
            f"{p['policy']:<9} {_f(p['makespan_s'], '.1f'):>10} {_f(guess.get('mean_latency_s'), '.1f'):>8} "
            f"{_f(p['compute_s'], '.1f'):>10} {_f(guess.get('mean_cost_s'), '.1f'):>8} {p['replicas']:>8} "
            f"{_f(p['measured']['latency_ratio']):>8} {_f(guess.get('latency_ratio')):>6} "
            f"{_f(p['deviation']['latency'], '+.1%'):>7} {_f(guess.get('simulate_latency_ratio')):>6} "
            f"{_f(p['measured']['cost_ratio']):>8} {_f(guess.get('cost_ratio')):>6} "
            f"{_f(p['deviation']['cost'], '+.1%'):>7} {_f(guess.get('simulate_cost_ratio')):>6}"
        )
    lines.append(
        "pred: the simulator's expectation of the measured ratio (mean over simulated groups of as many jobs as "
        "chaos seeds of sum(policy)/sum(none)); sim: kubetune simulate's ratio of means over all simulated jobs "
        "(adaptive: asked one job at a time, --per-job)"
    )
    g = report["goals"]
    lines += [
        "",
        f"goal adaptive makespan <= {g['adaptive_makespan']['max']}x none: {_f(g['adaptive_makespan']['ratio'])} "
        f"-> {'met' if g['adaptive_makespan']['met'] else 'MISSED'}",
        f"goal adaptive compute <= {g['adaptive_compute']['max']}x none: {_f(g['adaptive_compute']['ratio'])} "
        f"-> {'met' if g['adaptive_compute']['met'] else 'MISSED'}",
        f"goal measured ratios within ±{g['prediction']['tolerance']:.0%} of the simulator's: worst "
        f"{_f(g['prediction']['worst_deviation'], '+.1%')} -> {'met' if g['prediction']['met'] else 'MISSED'}",
    ]
    return "\n".join(lines)


def parse_settings(argv: Sequence[str] | None = None) -> tuple[Settings, str, Fit | None]:
    """The settings the command line asks for, the output format, and the fit to predict for alone (``--predict``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny: 3 trials, 2 at a time, 1 epoch")
    parser.add_argument("--trials", type=int, help="trials per study (default 16)")
    parser.add_argument("--parallel", type=int, help="trials at once (default 4)")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default 6; 8 with --step-time)")
    parser.add_argument(
        "--step-time",
        type=float,
        default=0.0,
        help="emulate accelerator-bound trials: every step also sleeps this many seconds (stretched by the "
        "slowdown), with a tiny model (depth 1, width 64), so that trials and replicas barely compete for the "
        "cores (default 0: the CPU-bound MLP)",
    )
    parser.add_argument("--chaos-seeds", type=int, nargs="+", help="chaos seeds, fixed up front (default 0)")
    parser.add_argument("--cores", type=int, help="cores presented to kubetune run (default max(parallel, cores))")
    parser.add_argument("--jobs", type=int, help="simulated jobs per policy (default 20000)")
    parser.add_argument(
        "--per-job-jobs", type=int, help="simulated jobs for adaptive, asked one job at a time (default 300)"
    )
    parser.add_argument(
        "--adaptive-copies",
        type=float,
        metavar="F",
        help="adaptive's maxCopiesFraction (default: the spec's, 0.1); 1 lets every slot race (hedged launches)",
    )
    parser.add_argument(
        "--policies",
        nargs="+",
        choices=POLICIES,
        help="the policies to run (default: all); none and adaptive always run, the goals compare them",
    )
    parser.add_argument(
        "--predict",
        metavar="shiftedpareto:SHIFT,XM,ALPHA",
        help="run no studies: print the simulator's prediction of each policy's ratios for this fitted task time",
    )
    parser.add_argument("--output", choices=("table", "json"), default="table")
    args = parser.parse_args(argv)
    given = None
    if args.predict is not None:
        try:
            given = parse_fit(args.predict)
        except ValueError as error:
            parser.error(f"--predict: {error}")
    base = QUICK if args.quick else Settings()
    emulated = args.step_time > 0
    settings = Settings(
        trials=args.trials or base.trials,
        parallel=args.parallel or base.parallel,
        epochs=args.epochs or (8 if emulated and not base.quick else base.epochs),
        depth=1 if emulated else base.depth,
        width=64 if emulated else base.width,
        step_time=max(0.0, args.step_time),
        chaos_seeds=tuple(args.chaos_seeds) if args.chaos_seeds else base.chaos_seeds,
        cores=args.cores or 0,
        jobs=args.jobs or base.jobs,
        per_job_jobs=args.per_job_jobs or base.per_job_jobs,
        adaptive_copies=args.adaptive_copies,
        policies=tuple(p for p in POLICIES if p in {"none", "adaptive", *(args.policies or POLICIES)}),
        quick=base.quick,
    )
    return settings, args.output, given


def parse_fit(text: str) -> Fit:
    """``shiftedpareto:SHIFT,XM,ALPHA`` (what the report's ``fit.dist`` says) as a :class:`Fit`, parsed and checked by
    ``kubetune simulate``'s own parser (its error names the bad part)."""
    from kubetune.simulate.distributions import ShiftedPareto, parse_distribution

    dist = parse_distribution(text)
    if not isinstance(dist, ShiftedPareto):
        raise ValueError(f"expected shiftedpareto:SHIFT,XM,ALPHA (the fit's form), got {text!r}")
    return Fit(dist.shift, dist.xm, dist.alpha, durations=0)


def prediction_table(settings: Settings, fit: Fit, predicted: dict[str, dict[str, float]]) -> str:
    lines = [
        f"{fit.dist}, {settings.trials} trials on {settings.parallel} slots, ratios over groups of "
        f"{len(settings.chaos_seeds)} job(s) (kubetune simulate's ratio of means in brackets)",
        "policy     makespan ratio      compute ratio",
    ]
    for policy, sim in predicted.items():
        latency = _ratio(sim["mean_latency_s"], sim["baseline_latency_s"])
        cost = _ratio(sim["mean_cost_s"], sim["baseline_cost_s"])
        lines.append(
            f"{policy:<10} {sim['expected_latency_ratio']:.3f} ({_f(latency)})      "
            f"{sim['expected_cost_ratio']:.3f} ({_f(cost)})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    settings, output, given = parse_settings(argv)
    if given is not None:
        predicted = predict(settings, given)
        print(json.dumps(predicted, indent=2) if output == "json" else prediction_table(settings, given, predicted))
        return 0
    began = time.perf_counter()
    # Warm the page cache (python, torch, the data set) so that the first policy's trials do not start slower.
    subprocess.run([sys.executable, "-c", WARM_UP], check=False, capture_output=True)
    runs: list[Run] = []
    for index, seed in enumerate(settings.chaos_seeds):
        # Rotate the order per seed (a Latin square over three seeds), so that a drift in the machine's load
        # during the benchmark does not always favour the policy that runs first.
        order = settings.policies
        shift = index % len(order)
        for policy in order[shift:] + order[:shift]:
            runs.append(run_study(settings, policy, seed))
            if output == "table":
                last = runs[-1]
                print(
                    f"  {policy} (chaos seed {seed}): makespan {last.makespan_s:.1f} s, compute "
                    f"{last.compute_s:.1f} s, {last.replicas} replica(s), {last.wall_s:.0f} s wall",
                    file=sys.stderr,
                    flush=True,
                )
    report = summarise(settings, runs, time.perf_counter() - began)
    print(json.dumps(report, indent=2) if output == "json" else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
