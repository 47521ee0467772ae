"""The study policy, with a fixed `now`: what plan_study() does for each situation a study can be in."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubetune.api import TrainingJob, parse
from kubetune.api.trainingjob import SpecError
from kubetune.core import STOP_ANNOTATION, Observed, WorkerObservation, plan
from kubetune.core.study import (
    AskTrial,
    ChildRun,
    StartTrial,
    StopTrial,
    StudyObserved,
    StudyPlan,
    TellTrial,
    TrialRecord,
    plan_study,
    straggler_policy,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
PARAMS = {"learningRate": 0.1}


def study(**tuning: Any) -> TrainingJob:
    doc: dict[str, Any] = {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "s", "generation": 2},
        "spec": {
            "trainer": {"model": {"family": "mlp"}},
            "tuning": {
                "objective": {"metric": "val_accuracy"},
                "parameters": [{"name": "learningRate", "type": "float", "min": 0.001, "max": 1, "log": True}],
                "maxTrials": 4,
                "parallelTrials": 2,
                **tuning,
            },
        },
    }
    return parse(doc)


def trial(number: int, state: str = "RUNNING", value: float | None = None) -> TrialRecord:
    return TrialRecord(number, state, PARAMS, (value,) if value is not None else None)  # type: ignore[arg-type]


def child(number: int, phase: str = "Running", **kw: Any) -> ChildRun:
    return ChildRun(f"s-t{number}", phase, **kw)


def decide(
    trials: list[TrialRecord],
    children: dict[int, ChildRun] | None = None,
    *,
    job: TrainingJob | None = None,
    prune: set[int] | None = None,
    status: dict[str, Any] | None = None,
    slots: int | None = None,
    now: datetime = NOW,
) -> StudyPlan:
    observed = StudyObserved(tuple(trials), children or {}, frozenset(prune or ()), status or {}, slots)
    return plan_study(job or study(), observed, now)


def kinds(p: StudyPlan, kind: type) -> list[Any]:
    return [a for a in p.actions if isinstance(a, kind)]


def test_a_new_study_asks_for_one_trial_per_slot() -> None:
    p = decide([])
    assert kinds(p, AskTrial) == [AskTrial(), AskTrial()]
    assert p.status["phase"] == "Running"
    assert p.status["trials"] == {"total": 0, "running": 0, "complete": 0, "pruned": 0, "failed": 0}


def test_the_shell_can_cap_the_slots_below_parallel_trials() -> None:
    assert len(kinds(decide([], slots=1), AskTrial)) == 1


def test_a_running_trial_without_its_child_gets_one_and_holds_its_slot() -> None:
    """After an ask (or a controller restart) the storage's RUNNING trial is adopted, never asked for again."""
    p = decide([trial(0)])
    assert kinds(p, StartTrial) == [StartTrial(0, "s-t0", PARAMS)]
    assert len(kinds(p, AskTrial)) == 1  # one slot left of two


def test_existing_children_are_adopted_and_full_slots_ask_nothing() -> None:
    p = decide([trial(0), trial(1)], {0: child(0), 1: child(1)})
    assert p.actions == ()


def test_never_more_trials_than_max_trials() -> None:
    trials = [trial(0, "COMPLETE", 0.9), trial(1, "COMPLETE", 0.8), trial(2)]
    p = decide(trials, {2: child(2)})
    assert len(kinds(p, AskTrial)) == 1  # 3 recorded + 1 = maxTrials 4
    trials.append(trial(3))
    assert kinds(decide(trials, {2: child(2), 3: child(3)}), AskTrial) == []


def test_a_succeeded_child_is_told_complete_with_its_objective() -> None:
    done = child(0, "Succeeded", final_metrics={"val_accuracy": 0.97, "test_accuracy": 0.96})
    p = decide([trial(0)], {0: done})
    assert kinds(p, TellTrial) == [TellTrial(0, "COMPLETE", (0.97,))]
    assert p.status["best"] == {"number": 0, "name": "s-t0", "params": PARAMS, "value": 0.97}
    assert p.status["metric"] == "best val_accuracy=0.97"
    assert [e.reason for e in p.events] == ["TrialCompleted", "TrialsRunning"]


