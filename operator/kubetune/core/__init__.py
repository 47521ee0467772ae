"""The pure decision core: ``plan(job, observed, now) -> Plan(actions, status, events)``.

Both shells (the kopf operator and the local runner) observe, call :func:`plan`, and carry out its actions, so a
policy is written once. Pure: no I/O, no sleeping, and no kopf, kubernetes, optuna, mlflow or torch imports (an
import-linter contract holds this).
"""

from kubetune.core.actions import STOP_ANNOTATION, Action, CreateWorker, DeleteWorker, Event, Plan, worker_name
from kubetune.core.conditions import ConditionType, Phase, Reason
from kubetune.core.gang import plan, plan_invalid, timestamp
from kubetune.core.observed import Heartbeat, Observed, Result, WorkerObservation
from kubetune.core.outcomes import Outcome, classify
from kubetune.core.workerenv import worker_env

__all__ = [
    "STOP_ANNOTATION",
    "Action",
    "ConditionType",
    "CreateWorker",
    "DeleteWorker",
    "Event",
    "Heartbeat",
    "Observed",
    "Outcome",
    "Phase",
    "Plan",
    "Reason",
    "Result",
    "WorkerObservation",
    "classify",
    "plan",
    "plan_invalid",
    "timestamp",
    "worker_env",
    "worker_name",
]
