"""The gang policy, table-driven with a fixed `now`: what plan() does for each situation a job can be in."""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubetune.api import Problem, TrainingJob, parse
from kubetune.core import (
    CreateWorker,
    DeleteWorker,
    Heartbeat,
    Observed,
    Plan,
    Result,
    WorkerObservation,
    plan,
    plan_invalid,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def job(workers: int = 2, **spec: Any) -> TrainingJob:
    doc: dict[str, Any] = {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "j", "generation": 3},
        "spec": {
            "trainer": {"model": {"family": "mlp"}},
            "parallelism": {"workers": workers},
            "backoffLimit": 2,
            **spec,
        },
    }
    return parse(doc)


def w(rank: int, phase: str = "Running", attempt: int = 0, **kw: Any) -> WorkerObservation:
    return WorkerObservation(f"j-w{rank}-a{attempt}", rank, attempt, phase, **kw)  # type: ignore[arg-type]


def run(
    observed_workers: tuple[WorkerObservation, ...],
    status: dict[str, Any] | None = None,
    the_job: TrainingJob | None = None,
    now: datetime = NOW,
) -> Plan:
    return plan(the_job or job(), Observed(observed_workers, status or {}), now)


def creates(p: Plan) -> list[str]:
    return [a.name for a in p.actions if isinstance(a, CreateWorker)]


def deletes(p: Plan) -> list[str]:
    return [a.name for a in p.actions if isinstance(a, DeleteWorker)]


def status_after(*steps: tuple[WorkerObservation, ...]) -> dict[str, Any]:
    status: dict[str, Any] = {}
    for workers in steps:
        status = dict(run(workers, status).status)
    return status


def test_a_new_job_creates_every_rank_with_deterministic_names() -> None:
    p = run(())
    assert creates(p) == ["j-w0-a0", "j-w1-a0"]
    assert p.status["phase"] == "Pending"
    assert p.status["startTime"] == "2026-01-01T12:00:00Z"
    assert p.status["observedGeneration"] == 3
    assert [e.reason for e in p.events] == ["WorkersCreated"]
    created = [c for c in p.status["conditions"] if c["type"] == "Created"]
    assert created[0]["status"] == "True" and created[0]["observedGeneration"] == 3


def test_plan_is_idempotent_and_creates_only_missing_ranks() -> None:
    first = run(())
    again = run((w(0),), dict(first.status))
    assert creates(again) == ["j-w1-a0"]
    assert run((w(0), w(1)), dict(again.status)).actions == ()


def test_all_running_is_running_with_one_event_per_transition() -> None:
    status = status_after((), (w(0, "Pending"), w(1, "Pending")))
    p = run((w(0), w(1)), status)
    assert p.status["phase"] == "Running"
    assert [e.reason for e in p.events] == ["WorkersRunning"]
    assert run((w(0), w(1)), dict(p.status)).events == ()


@pytest.mark.parametrize(
    ("failed", "expected_reason", "counted"),
    [
        (w(1, "Failed", exit_code=1, reason="Error"), "WorkerFailed", True),
        (w(1, "Failed", exit_code=137, reason="OOMKilled"), "WorkerFailed", True),
        (w(1, "Failed", exit_code=143, result=Result("preempted", step=40)), "WorkerPreempted", False),
        (w(1, "Failed", exit_code=143, disruption="PreemptionByScheduler"), "WorkerPreempted", False),
        (w(1, "Running", disruption="EvictionByEvictionAPI"), "WorkerPreempted", False),
        (w(1, "Failed", reason="NodeShutdown"), "WorkerPreempted", False),
    ],
)
def test_one_rank_ending_restarts_the_whole_gang(
    failed: WorkerObservation, expected_reason: str, counted: bool
) -> None:
    status = status_after((), (w(0), w(1)))
    p = run((w(0), failed), status)
    assert p.status["phase"] == "Restarting"
    assert p.status["attempt"] == 1
    assert p.status["restarts"] == (1 if counted else 0)
    assert p.status["preemptions"] == (0 if counted else 1)
    assert "j-w0-a0" in deletes(p)
    assert creates(p) == []  # the new gang waits for the old one to be gone (its SIGTERM checkpoint)
    assert [e.reason for e in p.events] == [expected_reason]
    assert p.events[0].type == "Warning"