def test_a_missing_or_nan_metric_fails_the_trial_with_the_reason() -> None:
    p = decide(
        [trial(0), trial(1)],
        {
            0: child(0, "Succeeded", final_metrics={"loss": 1.0}),
            1: child(1, "Succeeded", final_metrics={"val_accuracy": float("nan")}),
        },
    )
    tells = kinds(p, TellTrial)
    assert [t.state for t in tells] == ["FAIL", "FAIL"]
    assert "no metric 'val_accuracy'" in tells[0].message and "loss" in tells[0].message
    assert "nan" in tells[1].message


def test_a_diverged_child_is_failed_so_the_sampler_learns_the_region_fails() -> None:
    diverged = child(0, "Failed", reason="TrainingDiverged", message="the training loss became nan at step 7")
    p = decide([trial(0)], {0: diverged})
    assert kinds(p, TellTrial) == [
        TellTrial(0, "FAIL", message="TrainingDiverged: the training loss became nan at step 7")
    ]
    assert any(e.type == "Warning" and e.reason == "TrialFailed" for e in p.events)


def test_the_pruners_verdict_stops_the_trial_gracefully_then_it_is_told_pruned() -> None:
    p = decide([trial(0), trial(1)], {0: child(0), 1: child(1)}, prune={1})
    assert kinds(p, StopTrial) == [StopTrial(1, "s-t1", "Pruned")]
    # Asked once already: not again while it stops.
    stopping = child(1, stop_requested="Pruned")
    assert kinds(decide([trial(0), trial(1)], {0: child(0), 1: stopping}, prune={1}), StopTrial) == []
    stopped = child(1, "Stopped", reason="Pruned", stop_requested="Pruned")
    p = decide([trial(0), trial(1)], {0: child(0), 1: stopped})
    assert kinds(p, TellTrial) == [TellTrial(1, "PRUNED", message="pruned on its intermediate values")]


def test_all_trials_finished_succeeds_with_max_trials_reached() -> None:
    trials = [trial(0, "COMPLETE", 0.9), trial(1, "PRUNED"), trial(2, "FAIL"), trial(3, "COMPLETE", 0.95)]
    p = decide(trials)
    assert p.terminal and p.status["phase"] == "Succeeded"
    condition = next(c for c in p.status["conditions"] if c["type"] == "Succeeded")
    assert condition["reason"] == "MaxTrialsReached" and condition["observedGeneration"] == 2
    assert "2 complete, 1 pruned, 1 failed" in p.status["message"]
    assert p.status["best"]["number"] == 3
    assert [t["number"] for t in p.status["topTrials"]] == [3, 0]
    assert p.status["progress"] == "4/4 trials"
    assert "completionTime" in p.status


def test_minimize_ranks_the_smallest_first() -> None:
    job = study(objective={"metric": "val_loss", "direction": "minimize"})
    p = decide([trial(0, "COMPLETE", 0.5), trial(1, "COMPLETE", 0.2)], job=job)
    assert p.status["best"]["number"] == 1


def test_a_study_whose_trials_all_fail_ends_failed_max_failed_trials_reached() -> None:
    trials = [trial(n, "FAIL") for n in range(4)]
    p = decide(trials)
    assert p.status["phase"] == "Failed"
    condition = next(c for c in p.status["conditions"] if c["type"] == "Failed")
    assert condition["reason"] == "MaxFailedTrialsReached"
    assert "4 trial(s) failed" in condition["message"]


def test_max_failed_trials_stops_the_study_early_and_stops_running_trials() -> None:
    job = study(maxFailedTrials=2, maxTrials=10)
    p = decide([trial(0, "FAIL"), trial(1, "FAIL"), trial(2)], {2: child(2)}, job=job)
    assert kinds(p, AskTrial) == []
    assert kinds(p, StopTrial) == [StopTrial(2, "s-t2", "StudyEnded")]
    assert p.status["phase"] == "Running" and p.status["ending"] == "MaxFailedTrialsReached"
    # The stopped trial is told FAIL; the study's verdict does not change.
    stopped = child(2, "Stopped", reason="StudyEnded", stop_requested="StudyEnded")
    p = decide([trial(0, "FAIL"), trial(1, "FAIL"), trial(2)], {2: stopped}, job=job, status=dict(p.status))
    assert kinds(p, TellTrial)[0].state == "FAIL"
    assert p.status["phase"] == "Failed"
    assert next(c for c in p.status["conditions"] if c["type"] == "Failed")["reason"] == "MaxFailedTrialsReached"


