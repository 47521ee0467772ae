"""Spot vs on-demand for one job: preemptions with a mean time between them, against the same job uninterrupted.

Runs the same TrainingJob with ``kubetune run`` (real trainer processes) once on on-demand capacity and, for
each chaos seed, on spot capacity with ``--chaos preempt=mtbf:<MTBF>``: preemption notices arrive with exponential
inter-arrival times; each SIGTERMs the running worker, which checkpoints and exits "preempted", and the runner
relaunches the gang from that checkpoint (never counted against backoffLimit). Prints, per run and on average:

- wall time, preemptions, and the wall-time ratio spot / on-demand;
- lost work per preemption: the wall time the spot run lost per preemption, (spot - on-demand) / preemptions, next
  to the restart time measured in the same runs (from a worker process's start to its first training step): with
  the SIGTERM checkpoint nothing but the restart should be lost;
- cost: CPU-seconds by capacity from ``status.cost`` priced at on-demand 1.0 and spot ``--spot-price`` (0.3 by
  default) per CPU-second-hour, and the cost ratio spot / on-demand.

Goals (issue 5): cost <= 0.35x and wall time <= 1.15x of on-demand.

    python benchmarks/preemption.py                  # CNN on digits, ~2 min a run, MTBF 60 s, seeds 0 1 2
    python benchmarks/preemption.py --quick          # a smoke run (short job, MTBF 5 s)
    python benchmarks/preemption.py --output json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ON_DEMAND_PRICE = 1.0


def job(name: str, capacity: str, epochs: int, width: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "trainer": {"model": {"family": "cnn", "depth": 2, "width": width}, "dataset": "digits"},
            "hyperparameters": {"epochs": epochs, "learningRate": 0.05, "batchSize": 64, "seed": 0},
            "checkpoint": {"everySteps": 200},
            "tracking": {"enabled": False},
            "resilience": {"spot": {"capacity": capacity}},
        },
    }


def run(workdir: Path, doc: dict[str, Any], chaos: list[str], prices: Path, seed: int = 0) -> dict[str, Any]:
    path = workdir / f"{doc['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    command = [sys.executable, "-m", "kubetune.cli", "run", str(path), "--output", "json", "--prices", str(prices)]
    for spec in chaos:
        command += ["--chaos", spec]
    command += ["--chaos-seed", str(seed)]
    started = time.monotonic()
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False, env=os.environ.copy())
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"kubetune run failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["wall_s"] = wall
    result["restart_s"] = restart_times(Path(result["run_dir"]))
    return result


def restart_times(run_dir: Path) -> list[float]:
    """Per worker process: from its start (the log file's creation) to its first heartbeat after a step."""
    times = []
    for worker in sorted((run_dir / "workers").iterdir()):
        log, progress = worker / "log.txt", worker / "progress.jsonl"
        if not log.exists() or not progress.exists():
            continue
        born = log.stat().st_ctime
        for line in progress.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("kind") == "heartbeat" and record.get("step", 0) > 0:  # the first step is done
                times.append(float(record["time"]) - born)
                break
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mtbf", default="60s", help="mean time between preemptions (default 60s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="chaos seeds of the spot runs")
    parser.add_argument("--epochs", type=int, default=1200, help="epochs of the job (1200: about 2 min on 2 cores)")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--spot-price", type=float, default=0.3, help="spot price relative to on-demand (0.3)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 epochs, width 8, MTBF 5 s, one seed")
    parser.add_argument("--output", choices=["table", "json"], default="table")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.width, args.mtbf, args.seeds = 4, 8, "5s", [0]
    with tempfile.TemporaryDirectory(prefix="kubetune-preemption-") as tmp:
        workdir = Path(tmp)
        prices = workdir / "prices.yaml"
        prices.write_text(yaml.safe_dump({"cpu": {"spot": args.spot_price, "onDemand": ON_DEMAND_PRICE}}))
        base = run(workdir, job("ondemand", "onDemand", args.epochs, args.width), [], prices)
        spots = []
        for seed in args.seeds:
            folder = workdir / f"seed{seed}"
            folder.mkdir()
            chaos = [f"preempt=mtbf:{args.mtbf}"]
            spots.append(run(folder, job("spot", "spot", args.epochs, args.width), chaos, prices, seed))
    report = summarize(base, spots, args)
    if args.output == "json":
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print_table(report)
    return 0


def _price(result: dict[str, Any]) -> float:
    return float((result.get("cost") or {}).get("price") or 0.0)


def summarize(base: dict[str, Any], spots: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for seed, spot in zip(args.seeds, spots, strict=True):
        preemptions = int(spot["preemptions"])
        lost = (spot["wall_s"] - base["wall_s"]) / preemptions if preemptions else None
        runs.append(
            {
                "seed": seed,
                "phase": spot["phase"],
                "wall_s": round(spot["wall_s"], 2),
                "preemptions": preemptions,
                "lost_per_preemption_s": None if lost is None else round(lost, 2),
                "wasted_since_checkpoint_s": (spot.get("cost") or {}).get("wastedSeconds", {}).get("preemption", 0.0),
                "cost": round(_price(spot), 6),
                "wall_ratio": round(spot["wall_s"] / base["wall_s"], 4),
                "cost_ratio": round(_price(spot) / _price(base), 4) if _price(base) else None,
                "test_accuracy": spot["metrics"].get("test_accuracy"),
            }
        )
    restarts = [t for result in (base, *spots) for t in result["restart_s"]]
    lost = [r["lost_per_preemption_s"] for r in runs if r["lost_per_preemption_s"] is not None]
    wall_ratio = statistics.mean(r["wall_ratio"] for r in runs)
    cost_ratio = statistics.mean(r["cost_ratio"] for r in runs if r["cost_ratio"] is not None)
    return {
        "mtbf": args.mtbf,
        "spot_price": args.spot_price,
        "on_demand": {
            "wall_s": round(base["wall_s"], 2),
            "cost": round(_price(base), 6),
            "test_accuracy": base["metrics"].get("test_accuracy"),
        },
        "spot_runs": runs,
        "mean_preemptions": statistics.mean(r["preemptions"] for r in runs),
        "lost_per_preemption_s": round(statistics.mean(lost), 2) if lost else None,
        "restart_time_s": round(statistics.median(restarts), 2) if restarts else None,
        "wall_ratio": round(wall_ratio, 4),
        "cost_ratio": round(cost_ratio, 4),
        "goals": {"cost_ratio<=0.35": cost_ratio <= 0.35, "wall_ratio<=1.15": wall_ratio <= 1.15},
    }


def print_table(report: dict[str, Any]) -> None:
    base = report["on_demand"]
    print(f"on-demand: {base['wall_s']:.1f} s, cost {base['cost']:.5f}, test_accuracy {base['test_accuracy']:.4f}")
    print(f"spot (MTBF {report['mtbf']}, price {report['spot_price']}x):")
    print("| seed | preemptions | wall s | wall ratio | cost ratio | lost s / preemption | test_accuracy |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in report["spot_runs"]:
        lost = "-" if r["lost_per_preemption_s"] is None else f"{r['lost_per_preemption_s']:.1f}"
        print(
            f"| {r['seed']} | {r['preemptions']} | {r['wall_s']:.1f} | {r['wall_ratio']:.3f} | {r['cost_ratio']:.3f} "
            f"| {lost} | {r['test_accuracy']:.4f} |"
        )
    print(
        f"mean: wall ratio {report['wall_ratio']:.3f} (goal <= 1.15), cost ratio {report['cost_ratio']:.3f} "
        f"(goal <= 0.35); lost per preemption {report['lost_per_preemption_s']} s vs restart time "
        f"{report['restart_time_s']} s (median, process start to first step)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
