"""``kubetune simulate``: a vectorised discrete-event simulator of straggler policies on synthetic jobs.

Runs the same policy objects as the live shells (:mod:`kubetune.core.stragglers`) on jobs of n i.i.d. tasks drawn
from a distribution (:mod:`.distributions`), all at once or queued on S slots as a study's trials are (``--slots``),
all jobs at once (:mod:`.engine`), and reports mean latency and cost
against no replication from the same draws (:mod:`.results`); :mod:`.cli` is the subcommand.

May import numpy; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from kubetune.simulate.distributions import Distribution, DistributionError, parse_distribution
from kubetune.simulate.engine import JobOutcomes, SimulationError, simulate
from kubetune.simulate.results import SimulationResult, Summary

__all__ = [
    "Distribution",
    "DistributionError",
    "JobOutcomes",
    "SimulationError",
    "SimulationResult",
    "Summary",
    "parse_distribution",
    "simulate",
]