def test_the_goal_ends_the_study_and_cuts_the_others_short() -> None:
    job = study(objective={"metric": "val_accuracy", "goal": 0.95}, maxTrials=10)
    done = child(0, "Succeeded", final_metrics={"val_accuracy": 0.96})
    p = decide([trial(0), trial(1)], {0: done, 1: child(1)}, job=job)
    assert kinds(p, TellTrial) == [TellTrial(0, "COMPLETE", (0.96,))]
    assert kinds(p, StopTrial) == [StopTrial(1, "s-t1", "StudyEnded")]
    assert kinds(p, AskTrial) == []
    stopped = child(1, "Stopped", reason="StudyEnded", stop_requested="StudyEnded")
    p = decide([trial(0, "COMPLETE", 0.96), trial(1)], {1: stopped}, job=job, status=dict(p.status))
    assert p.status["phase"] == "Succeeded"
    assert next(c for c in p.status["conditions"] if c["type"] == "Succeeded")["reason"] == "GoalReached"


def test_the_timeout_ends_the_study() -> None:
    job = study(timeoutSeconds=60, maxTrials=10)
    start = {"startTime": "2026-01-01T11:58:00Z", "phase": "Running"}
    p = decide([trial(0, "COMPLETE", 0.5), trial(1)], {1: child(1)}, job=job, status=start)
    assert kinds(p, StopTrial) == [StopTrial(1, "s-t1", "StudyEnded")]
    assert p.status["ending"] == "TimeoutReached"
    p = decide([trial(0, "COMPLETE", 0.5)], job=job, status=start, now=NOW + timedelta(seconds=1))
    assert p.status["phase"] == "Succeeded"


def test_a_trial_asked_for_but_never_started_when_the_study_ends_is_failed() -> None:
    job = study(timeoutSeconds=1)
    p = decide([trial(0)], job=job, status={"startTime": "2026-01-01T11:00:00Z"})
    assert kinds(p, StartTrial) == []
    assert kinds(p, TellTrial) == [TellTrial(0, "FAIL", message="the study ended before the trial started")]
    assert p.status["phase"] == "Failed"  # nothing completed


def test_a_finished_study_never_restarts() -> None:
    trials = [trial(n, "COMPLETE", 0.5) for n in range(4)]
    p = decide(trials)
    again = decide(trials, status=dict(p.status), now=NOW + timedelta(hours=1))
    assert again.actions == () and again.status == p.status


def test_status_is_bounded() -> None:
    job = study(maxTrials=50, parallelTrials=1)
    trials = [trial(n, "COMPLETE", n / 100) for n in range(50)]
    p = decide(trials, job=job)
    assert len(p.status["topTrials"]) == 5
    assert [t["number"] for t in p.status["topTrials"]] == [49, 48, 47, 46, 45]


def test_multi_objective_values_include_controller_metrics_and_the_status_a_pareto_front() -> None:
    job = parse(
        {
            "apiVersion": "kubetune.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": "s"},
            "spec": {
                "trainer": {"model": {"family": "mlp"}},
                "parallelism": {"workers": 2},
                "tuning": {
                    "objectives": [{"metric": "val_accuracy"}, {"metric": "worker_seconds", "direction": "minimize"}],
                    "parameters": [{"name": "momentum", "type": "float", "min": 0, "max": 0.99}],
                    "maxTrials": 3,
                },
            },
        }
    )
    done = child(0, "Succeeded", final_metrics={"val_accuracy": 0.9}, duration_s=10.0)
    p = decide([trial(0)], {0: done}, job=job)
    assert kinds(p, TellTrial) == [TellTrial(0, "COMPLETE", (0.9, 20.0))]
    trials = [
        TrialRecord(0, "COMPLETE", PARAMS, (0.90, 20.0)),
        TrialRecord(1, "COMPLETE", PARAMS, (0.95, 40.0)),
        TrialRecord(2, "COMPLETE", PARAMS, (0.89, 30.0)),  # dominated by trial 0
    ]
    p = decide(trials, job=job)
    assert [t["number"] for t in p.status["paretoFront"]] == [0, 1]
    assert p.status["paretoFront"][1]["values"] == [0.95, 40.0]
    assert "best" not in p.status and p.status["phase"] == "Succeeded"


