"""Spot capacity, preemption limits, failurePolicy rules and cost accounting in the gang plan."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubetune.api import TrainingJob, parse
from kubetune.core import CreateWorker, Heartbeat, Observed, Plan, Result, WorkerObservation, plan
from kubetune.core.capacity import capacity_for, is_spot_node, placement

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T0 = NOW.timestamp() - 100


def job(resilience: dict[str, Any] | None = None, batchSize: int = 64, **spec: Any) -> TrainingJob:
    spec.setdefault("hyperparameters", {"batchSize": batchSize})
    return parse(
        {
            "apiVersion": "kubetune.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": "j"},
            "spec": {"trainer": {"model": {"family": "mlp"}}, "resilience": resilience or {}, **spec},
        }
    )


def w(attempt: int = 0, phase: str = "Running", **kw: Any) -> WorkerObservation:
    return WorkerObservation(f"j-w0-a{attempt}", 0, attempt, phase, **kw)  # type: ignore[arg-type]


def preempted(attempt: int, node: str = "spot-1") -> WorkerObservation:
    result = Result("preempted", step=10, reason="Preempted")
    return w(attempt, "Failed", exit_code=143, result=result, node=node, started_at=T0, finished_at=T0 + 50)


def go(the_job: TrainingJob, workers: tuple[WorkerObservation, ...], status: dict[str, Any], **kw: Any) -> Plan:
    return plan(the_job, Observed(workers, status, **kw), NOW)


def test_spot_then_on_demand_falls_back_after_the_configured_preemptions() -> None:
    j = job({"spot": {"capacity": "spotThenOnDemand", "fallbackAfterPreemptions": 2}})
    assert [capacity_for(j, n) for n in range(4)] == ["spot", "spot", "onDemand", "onDemand"]
    p = go(j, (), {})
    create = next(a for a in p.actions if isinstance(a, CreateWorker))
    assert create.placement is not None and create.placement.capacity == "spot"
    assert p.status["capacity"] == "spot"
    status = dict(p.status)
    for attempt in range(2):
        status = dict(go(j, (preempted(attempt),), {**status, "phase": "Running"}).status)
        status = dict(go(j, (), status).status)
    assert status["preemptions"] == 2 and status["restarts"] == 0 and status["capacity"] == "onDemand"


def test_preemptions_never_count_against_backoff_but_max_preemptions_fails() -> None:
    j = job({"spot": {"capacity": "spot", "maxPreemptions": 1}}, backoffLimit=0)
    p = go(j, (preempted(0),), {"phase": "Running", "attempt": 0, "capacity": "spot"})
    assert p.status["phase"] == "Restarting" and p.status["preemptions"] == 1
    p = go(j, (preempted(1),), {**p.status, "phase": "Running"})
    assert p.status["phase"] == "Failed"
    assert any(c["reason"] == "PreemptionLimitExceeded" for c in p.status["conditions"])


def test_provider_labels_and_taints() -> None:
    karpenter = placement(job({"spot": {"capacity": "spot"}}), "spot")
    assert karpenter.node_selector == {"karpenter.sh/capacity-type": "spot"}
    assert any(t["key"] == "kubernetes.azure.com/scalesetpriority" for t in karpenter.tolerations)
    gke = placement(job({"spot": {"provider": "gke"}}), "spot")
    assert gke.node_selector == {"cloud.google.com/gke-spot": "true"}
    eks = placement(job({"spot": {"provider": "eks"}}), "onDemand")
    assert eks.node_selector == {} and eks.tolerations == ()
    assert eks.node_expressions == ({"key": "eks.amazonaws.com/capacityType", "operator": "NotIn", "values": ["SPOT"]},)
    aks = placement(job({"spot": {"provider": "aks"}}), "spot", avoid_nodes=["n2", "n1"])
    assert aks.node_selector == {"kubernetes.azure.com/scalesetpriority": "spot"}
    assert aks.node_expressions[-1] == {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["n1", "n2"]}
    custom = placement(job({"spot": {"nodeSelectors": {"onDemand": {"pool": "reserved"}}}}), "onDemand")
    assert custom.node_selector == {"pool": "reserved"} and custom.node_expressions == ()
    assert is_spot_node({"eks.amazonaws.com/capacityType": "SPOT"}) and not is_spot_node({"pool": "a"})


def _failed(code: int, reason: str | None = None, node: str = "n1", trainer: str | None = None) -> WorkerObservation:
    result = Result("failed", reason=trainer) if trainer else None
    return w(0, "Failed", exit_code=code, reason=reason, node=node, result=result)


def test_failure_policy_rules_match_exit_codes_and_reasons_in_order() -> None:
    rules = [
        {"exitCodes": [3], "action": "FailTrial"},
        {"reasons": ["OOMKilled"], "action": "RelaunchElsewhere"},
        {"exitCodes": [4], "action": "FailJob"},
        {"reasons": ["Diverged"], "action": "Retry"},
    ]
    j = job({"failurePolicy": {"rules": rules}})
    running = {"phase": "Running", "attempt": 0}
    p = go(j, (_failed(3),), running)
    assert p.status["phase"] == "Failed" and p.status["conditions"][-1]["reason"] == "FailedByPolicy"
    p = go(j, (_failed(4),), running)
    assert any(c["reason"] == "FailJobByPolicy" for c in p.status["conditions"])
    p = go(j, (_failed(137, "OOMKilled", node="big-1"),), running)
    assert p.status["phase"] == "Restarting" and p.status["restarts"] == 1 and p.status["avoidNodes"] == ["big-1"]
    create = next(a for a in go(j, (), dict(p.status)).actions if isinstance(a, CreateWorker))
    assert create.placement is not None
    assert {
        "key": "kubernetes.io/hostname",
        "operator": "NotIn",
        "values": ["big-1"],
    } in create.placement.node_expressions
    # A diverged loss is normally fatal; the rule makes it a retry (counted against backoffLimit).
    p = go(j, (_failed(1, trainer="Diverged"),), running)
    assert p.status["phase"] == "Restarting" and p.status["restarts"] == 1
    # No rule matches: the default (retry within backoffLimit).
    p = go(j, (_failed(1, "Error"),), running)
    assert p.status["phase"] == "Restarting"


def test_cost_is_counted_once_per_attempt_with_preemption_waste_and_price() -> None:
    j = job({"spot": {"capacity": "spot"}}, resources={"requests": {"cpu": "500m"}})
    prices = {"cpu": {"spot": 0.36, "onDemand": 1.2}}
    status: dict[str, Any] = {
        "phase": "Running",
        "attempt": 0,
        "capacity": "spot",
        "lastCheckpoint": {"step": 5, "time": datetime.fromtimestamp(T0 + 40, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
    }
    p = go(j, (preempted(0),), status, prices=prices)
    cost = p.status["cost"]
    # 50 s of one worker at 0.5 CPU on spot; 10 s of it after the last checkpoint are lost.
    assert cost["cpuSeconds"] == {"spot": 25.0}
    assert cost["wastedSeconds"] == {"preemption": 5.0}
    assert abs(cost["price"] - 25.0 / 3600 * 0.36) < 1e-6
    assert cost["closedAttempt"] == 0
    again = go(j, (preempted(0),), {**p.status, "attempt": 1}, prices=prices)  # the old attempt is not counted twice
    assert again.status["cost"]["cpuSeconds"] == {"spot": 25.0}


def test_a_succeeded_job_counts_its_last_attempt() -> None:
    j = job()
    done = w(
        0,
        "Succeeded",
        exit_code=0,
        result=Result("succeeded", metrics={"test_accuracy": 0.9}),
        started_at=T0,
        finished_at=T0 + 30,
    )
    p = go(j, (done,), {"phase": "Running", "attempt": 0, "capacity": "onDemand"})
    assert p.status["phase"] == "Succeeded" and p.status["cost"]["cpuSeconds"] == {"onDemand": 30.0}


def _rank(rank: int, seconds: float, node: str) -> WorkerObservation:
    beat = Heartbeat(step=50, time=T0 + 50, local_step_s=seconds)
    return WorkerObservation(f"j-w{rank}-a0", rank, 0, "Running", heartbeat=beat, node=node)


def test_a_slow_rank_is_reported_and_with_restart_slow_gang_the_gang_moves_away_from_its_node() -> None:
    gang = (_rank(0, 0.010, "n0"), _rank(1, 0.011, "n1"), _rank(2, 0.035, "slow"))
    watched = job({"stragglers": {"slowRankFactor": 2}}, parallelism={"workers": 3}, batchSize=63)
    p = go(watched, gang, {"phase": "Running", "attempt": 0})
    straggler = next(c for c in p.status["conditions"] if c["type"] == "Straggler")
    assert straggler["status"] == "True" and straggler["reason"] == "SlowRank"
    assert "rank 2 (j-w2-a0 on slow) is 3.3x slower" in straggler["message"]
    assert [e.reason for e in p.events] == ["SlowRank"] and p.status["phase"] == "Running" and not p.actions
    again = go(watched, gang, dict(p.status))
    assert again.events == ()  # reported once
    healed = go(watched, (*gang[:2], _rank(2, 0.012, "slow")), dict(again.status))
    assert next(c for c in healed.status["conditions"] if c["type"] == "Straggler")["status"] == "False"
    moving = job({"stragglers": {"restartSlowGang": True}}, parallelism={"workers": 3}, batchSize=63)
    p = go(moving, gang, {"phase": "Running", "attempt": 0})
    assert p.status["phase"] == "Restarting" and p.status["attempt"] == 1 and p.status["restarts"] == 0
    assert p.status["avoidNodes"] == ["slow"] and p.status["stragglerRestarts"] == 1
    assert sorted(a.name for a in p.actions) == ["j-w0-a0", "j-w1-a0", "j-w2-a0"]  # the old gang stops


def test_equal_ranks_raise_no_straggler_condition() -> None:
    gang = (_rank(0, 0.010, "n0"), _rank(1, 0.012, "n1"))
    p = go(job(parallelism={"workers": 2}), gang, {"phase": "Running", "attempt": 0})
    assert not any(c["type"] == "Straggler" for c in p.status["conditions"])
