"""Straggler policies: which running tasks to copy, and when, so that a job of many tasks finishes sooner.

One abstract base class (:class:`StragglerPolicy`, in :mod:`.base`, with the batch/decision vocabulary), one module per
policy (``none``, ``spark``, ``late``, ``singleFork``, ``timeout``, ``migrate``, ``adaptive``), the closed forms that
prove them (:mod:`.theory`), the online tail fit (:mod:`.tails`), forecasts of replication plans (:mod:`.forecast`) with
the queue model (:mod:`.makespan`), and the name -> constructor table (:func:`build_policy`). The same policy objects
drive ``kubetune simulate`` (a batch of many synthetic jobs) and a live shell (a batch of one).

Pure: numpy and the standard library only; must not import kopf, kubernetes, optuna, mlflow or torch (an
import-linter contract holds this).
"""

from kubetune.core.stragglers.adaptive import Adaptive, Choice
from kubetune.core.stragglers.base import Decision, Replicate, StragglerPolicy, TaskBatch, TaskState
from kubetune.core.stragglers.forecast import ForkPlan, Plan, TimeoutPlan, forecast, monte_carlo
from kubetune.core.stragglers.late import Late
from kubetune.core.stragglers.makespan import list_schedule
from kubetune.core.stragglers.migrate import Migrate
from kubetune.core.stragglers.none import NoReplication
from kubetune.core.stragglers.registry import POLICIES, build_policy, from_spec, policy_names
from kubetune.core.stragglers.single_fork import SingleFork
from kubetune.core.stragglers.spark import Spark
from kubetune.core.stragglers.tails import TailFit, fit_pareto, fit_shifted_exp, fit_tail
from kubetune.core.stragglers.theory import Forecast
from kubetune.core.stragglers.timeout import TaskTimeout

__all__ = [
    "POLICIES",
    "Adaptive",
    "Choice",
    "Decision",
    "Forecast",
    "ForkPlan",
    "Late",
    "Migrate",
    "NoReplication",
    "Plan",
    "Replicate",
    "SingleFork",
    "Spark",
    "StragglerPolicy",
    "TailFit",
    "TaskBatch",
    "TaskState",
    "TaskTimeout",
    "TimeoutPlan",
    "build_policy",
    "fit_pareto",
    "fit_shifted_exp",
    "fit_tail",
    "forecast",
    "from_spec",
    "list_schedule",
    "monte_carlo",
    "policy_names",
]