def test_child_run_reads_a_trainingjob_status() -> None:
    status = {
        "phase": "Stopped",
        "message": "stopped on request",
        "conditions": [{"type": "Stopped", "status": "True", "reason": "Pruned"}],
        "startTime": "2026-01-01T12:00:00Z",
        "completionTime": "2026-01-01T12:00:30Z",
        "epochMetrics": {"epoch": 3, "metrics": {"val_accuracy": 0.5}},
    }
    run = ChildRun.from_status("s-t0", status, {STOP_ANNOTATION: "Pruned"})
    assert run.finished and run.reason == "Pruned" and run.stop_requested == "Pruned"
    assert run.duration_s == 30.0 and run.epoch == 3 and run.epoch_metrics == {"val_accuracy": 0.5}


def test_the_stop_annotation_stops_a_run_gracefully_and_ends_it_stopped() -> None:
    doc = {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "j", "annotations": {STOP_ANNOTATION: "Pruned"}},
        "spec": {"trainer": {"model": {"family": "mlp"}}},
    }
    job = parse(doc)
    running = WorkerObservation("j-w0-a0", 0, 0, "Running")
    p = plan(job, Observed((running,), {"phase": "Running", "attempt": 0}), NOW)
    assert [a.name for a in p.actions] == ["j-w0-a0"] and p.status["phase"] == "Running"
    # SIGTERM'd: the worker checkpoints and exits "preempted" (143) -- not restarted, the run is Stopped.
    gone = WorkerObservation("j-w0-a0", 0, 0, "Failed", exit_code=143)
    p = plan(job, Observed((gone,), dict(p.status)), NOW)
    assert p.actions == () and p.status["phase"] == "Stopped"
    assert next(c for c in p.status["conditions"] if c["type"] == "Stopped")["reason"] == "Pruned"
    assert p.terminal


def _rep_study(**stragglers: Any) -> TrainingJob:
    doc: dict[str, Any] = {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "s"},
        "spec": {
            "trainer": {"model": {"family": "mlp"}},
            "resilience": {"stragglers": stragglers},
            "tuning": {
                "objective": {"metric": "val_accuracy"},
                "parameters": [{"name": "momentum", "type": "float", "min": 0, "max": 0.9}],
                "maxTrials": 4,
                "parallelTrials": 4,
            },
        },
    }
    return parse(doc)


START = NOW.timestamp() - 100


def test_single_fork_replicates_the_unfinished_trials_with_the_same_values() -> None:
    job = _rep_study(policy="singleFork", forkWhenDone=0.5, replicas=1, original="keep")
    status = {"phase": "Running", "startTime": "2026-01-01T11:58:20Z"}
    trials = [trial(0, "COMPLETE", 0.9), trial(1, "COMPLETE", 0.8), trial(2), trial(3)]
    trials = [
        dataclasses.replace(t, started=START, finished=START + 10 if t.state == "COMPLETE" else None) for t in trials
    ]
    running = {n: child(n, started=START, progress=0.5) for n in (2, 3)}
    p = decide(trials, running, job=job, status=status)
    assert kinds(p, StartTrial) == [StartTrial(2, "s-t2r1", PARAMS, 1), StartTrial(3, "s-t3r1", PARAMS, 1)]
    assert [e.reason for e in p.events if e.reason == "TrialReplicated"] == ["TrialReplicated"] * 2
    # Once copied, never again (the policy reads `launched` from the observed replicas).
    replicas = {n: (child(n, replica=1, started=NOW.timestamp()),) for n in (2, 3)}
    replicas = {n: (dataclasses.replace(replicas[n][0], name=f"s-t{n}r1"),) for n in (2, 3)}
    again = plan_study(job, StudyObserved(tuple(trials), running, status=status, replicas=replicas), NOW)
    assert kinds(again, StartTrial) == []


def test_the_first_copy_to_finish_wins_and_the_others_are_cancelled() -> None:
    job = _rep_study(policy="singleFork", forkWhenDone=0.5)
    original = child(2, started=START, progress=0.6)
    winner = ChildRun(
        "s-t2r1",
        "Succeeded",
        final_metrics={"val_accuracy": 0.93},
        replica=1,
        started=START + 50,
        finished_at=START + 90,
        cpu_seconds=40.0,
    )
    observed = StudyObserved((trial(2),), {2: original}, status={"phase": "Running"}, replicas={2: (winner,)})
    p = plan_study(job, observed, NOW)
    assert kinds(p, TellTrial) == [TellTrial(2, "COMPLETE", (0.93,))]
    assert kinds(p, StopTrial) == [StopTrial(2, "s-t2", "Cancelled")]
    # The loser's compute so far (100 s of one 1-CPU worker) is replication waste.
    assert p.status["cost"]["wastedSeconds"] == {"replicas": 100.0}
    assert p.status["cost"]["cpuSeconds"] == {"trials": 140.0}


