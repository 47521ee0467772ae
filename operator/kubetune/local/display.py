"""What ``kubetune run`` shows a person: a live table of workers while the job runs, and a summary at the end.

Decides: only presentation (rich). Imports no kopf, kubernetes, optuna or mlflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from kubetune.core import Event
from kubetune.core.study import StudyEvent

PHASE_STYLE = {
    "Succeeded": "green",
    "Failed": "red",
    "Running": "cyan",
    "Restarting": "yellow",
    "Pending": "dim",
    "Suspended": "magenta",
    "Stopped": "yellow",
    "COMPLETE": "green",
    "PRUNED": "yellow",
    "FAIL": "red",
    "RUNNING": "cyan",
}
MAX_TRIAL_ROWS = 30


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def workers_table(name: str, status: Mapping[str, Any]) -> Group:
    """The live view: the job's phase line and one row per worker."""
    phase = str(status.get("phase", "Pending"))
    head = Text.assemble(
        (f"{name} ", "bold"),
        (phase, PHASE_STYLE.get(phase, "")),
        f"  attempt {status.get('attempt', 0)}  progress {status.get('progress', '0%')}  ",
        (str(status.get("metric", "")), "bold"),
    )
    table = Table(box=None, pad_edge=False)
    for column in ("worker", "rank", "phase", "step", "samples/s", "loss", "last checkpoint"):
        table.add_column(column, justify="right" if column not in ("worker", "phase") else "left")
    checkpoint = (status.get("lastCheckpoint") or {}).get("step")
    for worker in status.get("workers", ()):
        table.add_row(
            str(worker.get("name")),
            str(worker.get("rank")),
            Text(str(worker.get("phase")), PHASE_STYLE.get(str(worker.get("phase")), "")),
            _fmt(worker.get("step")),
            _fmt(worker.get("samplesPerSecond"), 5),
            _fmt(worker.get("loss")),
            _fmt(checkpoint),
        )
    return Group(head, table)


def trials_table(name: str, status: Mapping[str, Any], rows: Sequence[Any]) -> Group:
    """The live view of a study: its phase line and one row per trial (the newest ones when there are many)."""
    phase = str(status.get("phase", "Pending"))
    counts = status.get("trials") or {}
    head = Text.assemble(
        (f"{name} ", "bold"),
        (phase, PHASE_STYLE.get(phase, "")),
        f"  trials {status.get('progress', '')}  ({counts.get('running', 0)} running, "
        f"{counts.get('pruned', 0)} pruned, {counts.get('failed', 0)} failed)  ",
        (str(status.get("metric", "")), "bold"),
    )
    table = Table(box=None, pad_edge=False)
    for column in ("trial", "state", "value", "epochs", "seconds", "params"):
        table.add_column(column, justify="left" if column in ("state", "params") else "right")
    for row in list(rows)[-MAX_TRIAL_ROWS:]:
        params = "  ".join(f"{key}={_fmt(value, 3)}" for key, value in row.params.items())
        table.add_row(
            str(row.number),
            Text(row.state, PHASE_STYLE.get(row.state, "")),
            _fmt(row.value, 4),
            str(row.intermediate),
            _fmt(None if row.duration_s is None else round(row.duration_s, 1)),
            params,
        )
    return Group(head, table)


def summary_table(result: Mapping[str, Any]) -> Table:
    """The closing table: outcome, metrics, restarts and where MLflow has the run."""
    table = Table(title=f"TrainingJob {result['name']}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    phase = str(result.get("phase"))
    table.add_row("phase", Text(phase, PHASE_STYLE.get(phase, "")))
    if result.get("reason"):
        table.add_row("reason", str(result["reason"]))
    if result.get("message"):
        table.add_row("message", str(result["message"]))
    for key, value in sorted(result.get("metrics", {}).items()):
        table.add_row(key, _fmt(value, 5))
    if result.get("trials") is not None:
        counts = result.get("trial_counts") or {}
        table.add_row("trials", ", ".join(f"{counts.get(k, 0)} {k}" for k in ("complete", "pruned", "failed")))
        best = result.get("best")
        if best:
            shown = ", ".join(f"{k}={_fmt(v, 4)}" for k, v in best["params"].items())
            table.add_row("best trial", f"{best['number']}: {_fmt(best['value'], 5)} ({shown})")
        if result.get("best_trainingjob"):
            table.add_row("best as a TrainingJob", str(result["best_trainingjob"]))
    table.add_row(
        "attempts",
        f"{int(result.get('attempt', 0)) + 1} ({result.get('restarts', 0)} restarts, "
        f"{result.get('preemptions', 0)} preemptions)",
    )
    table.add_row("duration", f"{result.get('duration_s', 0):.1f} s")
    mlflow = result.get("mlflow") or {}
    if mlflow.get("run_id"):
        table.add_row("mlflow run", f"{mlflow['run_id']} (experiment {mlflow['experiment_id']})")
        table.add_row("tracking uri", str(mlflow["tracking_uri"]))
    table.add_row("run directory", str(result.get("run_dir")))
    return table


def print_event(console: Console, event: Event | StudyEvent) -> None:
    style = "yellow" if event.type == "Warning" else "dim"
    console.print(Text(f"{event.type} {event.reason}: {event.message}", style=style))
