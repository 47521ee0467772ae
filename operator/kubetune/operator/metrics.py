"""The operator's Prometheus metrics.

Decides: which transitions count (jobs created, succeeded, failed; pods restarted by gang restarts) and the current
gauges (jobs by phase). Counters move on the plan's Events, so each transition counts once per plan that decided it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from kubetune.core import Event, Reason

RESTART_REASONS = frozenset({Reason.WORKER_FAILED, Reason.WORKER_PREEMPTED, Reason.WORKER_LOST})
PHASES = ("Pending", "Running", "Restarting", "Suspended", "Succeeded", "Failed", "Stopped")


class OperatorMetrics:
    """Counters and gauges in their own registry (tests make one each)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.created = Counter(
            "kubetune_trainingjobs_created", "TrainingJobs whose workers were created.", registry=self.registry
        )
        self.succeeded = Counter(
            "kubetune_trainingjobs_succeeded", "TrainingJobs that succeeded.", registry=self.registry
        )
        self.failed = Counter("kubetune_trainingjobs_failed", "TrainingJobs that failed.", registry=self.registry)
        self.restarted = Counter(
            "kubetune_pods_restarted", "Worker pods relaunched by gang restarts.", ["reason"], registry=self.registry
        )
        self.jobs = Gauge("kubetune_trainingjobs", "TrainingJobs by phase.", ["phase"], registry=self.registry)
        self._phases: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = dict.fromkeys(PHASES, 0)  # kept up to date: a pass costs O(1), not O(jobs)
        self._lock = threading.Lock()
        for phase in PHASES:
            self.jobs.labels(phase=phase).set(0)

    def observe(self, key: tuple[str, str], phase: str, events: Iterable[Event], workers: int) -> None:
        for event in events:
            if event.reason == Reason.WORKERS_CREATED:
                self.created.inc()
            elif event.reason == Reason.ALL_WORKERS_SUCCEEDED:
                self.succeeded.inc()
            elif event.reason in RESTART_REASONS:
                self.restarted.labels(reason=event.reason).inc(workers)
            if event.type == "Warning" and phase == "Failed" and event.reason not in RESTART_REASONS:
                self.failed.inc()
        with self._lock:
            self._move(self._phases.get(key), phase)
            self._phases[key] = phase

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._move(self._phases.pop(key, None), None)

    def _move(self, old: str | None, new: str | None) -> None:
        """One job went from phase ``old`` to ``new`` (None: not counted): only those two gauges change."""
        if old == new:
            return
        for phase, step in ((old, -1), (new, 1)):
            if phase is not None:
                self._counts[phase] = self._counts.get(phase, 0) + step
                self.jobs.labels(phase=phase).set(self._counts[phase])

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)