def test_a_cancelled_original_does_not_fail_the_trial_while_a_replica_runs() -> None:
    job = _rep_study(policy="singleFork", forkWhenDone=0.5, original="kill")
    cancelled = child(2, "Stopped", reason="Cancelled", stop_requested="Cancelled")
    replica = ChildRun("s-t2r1", "Running", replica=1)
    observed = StudyObserved((trial(2),), {2: cancelled}, status={"phase": "Running"}, replicas={2: (replica,)})
    assert kinds(plan_study(job, observed, NOW), TellTrial) == []


def test_pruning_stops_every_copy() -> None:
    job = _rep_study(policy="spark")
    observed = StudyObserved(
        (trial(0),),
        {0: child(0)},
        frozenset({0}),
        {"phase": "Running"},
        replicas={0: (ChildRun("s-t0r1", "Running", replica=1),)},
    )
    assert kinds(plan_study(job, observed, NOW), StopTrial) == [
        StopTrial(0, "s-t0", "Pruned"),
        StopTrial(0, "s-t0r1", "Pruned"),
    ]


def test_timeout_copies_a_trial_once_it_has_run_past_after_seconds() -> None:
    job = _rep_study(policy="timeout", afterSeconds=60, replicas=1, original="kill")
    status = {"phase": "Running", "startTime": "2026-01-01T11:58:20Z"}
    trials = [dataclasses.replace(trial(n), started=START + offset) for n, offset in ((0, 0.0), (1, 50.0))]
    running = {0: child(0, started=START, progress=0.5), 1: child(1, started=START + 50, progress=0.5)}
    p = decide(trials, running, job=job, status=status, slots=2)
    # Trial 0 has run 100 s (> 60): copied, its original cancelled; trial 1 (50 s) is not due yet.
    assert kinds(p, StartTrial) == [StartTrial(0, "s-t0r1", PARAMS, 1)]
    assert kinds(p, StopTrial) == [StopTrial(0, "s-t0", "Cancelled")]


def test_timeout_needs_after_seconds_and_adaptive_plans_for_max_trials() -> None:
    with pytest.raises(SpecError, match=r"spec\.resilience\.stragglers\.afterSeconds: .*timeout needs afterSeconds"):
        _rep_study(policy="timeout")
    policy = straggler_policy(_rep_study(policy="adaptive", maxExtraCost=0.1))
    assert policy is not None and policy.options() == {
        "maxExtraCost": 0.1,
        "tasks": 4,
        "maxCopiesFraction": 0.1,
        "restartSeconds": 10.0,  # moves are candidates: the shells resume a moved copy from its checkpoint
    }


def test_migrate_moves_a_slow_trial_to_a_copy_that_resumes_from_its_checkpoint() -> None:
    job = _rep_study(policy="migrate")  # factor 1.5, restartSeconds 10, maxMoves 3
    status = {"phase": "Running", "startTime": "2026-01-01T11:58:20Z"}
    done = [
        dataclasses.replace(trial(n, "COMPLETE", 0.9), started=START, finished=START + seconds)
        for n, seconds in ((0, 20.0), (1, 22.0), (2, 21.0))
    ]
    slow = dataclasses.replace(trial(3), started=START)
    # 100 s in, 0.2 done at 0.002/s (the heartbeats' rate): 400 s left; a copy resuming at 0.2 would need
    # 10 + 0.8 x (21 - 10) = 18.8 s (21: the median finished trial): 400 > 1.5 x 18.8, so the trial moves.
    running = {3: child(3, started=START, progress=0.2, rate=0.002)}
    p = decide([*done, slow], running, job=job, status=status)
    assert kinds(p, StopTrial) == [StopTrial(3, "s-t3", "Cancelled")]
    assert kinds(p, StartTrial) == [StartTrial(3, "s-t3r1", PARAMS, 1, resume_from="s-t3")]
    assert any("resuming from s-t3's checkpoint" in e.message for e in p.events)
    # At the usual speed (0.04/s: 20 s left) it stays.
    usual = {3: child(3, started=START, progress=0.2, rate=0.04)}
    assert kinds(decide([*done, slow], usual, job=job, status=status), StartTrial) == []


