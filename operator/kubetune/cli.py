"""The ``kubetune`` command line: run, validate, ui, crd.

Decides: the commands, their flags and exit codes (0 success, 1 the job failed, 2 bad input, 130 interrupted).
Bad input is reported one line per problem, with the file and the field path, never with a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live

from kubetune.api import SpecError, TrainingJob, load
from kubetune.api.crd import crd_text
from kubetune.simulate import cli as simulate_cli

if TYPE_CHECKING:
    from kubetune.local.processes import LoadedWorkers
    from kubetune.local.runner import RunOptions

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
START_METHODS = ("forkserver", "warm", "cold")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubetune", description="Kubernetes-native PyTorch training and tuning.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a TrainingJob on this machine (processes stand in for pods)")
    run.add_argument("file", type=Path, help="a TrainingJob YAML file")
    run.add_argument(
        "--output",
        choices=["rich", "json"],
        default="rich",
        help="rich: live table and summary (default); json: one JSON object on stdout",
    )
    run.add_argument("--workdir", type=Path, default=None, help="where run directories live (default ./kubetune-runs)")
    run.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)",
    )
    run.add_argument(
        "--fresh",
        action="store_true",
        help="discard an unfinished earlier run of this job instead of resuming it",
    )
    run.add_argument(
        "--chaos",
        action="append",
        default=[],
        metavar="KIND=VALUE",
        help="inject faults: straggler=DIST (slow each worker by a factor drawn from DIST, e.g. pareto:1,2) or "
        "preempt=mtbf:DURATION (preempt spot workers, e.g. mtbf:60s); repeatable",
    )
    run.add_argument("--chaos-seed", type=int, default=0, help="seed of the chaos draws (default 0)")
    run.add_argument(
        "--prices",
        type=Path,
        default=None,
        help="a YAML price table per CPU-hour and GPU-hour by capacity, e.g. {cpu: {spot: 0.01, onDemand: 0.034}}",
    )
    run.add_argument(
        "--grace-seconds",
        type=float,
        default=30.0,
        help="seconds a worker gets to checkpoint after SIGTERM before it is killed (default 30)",
    )
    run.add_argument(
        "--start-method",
        choices=START_METHODS,
        default=None,
        help="how built-in workers start: forked from one process that has loaded the trainer (forkserver, the "
        "default on Linux), handed to processes loaded ahead (warm, the default elsewhere for a study), or as fresh "
        "processes (cold, the default elsewhere for a single job)",
    )
    run.add_argument(
        "--warm",
        type=int,
        default=None,
        metavar="N",
        help="with --start-method warm (implied): keep N built-in trainer processes started ahead (torch imported) "
        "to start workers from; 0: none, as --start-method cold (default: a study's parallel trials x workers per "
        "trial, times 2 under a straggler policy (1 + hedge for migrate, 1 + replicas for singleFork and timeout), "
        "0 for a single job)",
    )

    validate = commands.add_parser("validate", help="check TrainingJob files; exit 2 with one line per problem")
    validate.add_argument("files", type=Path, nargs="+")

    ui = commands.add_parser("ui", help="start the MLflow UI on the local store")
    ui.add_argument("--tracking-uri", default=None, help="backend store (default as for run)")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)

    dashboard = commands.add_parser(
        "dashboard", help="serve optuna-dashboard on a study's storage (pip install 'kubetune[dashboard]')"
    )
    dashboard.add_argument("file", type=Path, help="the study's TrainingJob YAML file (with spec.tuning)")
    dashboard.add_argument("--workdir", type=Path, default=None, help="where run directories live (as for run)")
    dashboard.add_argument("--storage", default=None, help="an Optuna storage URL (default: the study's own)")
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8080)

    commands.add_parser("crd", help="print the TrainingJob CustomResourceDefinition")

    operator = commands.add_parser("operator", help="run the kopf operator (in a cluster, or against a kubeconfig)")
    operator.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=None,
        help="watch only this namespace (repeatable; default all, or $KUBETUNE_NAMESPACE)",
    )
    operator.add_argument("--standalone", action="store_true", help="no peering with other operator replicas")
    operator.add_argument("--liveness", default=None, help="kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz")
    operator.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="Prometheus port (default $KUBETUNE_METRICS_PORT or 8080; 0 disables)",
    )
    operator.add_argument(
        "--tracking-uri", default=None, help="MLflow for jobs that name none (default $KUBETUNE_MLFLOW_TRACKING_URI)"
    )
    operator.add_argument("--kubeconfig", default=None, help="kubeconfig file (default in-cluster or $KUBECONFIG)")
    operator.add_argument(
        "--study-storage",
        default=None,
        help="Optuna storage URL for studies that name none (default $KUBETUNE_STUDY_STORAGE, else a journal file)",
    )
    operator.add_argument("--verbose", action="store_true")

    dev = commands.add_parser(
        "dev-cluster",
        help="a test API server, a fake kubelet and the operator on this machine (a test harness, not a cluster)",
    )
    dev.add_argument(
        "--kubeconfig",
        type=Path,
        default=Path("kubetune-dev/kubeconfig.yaml"),
        help="where to write the kubeconfig (default kubetune-dev/kubeconfig.yaml)",
    )
    dev.add_argument(
        "--workdir",
        type=Path,
        default=Path("kubetune-dev"),
        help="pods' files, checkpoints and the MLflow database (default ./kubetune-dev)",
    )
    dev.add_argument("--port", type=int, default=0, help="API server port (default: a free one)")
    simulate_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return _validate(args.files)
    if args.command == "run":
        return _run(args)
    if args.command == "ui":
        return _ui(args)
    if args.command == "dashboard":
        return _dashboard(args)
    if args.command == "operator":
        return _operator(args)
    if args.command == "simulate":
        return simulate_cli.command(args)
    if args.command == "dev-cluster":
        from kubetune.testing.devcluster import serve

        return serve(args.workdir, args.kubeconfig, args.port)
    sys.stdout.write(crd_text())
    return EXIT_OK


def _load_reporting(path: Path) -> TrainingJob | None:
    """The TrainingJob in ``path``, or None after printing one line per problem."""
    try:
        return load(path)
    except SpecError as error:
        for problem in error.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return None


def _validate(files: Sequence[Path]) -> int:
    bad = False
    for path in files:
        try:
            job = load(path)
        except SpecError as error:
            bad = True
            for problem in error.problems:
                print(f"{path}: {problem}", file=sys.stderr)
        else:
            print(f"{path}: ok (TrainingJob {job.name})")
    return EXIT_USAGE if bad else EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from kubetune.local.chaos import Chaos, ChaosError
    from kubetune.local.runner import RunOptions

    job = _load_reporting(args.file)
    if job is None:
        return EXIT_USAGE
    err = Console(stderr=True)

    try:
        chaos = Chaos.parse(args.chaos, seed=args.chaos_seed) if args.chaos else None
        prices = _load_prices(args.prices) if args.prices else {}
    except (ChaosError, ValueError) as error:
        print(str(error), file=sys.stderr)
        return EXIT_USAGE
    if args.warm is not None and args.warm < 0:
        print(f"--warm: must be >= 0, got {args.warm}", file=sys.stderr)
        return EXIT_USAGE
    method = _start_method(args.start_method, args.warm)
    if method is None:
        return EXIT_USAGE
    options = RunOptions(
        workdir=args.workdir,
        tracking_uri=args.tracking_uri,
        fresh=args.fresh,
        grace_seconds=args.grace_seconds,
        chaos=chaos,
        prices=prices,
    )
    if job.spec.tuning is not None:  # bad sampler or pruner options fail before any process starts
        from kubetune.local.study import check_options

        try:
            check_options(job)
        except ValueError as error:
            print(f"{args.file}: {error}", file=sys.stderr)
            return EXIT_USAGE
    with _loaded_workers(job, method, args.warm) as pool:
        return _run_job(args, job, dataclasses.replace(options, pool=pool), err)


def _start_method(asked: str | None, warm: int | None) -> str | None:
    """The start method ``kubetune run`` uses (None after printing a usage error): ``--warm N`` implies ``warm``
    (``cold`` for 0); otherwise the fork server where this machine can fork workers."""
    from kubetune.local import forks

    if warm is not None:
        if asked not in (None, "warm", "cold"):
            print(f"--warm: counts warm processes, not valid with --start-method {asked}", file=sys.stderr)
            return None
        return asked or ("warm" if warm > 0 else "cold")
    if asked == "forkserver" and not forks.available():
        print("--start-method forkserver: needs Linux (a child subreaper); use warm or cold", file=sys.stderr)
        return None
    return asked or ("forkserver" if forks.available() else "warm")


@contextlib.contextmanager
def _loaded_workers(job: TrainingJob, method: str, size: int | None) -> Iterator[LoadedWorkers | None]:
    """Where ``kubetune run``'s built-in workers start from (None: cold, and always for a bring-your-own trainer):
    the fork server, or warm processes (``size`` of them; by default, for a study only, as many as
    :func:`warm_processes` says)."""
    from kubetune.local.warm import WarmPool, preloads

    if not job.spec.trainer.builtin or method == "cold":
        yield None
        return
    if method == "forkserver" and job.spec.parallelism.workers > 1:
        # A gang's ranks start as before (warm or cold): one CI run saw a forked 2-rank gloo job hang (unexplained).
        method = "warm"
    if method == "forkserver":
        from kubetune.local.forks import ForkServer

        with ForkServer(preloads(job)) as server:
            yield server
        return
    first = None
    if size is None:
        from kubetune.local.study import warm_processes

        size, first = warm_processes(job) if job.spec.tuning is not None else (0, 0)
    if size == 0:
        yield None
        return
    with WarmPool(size, first=first, preload=preloads(job)) as pool:
        yield pool


def _run_job(args: argparse.Namespace, job: TrainingJob, options: RunOptions, err: Console) -> int:
    from kubetune.local.display import print_event, summary_table, workers_table
    from kubetune.local.runner import LocalRunner

    if TYPE_CHECKING:
        from kubetune.local.study import LocalStudyRunner

    live_view = args.output == "rich" and err.is_terminal
    live = Live(console=err, refresh_per_second=4, transient=True) if live_view else None
    runner: LocalRunner | LocalStudyRunner
    if job.spec.tuning is not None:
        from kubetune.local.display import trials_table
        from kubetune.local.study import LocalStudyRunner

        try:
            runner = LocalStudyRunner(
                job,
                options,
                on_event=lambda event: print_event(live.console if live else err, event),
                on_tick=(lambda status, rows: live.update(trials_table(job.name, status, rows))) if live else None,
            )
        except ValueError as error:
            print(f"{args.file}: {error}", file=sys.stderr)
            return EXIT_USAGE
    else:
        runner = LocalRunner(
            job,
            options,
            on_event=lambda event: print_event(live.console if live else err, event),
            on_tick=(lambda status: live.update(workers_table(job.name, status))) if live else None,
        )
    try:
        if live is not None:
            with live:
                result = runner.run()
        else:
            result = runner.run()
    except KeyboardInterrupt:
        err.print(f"interrupted: workers stopped; run the same command again to resume {job.name}")
        return EXIT_INTERRUPTED
    if args.output == "json":
        print(json.dumps(result, sort_keys=True))
    else:
        Console().print(summary_table(result))
    return EXIT_OK if result["phase"] == "Succeeded" else EXIT_FAILED


def _load_prices(path: Path) -> dict[str, dict[str, float]]:
    """A price table file: ``{cpu|gpu: {spot|onDemand: price per hour}}``; ValueError naming the bad entry."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"--prices {path}: cannot read it: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--prices {path}: expected a mapping like {{cpu: {{spot: 0.01, onDemand: 0.034}}}}")
    table: dict[str, dict[str, float]] = {}
    for resource, by_capacity in data.items():
        if resource not in ("cpu", "gpu") or not isinstance(by_capacity, dict):
            raise ValueError(f"--prices {path}: {resource}: expected cpu or gpu, each a mapping of capacity to price")
        for capacity, price in by_capacity.items():
            if capacity not in ("spot", "onDemand") or not isinstance(price, int | float) or price < 0:
                raise ValueError(f"--prices {path}: {resource}.{capacity}: expected spot|onDemand: a price >= 0")
        table[resource] = {str(k): float(v) for k, v in by_capacity.items()}
    return table