def test_the_next_attempt_starts_once_the_old_gang_has_stopped() -> None:
    status = status_after((), (w(0), w(1)))
    restarting = dict(run((w(0), w(1, "Failed", exit_code=1)), status).status)
    still_stopping = run((w(0, terminating=True), w(1, "Failed", exit_code=1)), restarting)
    assert creates(still_stopping) == []
    stopped = run((w(0, "Failed", exit_code=143), w(1, "Failed", exit_code=1)), restarting)
    assert creates(stopped) == ["j-w0-a1", "j-w1-a1"]
    assert stopped.status["restarts"] == 1  # the old attempt's failures are not counted twice


def test_backoff_limit_fails_the_job_and_stops_the_gang() -> None:
    status = {"phase": "Running", "attempt": 2, "restarts": 2}
    p = run((w(0, attempt=2), w(1, "Failed", attempt=2, exit_code=1)), status)
    assert p.status["phase"] == "Failed"
    assert deletes(p) == ["j-w0-a2"]
    failed = next(c for c in p.status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert "backoffLimit 2" in failed["message"]
    assert p.status["completionTime"] == "2026-01-01T12:00:00Z"


def test_preemptions_never_count_against_the_backoff_limit() -> None:
    status = {"phase": "Running", "attempt": 5, "restarts": 2, "preemptions": 5}
    p = run((w(0, attempt=5), w(1, "Failed", attempt=5, exit_code=143, result=Result("preempted"))), status)
    assert p.status["phase"] == "Restarting"
    assert p.status["preemptions"] == 6 and p.status["restarts"] == 2


@pytest.mark.parametrize(
    ("reason", "condition_reason"), [("Diverged", "TrainingDiverged"), ("InvalidConfig", "InvalidConfig")]
)
def test_a_diverged_or_misconfigured_rank_fails_at_once(reason: str, condition_reason: str) -> None:
    status = status_after((), (w(0), w(1)))
    p = run(
        (w(0, "Failed", exit_code=1, result=Result("failed", reason=reason, message="loss is nan")), w(1)),
        status,
    )
    assert p.status["phase"] == "Failed" and p.status["restarts"] == 0
    assert p.events[-1].reason == condition_reason
    assert "loss is nan" in p.status["message"]


def test_all_ranks_succeeded_is_success_with_rank0_metrics_first() -> None:
    status = status_after((), (w(0), w(1)))
    done = (
        w(0, "Succeeded", exit_code=0, result=Result("succeeded", metrics={"test_accuracy": 0.98, "x": 1.0})),
        w(1, "Succeeded", exit_code=0, result=Result("succeeded", metrics={"test_accuracy": 0.5, "y": 2.0})),
    )
    p = run(done, status)
    assert p.status["phase"] == "Succeeded"
    assert p.status["finalMetrics"] == {"test_accuracy": 0.98, "x": 1.0, "y": 2.0}
    assert p.status["metric"] == "test_accuracy=0.98"
    assert p.status["progress"] == "100%"


def test_terminal_phases_never_un_terminate() -> None:
    status = {"phase": "Succeeded", "attempt": 0, "completionTime": "2026-01-01T11:00:00Z"}
    p = run((w(0, "Failed", exit_code=1),), status)
    assert p.status["phase"] == "Succeeded" and creates(p) == []
    p = run((), {"phase": "Failed"}, job(workers=2))
    assert p.status["phase"] == "Failed" and p.actions == ()


def test_a_worker_that_disappears_is_relaunched_as_a_preemption() -> None:
    status = status_after((), (w(0), w(1)))
    p = run((w(0),), status)
    assert p.status["phase"] == "Restarting"
    assert p.status["preemptions"] == 1 and p.status["restarts"] == 0
    assert p.events[0].reason == "WorkerLost"


def test_a_rank_never_created_is_not_lost() -> None:
    first = run(())
    p = run((w(0),), dict(first.status))  # rank 1's creation failed (e.g. a 500): just create it again
    assert creates(p) == ["j-w1-a0"] and p.status["phase"] == "Pending"


def test_stale_workers_of_older_attempts_are_deleted() -> None:
    p = run((w(0, attempt=0), w(0, attempt=1)), {"phase": "Running", "attempt": 1})
    assert deletes(p) == ["j-w0-a0"]


def test_deadline_exceeded_fails_the_job() -> None:
    the_job = job(activeDeadlineSeconds=60)
    start = {"phase": "Running", "startTime": "2026-01-01T11:58:00Z"}
    p = run((w(0), w(1)), start, the_job)
    assert p.status["phase"] == "Failed"
    assert p.events[-1].reason == "DeadlineExceeded"
    assert set(deletes(p)) == {"j-w0-a0", "j-w1-a0"}


def test_suspend_stops_the_gang_and_resume_starts_the_next_attempt() -> None:
    running = status_after((), (w(0), w(1)))
    suspended = run((w(0), w(1)), running, job(suspend=True))
    assert suspended.status["phase"] == "Suspended" and set(deletes(suspended)) == {"j-w0-a0", "j-w1-a0"}
    assert suspended.status["attempt"] == 1 and suspended.status["preemptions"] == 0
    again = run((w(0, terminating=True), w(1, terminating=True)), dict(suspended.status), job(suspend=True))
    assert again.status["attempt"] == 1 and again.events == ()
    resumed = run((), dict(again.status), job())
    assert creates(resumed) == ["j-w0-a1", "j-w1-a1"]
    assert [e.reason for e in resumed.events] == ["JobResumed"]


def test_conditions_keep_their_transition_time_until_they_flip() -> None:
    status = status_after((), (w(0), w(1)))
    later = NOW + timedelta(minutes=5)
    p = run((w(0), w(1)), copy.deepcopy(status), now=later)
    running = next(c for c in p.status["conditions"] if c["type"] == "Running")
    assert running["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    p = run((w(0), w(1, "Failed", exit_code=1)), dict(p.status), now=later)
    running = next(c for c in p.status["conditions"] if c["type"] == "Running")
    assert running["status"] == "False" and running["lastTransitionTime"] == "2026-01-01T12:05:00Z"


def test_status_reports_progress_metrics_and_checkpoint_from_heartbeats() -> None:
    beat0 = Heartbeat(
        step=50,
        time=1767268800.0,
        total_steps=100,
        samples_per_s=1000.0,
        metrics={"train_loss": 0.5},
        checkpoint_step=40,
    )
    beat1 = Heartbeat(step=30, time=1767268800.0, total_steps=100, metrics={"train_loss": 0.7})
    p = run(
        (w(0, heartbeat=beat0), w(1, heartbeat=beat1)),
        status_after(
            (),
        ),
    )
    assert p.status["progress"] == "30%"
    assert p.status["progressFraction"] == 0.3 and "progressRate" not in p.status  # rank 1 has no rate yet
    fast, slow = dataclasses.replace(beat0, steps_per_s=5.0), dataclasses.replace(beat1, steps_per_s=2.0)
    rated = run((w(0, heartbeat=fast), w(1, heartbeat=slow)), status_after(()))
    assert rated.status["progressRate"] == 0.02  # the slowest rank: 2 steps/s of 100
    assert "progressRate" not in run((w(0, heartbeat=fast),), status_after(())).status  # rank 1 not seen yet
    assert p.status["metrics"] == {"train_loss": 0.5}
    assert p.status["lastCheckpoint"] == {"step": 40, "time": "2026-01-01T12:00:00Z"}
    assert p.status["workers"][0] == {
        "rank": 0,
        "name": "j-w0-a0",
        "phase": "Running",
        "step": 50,
        "samplesPerSecond": 1000.0,
        "loss": 0.5,
        "lastHeartbeat": "2026-01-01T12:00:00Z",
    }


def test_status_is_bounded() -> None:
    big = job(workers=64, hyperparameters={"batchSize": 128})
    beat = Heartbeat(step=1, time=0.0, metrics={f"m{i}": float(i) for i in range(100)})
    workers = tuple(w(r, heartbeat=beat) for r in range(64))
    p = plan(big, Observed(workers, {}), NOW)
    assert len(p.status["workers"]) == 32
    assert len(p.status["metrics"]) == 32
    p = plan_invalid(1, [Problem("spec.x", "y" * 5000)], Observed(()), NOW)
    assert len(p.status["message"]) <= 1024


def test_shell_owned_status_keys_are_carried_over() -> None:
    mlflow = {"trackingUri": "sqlite:///m.db", "experimentId": "1", "runId": "abc"}
    assert run((), {"mlflow": mlflow}).status["mlflow"] == mlflow


def test_an_invalid_spec_fails_with_reason_invalid_spec_and_stops_workers() -> None:
    problems = [Problem("spec.parallelism.workers", "must be >= 1, got 0")]
    p = plan_invalid(4, problems, Observed((w(0),), {"phase": "Running"}), NOW)
    assert p.status["phase"] == "Failed" and p.status["observedGeneration"] == 4
    assert deletes(p) == ["j-w0-a0"]
    failed = next(c for c in p.status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "InvalidSpec"
    assert "spec.parallelism.workers: must be >= 1, got 0" in failed["message"]
