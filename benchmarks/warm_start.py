"""Forked, warm and cold trainer processes: the same local study with each ``kubetune run --start-method``.

Runs one study (default ``examples/digits-tune.yaml``, the README's main study: a CNN on digits, 20 trials, 2 at a
time, TPE + Hyperband) three times with ``kubetune run --output json``, each in its own temporary directory: cold
(every worker a fresh ``python -m kubetune_trainer`` process), warm (as many warm processes as trials run at once,
see :mod:`kubetune.local.warm`) and forkserver (the default on Linux: every worker forked from one loaded process,
see :mod:`kubetune.local.forks`). Prints for each: the wall time of the whole command, each worker's start-up (from
its log file's creation, when the runner starts it, to its first training step; the measure
``benchmarks/preemption.py`` uses for a restart) as median and mean, the CPU-seconds of the whole process tree, the
trial count by state and the best value; then the ratios of warm and forkserver to cold.

The sampler's choices depend on which trials had finished when a trial was asked for, so the two studies need not
sample the same trials; ``--sampler random --no-pruning`` makes them the same work (a timing-only comparison).

    python benchmarks/warm_start.py                            # digits-tune as it is (~8 min on 2 cores)
    python benchmarks/warm_start.py --trials 8 --sampler random --no-pruning
    python benchmarks/warm_start.py --output json
    python benchmarks/warm_start.py --trials 2 --epochs 1 --sampler random --no-pruning   # the smoke test's

Must not import: kopf, kubernetes, torch or mlflow (the studies run in ``kubetune run`` subprocesses).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from preemption import restart_times

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits-tune.yaml"
MODES = {method: ["--start-method", method] for method in ("cold", "warm", "forkserver")}
MEASURES = ("wall_s", "startup_median_s", "startup_mean_s", "cpu_s")


def manifest(
    path: Path, trials: int | None, sampler: str | None, pruning: bool, epochs: int | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    tuning = doc["spec"]["tuning"]
    if epochs:
        doc["spec"]["hyperparameters"].pop("steps", None)
        doc["spec"]["hyperparameters"]["epochs"] = epochs
    if trials:
        tuning["maxTrials"] = trials
    if sampler:
        tuning["sampler"] = {"name": sampler, "seed": tuning.get("sampler", {}).get("seed", 0)}
    if not pruning:
        tuning["pruner"] = {"name": "none"}
    return doc


def run(doc: dict[str, Any], mode: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"kubetune-warm-{mode}-") as tmp:
        root = Path(tmp)
        spec = root / "study.yaml"
        spec.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "kubetune.cli", "run", str(spec), "--output", "json", *MODES[mode]],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"kubetune run ({mode}) failed ({done.returncode}): {done.stderr[-2000:]}")
        summary = json.loads(done.stdout)
        trials_dir = Path(summary["run_dir"]) / "trials"
        startups = [t for trial in sorted(trials_dir.iterdir()) for t in restart_times(trial)]
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return {
            "mode": mode,
            "wall_s": round(wall, 1),
            "startup_median_s": round(statistics.median(startups), 2) if startups else None,
            "startup_mean_s": round(statistics.fmean(startups), 2) if startups else None,
            "workers": len(startups),
            "cpu_s": round(cpu, 1),
            "trials": summary.get("trial_counts"),
            "best": (summary.get("best") or {}).get("value"),
        }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, default=EXAMPLE, help="a study's TrainingJob (default digits-tune)")
    parser.add_argument("--trials", type=int, default=None, help="maxTrials (default: the file's)")
    parser.add_argument("--sampler", default=None, help="replace the file's sampler (e.g. random)")
    parser.add_argument("--no-pruning", action="store_true", help="replace the file's pruner by none")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: the file's)")
    parser.add_argument("--output", choices=("table", "json"), default="table")
    args = parser.parse_args(argv)
    doc = manifest(args.file, args.trials, args.sampler, not args.no_pruning, args.epochs)
    results = {mode: run(doc, mode) for mode in MODES}
    cold = results["cold"]
    ratios = {
        mode: {key: _ratio(r[key], cold[key]) for key in MEASURES} for mode, r in results.items() if mode != "cold"
    }
    report = {"file": str(args.file), "runs": list(results.values()), "ratios_over_cold": ratios}
    if args.output == "json":
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{args.file.name}: {doc['spec']['tuning']['maxTrials']} trials, {doc['spec']['tuning']['parallelTrials']} "
        "at a time"
    )
    print("| mode | wall s | worker start-up s (median / mean) | workers | CPU s | trials | best |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results.values():
        print(
            f"| {r['mode']} | {r['wall_s']} | {r['startup_median_s']} / {r['startup_mean_s']} | {r['workers']} | "
            f"{r['cpu_s']} | {r['trials']} | {r['best']} |"
        )
    for mode, ratio in ratios.items():
        print(
            f"{mode} / cold: wall {ratio['wall_s']}x, start-up {ratio['startup_median_s']}x (median) "
            f"{ratio['startup_mean_s']}x (mean), CPU {ratio['cpu_s']}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