def _dashboard(args: argparse.Namespace) -> int:
    job = _load_reporting(args.file)
    if job is None:
        return EXIT_USAGE
    if job.spec.tuning is None:
        print(f"{args.file}: spec.tuning: not a study (no tuning section)", file=sys.stderr)
        return EXIT_USAGE
    from kubetune.local.study import JOURNAL_FILE
    from kubetune.tuning.storage import journal_url, open_storage, redact

    run_dir = (args.workdir or Path.cwd() / "kubetune-runs") / job.name
    url = args.storage or job.spec.tuning.storage.url or journal_url(run_dir / JOURNAL_FILE)
    if url.startswith("journal:") and not Path(url.removeprefix("journal:").removeprefix("//")).exists():
        print(
            f"{args.file}: no study storage at {url}: run the study first (kubetune run {args.file})", file=sys.stderr
        )
        return EXIT_USAGE
    try:
        optuna_dashboard = importlib.import_module("optuna_dashboard")
    except ImportError:
        print("optuna-dashboard is not installed: pip install 'kubetune[dashboard]'", file=sys.stderr)
        return EXIT_USAGE
    print(f"serving optuna-dashboard for {redact(url)} on http://{args.host}:{args.port}", file=sys.stderr)
    optuna_dashboard.run_server(open_storage(url), host=args.host, port=args.port)
    return EXIT_OK


def _operator(args: argparse.Namespace) -> int:
    import dataclasses

    from kubetune.operator.run import run_operator
    from kubetune.operator.settings import OperatorSettings

    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    settings = OperatorSettings.from_env()
    if args.metrics_port is not None:
        settings = dataclasses.replace(settings, metrics_port=args.metrics_port)
    if args.tracking_uri:
        settings = dataclasses.replace(settings, tracking_uri=args.tracking_uri)
    if args.study_storage:
        settings = dataclasses.replace(settings, study_storage=args.study_storage)
    try:
        run_operator(
            settings,
            namespaces=args.namespace,
            standalone=args.standalone,
            liveness=args.liveness,
            verbose=args.verbose,
        )
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK


def _ui(args: argparse.Namespace) -> int:
    from kubetune.tracking import default_tracking_uri

    mlflow = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    uri = args.tracking_uri or default_tracking_uri()
    command = [mlflow, "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port)]
    print(f"MLflow UI for {uri} on http://{args.host}:{args.port}/ (Ctrl-C to stop)", file=sys.stderr)
    os.execv(command[0], command)
    return EXIT_OK  # pragma: no cover - execv does not return


if __name__ == "__main__":
    raise SystemExit(main())
