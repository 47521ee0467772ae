"""``kubetune simulate``: run a straggler policy on synthetic jobs and compare it with no replication.

Decides the subcommand's flags, how they select a policy (the same objects as ``spec.resilience.stragglers``, via
:func:`kubetune.core.stragglers.build_policy`), and its exit codes (0 done, 2 bad input, reported in one line naming
the flag). ``register(subparsers)`` adds the subcommand to ``kubetune``'s parser; :func:`command` runs it.

Imports numpy and the engine lazily (``kubetune --help`` stays fast). Must not import kopf, kubernetes, optuna,
mlflow or torch.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

EXIT_OK, EXIT_USAGE = 0, 2

POLICY_CHOICES = ("none", "spark", "late", "single-fork", "timeout", "migrate", "adaptive")
_POLICY_ALIASES = {"singleFork": "single-fork", "single_fork": "single-fork", "singlefork": "single-fork"}
# Which flags each policy reads, and the spec option each flag sets.
_FLAGS: dict[str, dict[str, str]] = {
    "none": {},
    "spark": {"quantile": "quantile", "multiplier": "multiplier"},
    "late": {},
    "single-fork": {
        "fork_when_done": "forkWhenDone",
        "fork_at_time": "forkAtTime",
        "replicas": "replicas",
        "original": "original",
    },
    "timeout": {"after": "afterSeconds", "replicas": "replicas", "original": "original"},
    "migrate": {"factor": "factor", "restart": "restartSeconds", "max_moves": "maxMoves", "hedge": "hedge"},
    "adaptive": {"max_extra_cost": "maxExtraCost", "restart": "restartSeconds"},
}
_ALL_FLAGS = (
    "fork_when_done",
    "fork_at_time",
    "after",
    "replicas",
    "original",
    "quantile",
    "multiplier",
    "max_extra_cost",
    "factor",
    "restart",
    "max_moves",
    "hedge",
)


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _policy(text: str) -> str:
    name = _POLICY_ALIASES.get(text, text)
    if name not in POLICY_CHOICES:
        raise argparse.ArgumentTypeError(f"unknown policy {text!r} (choose from {', '.join(POLICY_CHOICES)})")
    return name


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``simulate`` to ``kubetune``'s subcommands (``subparsers`` from ``add_subparsers``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="simulate a straggler policy on synthetic jobs of i.i.d. tasks (vs no replication, same draws)",
        description=(
            "Simulate jobs of N i.i.d. tasks (on S slots each) under a straggler policy; report mean latency (last "
            "task's finish) and mean cost (machine time of every copy), with the no-replication baseline from the "
            "same draws."
        ),
    )
    parser.add_argument(
        "--dist",
        required=True,
        metavar="DIST",
        help="task-time distribution: shiftedexp:SHIFT,RATE | pareto:XM,ALPHA | shiftedpareto:SHIFT,XM,ALPHA | "
        "hyperexp:P,RATE1,RATE2 "
        "(RATE1 with probability P) | empirical:FILE (one number per line, or a JSON list)",
    )
    parser.add_argument("--tasks", type=int, default=10, metavar="N", help="tasks per job (default 10)")
    parser.add_argument(
        "--slots",
        type=int,
        default=None,
        metavar="S",
        help="slots per job (default N: every task starts at 0); with S < N tasks queue in order (FIFO) and start as "
        "slots free (a slot frees when its task's first copy finishes; replicas take no slot), as a study's "
        "trials do with parallelTrials S",
    )
    parser.add_argument("--jobs", type=int, default=10_000, metavar="J", help="jobs to simulate (default 10000)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument(
        "--per-job",
        action="store_true",
        help="ask the policy about one job at a time, as a live study does (slower); by default it sees all the jobs "
        "at a decision point together, which changes nothing for a policy that decides each job on its own, but "
        "gives adaptive a fit pooled over every job",
    )
    parser.add_argument(
        "--policy", type=_policy, default="none", metavar="POLICY", help=f"one of {', '.join(POLICY_CHOICES)}"
    )
    fork = parser.add_argument_group("single-fork")
    fork.add_argument(
        "--fork-when-done", type=float, metavar="FRACTION", help="fork once floor(FRACTION*N) tasks have finished"
    )
    fork.add_argument("--fork-at-time", type=float, metavar="T", help="fork at time T")
    fork.add_argument(
        "--replicas", type=int, metavar="R", help="new copies of each task forked (default 1; timeout too)"
    )
    fork.add_argument(
        "--original", choices=["keep", "kill"], help="keep or kill the original at the fork (default keep; timeout too)"
    )
    timeout = parser.add_argument_group("timeout")
    timeout.add_argument(
        "--after", type=float, metavar="T", help="copy each task still running T after its own launch (required)"
    )
    spark = parser.add_argument_group("spark")
    spark.add_argument(
        "--quantile", type=float, metavar="Q", help="fraction of tasks done before speculating (default 0.75)"
    )
    spark.add_argument(
        "--multiplier",
        type=float,
        metavar="M",
        help="copy a task running longer than M x the finished tasks' median (default 1.5)",
    )
    migrate = parser.add_argument_group("migrate")
    migrate.add_argument(
        "--factor",
        type=float,
        metavar="F",
        help="move a task whose copy needs more than F x what a fresh copy resuming it would (default 1.5)",
    )
    migrate.add_argument(
        "--restart",
        type=float,
        metavar="R",
        help="start-up a moved copy pays again, as the policy assumes it (default: the distribution's shift; adaptive "
        "too, which considers moves on heavy-tailed fits)",
    )
    migrate.add_argument("--max-moves", type=int, metavar="M", help="moves per task at most (default 3)")
    migrate.add_argument(
        "--hedge",
        type=int,
        metavar="H",
        help="copies raced at each launch (start and moves), the fastest kept once their speeds show (default 1)",
    )
    adaptive = parser.add_argument_group("adaptive")
    adaptive.add_argument(
        "--max-extra-cost",
        type=float,
        metavar="C",
        help="allowed expected extra cost, a fraction of no replication's (default 0.05, as in the spec)",
    )
    parser.add_argument(
        "--output",
        choices=["table", "json"],
        default="table",
        help="table: human readable (default); json: one JSON object on stdout",
    )
    return parser


def _usage(message: str) -> int:
    print(f"kubetune simulate: {message}", file=sys.stderr)
    return EXIT_USAGE


def command(args: argparse.Namespace) -> int:
    """Run ``kubetune simulate`` with parsed ``args``."""
    from kubetune.core.stragglers import build_policy
    from kubetune.simulate.distributions import DistributionError, parse_distribution
    from kubetune.simulate.engine import SimulationError, simulate
    from kubetune.simulate.results import SimulationResult

    if args.tasks < 1:
        return _usage(f"--tasks: must be >= 1, got {args.tasks}")
    if args.slots is not None and args.slots < 1:
        return _usage(f"--slots: must be >= 1, got {args.slots}")
    if args.jobs < 1:
        return _usage(f"--jobs: must be >= 1, got {args.jobs}")
    if args.seed < 0:
        return _usage(f"--seed: must be >= 0, got {args.seed}")
    try:
        dist = parse_distribution(args.dist)
    except DistributionError as error:
        return _usage(str(error))
    reads = _FLAGS[args.policy]
    for dest in _ALL_FLAGS:
        if getattr(args, dest) is not None and dest not in reads:
            print(f"kubetune simulate: warning: {_flag(dest)} is ignored by --policy {args.policy}", file=sys.stderr)
    if args.policy == "single-fork" and (args.fork_when_done is None) == (args.fork_at_time is None):
        return _usage("--policy single-fork needs exactly one of --fork-when-done FRACTION or --fork-at-time T")
    if args.policy == "timeout" and args.after is None:
        return _usage("--policy timeout needs --after T")
    options: dict[str, Any] = {
        spec: getattr(args, dest) for dest, spec in reads.items() if getattr(args, dest) is not None
    }
    if args.policy in ("migrate", "adaptive") and args.restart is None:
        options["restartSeconds"] = dist.startup  # what a move costs: the distribution's start-up
    if args.policy == "adaptive":
        options["tasks"] = args.tasks  # the whole job, though a queue shows the policy only the tasks started
    try:
        policy = build_policy(args.policy, **options)
    except ValueError as error:
        message = str(error)
        for dest, spec in reads.items():
            message = re.sub(rf"^stragglers\.{spec}:", f"{_flag(dest)}:", message)
        return _usage(message)
    began = time.perf_counter()
    try:
        outcomes = simulate(
            dist, policy, tasks=args.tasks, jobs=args.jobs, seed=args.seed, slots=args.slots, per_job=args.per_job
        )
    except SimulationError as error:
        return _usage(str(error))
    result = SimulationResult.of(
        outcomes,
        tasks=args.tasks,
        slots=outcomes.slots,
        dist=dist.describe(),
        policy=policy.describe(),
        seed=args.seed,
        seconds=time.perf_counter() - began,
    )
    if args.output == "json":
        print(json.dumps(result.to_json()))
    else:
        from rich.console import Console

        Console().print(result.table())
    return EXIT_OK
