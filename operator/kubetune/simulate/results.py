"""What ``kubetune simulate`` reports: mean latency and mean cost under the policy and without replication.

Decides the report: ``{"baseline": {"mean_latency", "mean_cost"}, "policy": {"mean_latency", "mean_cost"},
"latency_ratio", "cost_ratio", "jobs"}`` (ratios are policy mean / baseline mean, both from the same draws), and a
human-readable table of the same numbers with 95% confidence half-widths.

May import numpy and rich; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from kubetune.simulate.engine import Floats, JobOutcomes


@dataclass(frozen=True)
class Summary:
    """Means over jobs, and their 95% confidence half-widths."""

    mean_latency: float
    mean_cost: float
    latency_halfwidth: float
    cost_halfwidth: float

    @classmethod
    def of(cls, latency: Floats, cost: Floats) -> Summary:
        return cls(float(latency.mean()), float(cost.mean()), _halfwidth(latency), _halfwidth(cost))

    def to_json(self) -> dict[str, float]:
        return {"mean_latency": self.mean_latency, "mean_cost": self.mean_cost}


def _halfwidth(values: Floats) -> float:
    if values.size < 2:
        return math.nan
    return float(1.96 * values.std(ddof=1) / math.sqrt(values.size))


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


@dataclass(frozen=True)
class SimulationResult:
    """A simulation's report."""

    baseline: Summary
    policy: Summary
    jobs: int
    tasks: int
    dist: str
    policy_name: str
    seed: int
    seconds: float
    slots: int | None = None  # slots per job (None or >= tasks: every task starts at 0)

    @property
    def latency_ratio(self) -> float:
        return _ratio(self.policy.mean_latency, self.baseline.mean_latency)

    @property
    def cost_ratio(self) -> float:
        return _ratio(self.policy.mean_cost, self.baseline.mean_cost)

    @classmethod
    def of(
        cls,
        outcomes: JobOutcomes,
        *,
        tasks: int,
        dist: str,
        policy: str,
        seed: int,
        seconds: float,
        slots: int | None = None,
    ) -> SimulationResult:
        return cls(
            baseline=Summary.of(outcomes.baseline_latency, outcomes.baseline_cost),
            policy=Summary.of(outcomes.latency, outcomes.cost),
            jobs=outcomes.jobs,
            tasks=tasks,
            dist=dist,
            policy_name=policy,
            seed=seed,
            seconds=seconds,
            slots=slots,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON report (exactly these keys)."""
        return {
            "baseline": self.baseline.to_json(),
            "policy": self.policy.to_json(),
            "latency_ratio": self.latency_ratio,
            "cost_ratio": self.cost_ratio,
            "jobs": self.jobs,
        }

    def table(self) -> Table:
        """The report as a rich table."""
        on = f" on {self.slots} slots" if self.slots is not None and self.slots < self.tasks else ""
        title = (
            f"{self.jobs:,} jobs x {self.tasks} tasks{on}, {self.dist}, seed {self.seed} "
            f"({self.seconds:.2f} s, {self.jobs / max(self.seconds, 1e-9):,.0f} jobs/s)"
        )
        table = Table(title=title)
        table.add_column("policy")
        table.add_column("mean latency E[T]", justify="right")
        table.add_column("mean cost E[C]", justify="right")
        for name, summary in (("none (baseline)", self.baseline), (self.policy_name, self.policy)):
            table.add_row(
                name,
                f"{summary.mean_latency:.4f} ± {summary.latency_halfwidth:.4f}",
                f"{summary.mean_cost:.4f} ± {summary.cost_halfwidth:.4f}",
            )
        table.add_row("ratio (policy / baseline)", f"{self.latency_ratio:.4f}", f"{self.cost_ratio:.4f}")
        return table