def test_a_move_becomes_a_child_spec_that_resumes_from_the_source() -> None:
    from kubetune.tuning.space import child_manifest

    job = _rep_study(policy="migrate")
    manifest = child_manifest(job, 3, {"momentum": 0.5}, replica=1, resume_from="s-t3")
    child_job = parse(manifest)
    assert child_job.name == "s-t3r1" and child_job.spec.checkpoint.resume_from == "s-t3"
    assert parse(child_manifest(job, 3, {"momentum": 0.5})).spec.checkpoint.resume_from is None
    with pytest.raises(SpecError, match=r"spec\.checkpoint\.resumeFrom"):
        parse({**manifest, "spec": {**manifest["spec"], "checkpoint": {"resumeFrom": "Not A Name"}}})


def test_child_run_reads_the_exact_progress_and_the_heartbeat_rate() -> None:
    status = {"phase": "Running", "progress": "20%", "progressFraction": 0.2049, "progressRate": 0.0125}
    run = ChildRun.from_status("s-t0", status, {})
    assert run.progress == 0.2049 and run.rate == 0.0125
    assert ChildRun.from_status("s-t0", {"phase": "Running", "progress": "20%"}, {}).rate is None


def test_the_policy_learns_which_originals_it_cancelled_and_which_lost_a_race() -> None:
    from kubetune.core.study import _task_state

    running, copy = trial(3), ChildRun("s-t3r1", "Running", replica=1, started=START + 50)
    moved = ChildRun("s-t3", "Stopped", stop_requested="Cancelled", started=START, finished_at=START + 50)
    stopping = ChildRun("s-t3", "Running", stop_requested="Cancelled", started=START)
    assert _task_state(running, [moved, copy], START, START + 60).cancelled
    assert _task_state(running, [stopping, copy], START, START + 60).cancelled
    # The original of a finished trial, cancelled after its replica won, lost a race: it was not moved.
    won = dataclasses.replace(trial(4, "COMPLETE", 0.9), started=START, finished=START + 30)
    loser = ChildRun("s-t4", "Stopped", stop_requested="Cancelled", started=START, finished_at=START + 31)
    winner = ChildRun("s-t4r1", "Succeeded", replica=1, started=START + 10, finished_at=START + 30)
    assert not _task_state(won, [loser, winner], START, START + 40).cancelled
    assert not _task_state(running, [child(3, started=START)], START, START + 60).cancelled


def test_a_hedged_migrate_races_each_new_trial_and_keeps_the_fastest_copy() -> None:
    from kubetune.core.conditions import Reason

    job = _rep_study(policy="migrate", hedge=2)  # restartSeconds 10: a race is decided 10 s after it starts
    status = {"phase": "Running", "startTime": "2026-01-01T11:58:20Z"}
    fresh = dataclasses.replace(trial(0), started=NOW.timestamp() - 1)
    start = decide([fresh], {0: child(0, started=NOW.timestamp() - 1)}, job=job, status=status, slots=1)
    assert kinds(start, StartTrial) == [StartTrial(0, "s-t0r1", PARAMS, 1)]  # from scratch: nothing to resume yet
    # 30 s later both copies show their speed: the replica (0.05/s, 15 s left) beats the original (0.01/s, 75 s).
    racing = dataclasses.replace(trial(0), started=START)
    original = child(0, started=START, progress=0.25, rate=0.01)
    replica = ChildRun("s-t0r1", "Running", replica=1, started=START + 1, progress=0.25, rate=0.05)
    observed = StudyObserved((racing,), {0: original}, status=status, replicas={0: (replica,)}, slots=1)
    decided = plan_study(job, observed, NOW)
    assert kinds(decided, StopTrial) == [StopTrial(0, "s-t0", "Cancelled")]
    assert kinds(decided, StartTrial) == []
    assert [e.reason for e in decided.events] == [str(Reason.RACE_DECIDED)]
    assert "kept s-t0r1, the fastest of 2 racing copies" in decided.events[0].message
    # Before the race's window (10 s after the replica's start) is over, both run on.
    assert kinds(plan_study(job, observed, datetime.fromtimestamp(START + 10, tz=UTC)), StopTrial) == []
