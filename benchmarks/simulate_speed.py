"""How fast is ``kubetune simulate``? (goal: 200,000 jobs of 10 tasks in under 10 s on 2 cores)

Runs each straggler policy on the same synthetic jobs (shifted exponential 1,1 by default) and prints wall time and
jobs/s, with the closed-form check for the single forks (simulated vs theory). Figures, not asserts: the exit status
is 0 whatever the numbers.

    python benchmarks/simulate_speed.py                  # 200,000 jobs x 10 tasks
    python benchmarks/simulate_speed.py --jobs 1000000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from kubetune.core.stragglers import build_policy, theory
from kubetune.core.stragglers.order_statistics import count_of
from kubetune.simulate import parse_distribution, simulate

POLICIES: list[tuple[str, dict[str, Any]]] = [
    ("none", {}),
    ("singleFork", {"forkWhenDone": 0.9, "replicas": 1, "original": "keep"}),
    ("singleFork", {"forkWhenDone": 0.9, "replicas": 1, "original": "kill"}),
    ("singleFork", {"forkWhenDone": 0.8, "replicas": 2, "original": "keep"}),
    ("spark", {}),
    ("late", {}),
    ("migrate", {}),
    ("adaptive", {"maxExtraCost": 0.1}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--dist", default="shiftedexp:1,1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object per policy instead of a table")
    args = parser.parse_args()
    dist = parse_distribution(args.dist)
    shifted = args.dist.startswith("shiftedexp:")
    if not args.json:
        print(f"{args.jobs:,} jobs x {args.tasks} tasks, {args.dist}, {os.cpu_count()} CPUs")
        print(f"{'policy':<58} {'seconds':>8} {'jobs/s':>10} {'E[T]':>8} {'theory':>8} {'E[C]':>8} {'theory':>8}")
    for name, options in POLICIES:
        policy = build_policy(name, **options)
        began = time.perf_counter()
        outcome = simulate(dist, policy, tasks=args.tasks, jobs=args.jobs, seed=args.seed)
        seconds = time.perf_counter() - began
        expected = None
        if shifted and name in ("none", "singleFork"):
            shift, rate = (float(part) for part in args.dist.split(":", 1)[1].split(","))
            if name == "none":
                expected = theory.baseline(args.tasks, shift, rate)
            else:
                left = args.tasks - count_of(options["forkWhenDone"], args.tasks)
                expected = theory.single_fork(args.tasks, left, options["replicas"], options["original"], shift, rate)
        row = {
            "policy": policy.describe(),
            "seconds": round(seconds, 3),
            "jobs_per_s": round(args.jobs / seconds),
            "mean_latency": float(outcome.latency.mean()),
            "mean_cost": float(outcome.cost.mean()),
            "theory_latency": expected.mean_latency if expected else None,
            "theory_cost": expected.mean_cost if expected else None,
        }
        if args.json:
            print(json.dumps(row))
        else:
            theory_t = f"{expected.mean_latency:8.4f}" if expected else f"{'-':>8}"
            theory_c = f"{expected.mean_cost:8.3f}" if expected else f"{'-':>8}"
            print(
                f"{row['policy']:<58} {seconds:8.2f} {row['jobs_per_s']:>10,} {row['mean_latency']:8.4f} {theory_t} "
                f"{row['mean_cost']:8.3f} {theory_c}"
            )


if __name__ == "__main__":
    main()
