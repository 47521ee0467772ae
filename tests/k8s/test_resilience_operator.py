"""Spot capacity, failure policies and straggler replication with the real operator, the test API server and the
fake kubelet (on-demand nodes ondemand-1/2, tainted spot nodes spot-1/2)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubetune.testing.devcluster import DevCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    with DevCluster(tmp_path_factory.mktemp("resilience-cluster")) as dev:
        yield dev


def wait_for(predicate: Callable[[], Any], timeout: float = 240, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def status_of(cluster: DevCluster, name: str) -> dict[str, Any]:
    return dict((cluster.api.get("trainingjobs", name) or {}).get("status") or {})


def pod(cluster: DevCluster, name: str) -> dict[str, Any] | None:
    return cluster.api.get("pods", name)


def job(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "trainer": {"model": {"family": "mlp", "depth": 1, "width": 32}, "dataset": "digits"},
            "hyperparameters": {"epochs": 40},
            "checkpoint": {"everySteps": 20},
            "tracking": {"enabled": False},
            **spec,
        },
    }


def test_a_preempted_spot_pod_relaunches_without_counting_and_falls_back_to_on_demand(cluster: DevCluster) -> None:
    spot = {"spot": {"capacity": "spotThenOnDemand", "fallbackAfterPreemptions": 1}}
    cluster.api.create(job("spotty", resilience=spot), namespace="default")
    first = wait_for(
        lambda: (
            (p := pod(cluster, "spotty-w0-a0"))
            and p["spec"].get("nodeName")
            and p["status"].get("phase") == "Running"
            and p
        ),
        what="the first worker to run",
    )
    assert first["spec"]["nodeName"].startswith("spot-")
    assert first["spec"]["nodeSelector"] == {"karpenter.sh/capacity-type": "spot"}
    assert first["metadata"]["labels"]["kubetune.dev/capacity"] == "spot"
    wait_for(lambda: status_of(cluster, "spotty").get("workers", [{}])[0].get("step", 0) > 0, what="training steps")
    assert cluster.kubelet is not None
    cluster.kubelet.preempt("spotty-w0-a0")
    second = wait_for(
        lambda: (p := pod(cluster, "spotty-w0-a1")) and p["spec"].get("nodeName") and p,
        what="the relaunched worker",
    )
    assert second["spec"]["nodeName"].startswith("ondemand-")  # fallen back after one preemption
    expressions = second["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ][0]["matchExpressions"]
    assert {"key": "karpenter.sh/capacity-type", "operator": "NotIn", "values": ["spot"]} in expressions
    wait_for(lambda: status_of(cluster, "spotty").get("phase") == "Succeeded", what="success")
    status = status_of(cluster, "spotty")
    assert status["preemptions"] == 1 and status["restarts"] == 0 and status["capacity"] == "onDemand"
    assert set(status["cost"]["cpuSeconds"]) == {"spot", "onDemand"}
    reasons = {e["reason"] for e in cluster.api.objects("events", "default") if e["involvedObject"]["name"] == "spotty"}
    assert {"WorkerPreempted", "CapacityFallback"} <= reasons


def _exits(code: int) -> dict[str, Any]:
    return {"command": ["python", "-c", f"import sys; sys.exit({code})"]}


def test_failure_policy_rules_act_on_exit_codes(cluster: DevCluster) -> None:
    rules = {"rules": [{"exitCodes": [3], "action": "FailTrial"}, {"exitCodes": [5], "action": "RelaunchElsewhere"}]}
    cluster.api.create(job("exit3", trainer=_exits(3), resilience={"failurePolicy": rules}), namespace="default")
    cluster.api.create(
        job("exit5", trainer=_exits(5), backoffLimit=1, resilience={"failurePolicy": rules}), namespace="default"
    )
    wait_for(lambda: status_of(cluster, "exit3").get("phase") == "Failed", what="exit3 to fail")
    three = status_of(cluster, "exit3")
    assert three["restarts"] == 0
    assert next(c for c in three["conditions"] if c["type"] == "Failed")["reason"] == "FailedByPolicy"
    wait_for(lambda: status_of(cluster, "exit5").get("phase") == "Failed", what="exit5 to fail")
    five = status_of(cluster, "exit5")
    assert five["restarts"] == 1 and five["avoidNodes"]
    assert next(c for c in five["conditions"] if c["type"] == "Failed")["reason"] == "BackoffLimitExceeded"
    first, second = pod(cluster, "exit5-w0-a0"), pod(cluster, "exit5-w0-a1")
    assert first is not None and second is not None
    assert second["spec"]["nodeName"] != first["spec"]["nodeName"]  # relaunched elsewhere
    assert first["spec"]["nodeName"] in five["avoidNodes"]


def test_a_slow_node_makes_a_trial_replicate_and_the_loser_is_cancelled(cluster: DevCluster) -> None:
    assert cluster.kubelet is not None
    cluster.kubelet.slow_node("ondemand-1", 25.0)
    try:
        study = job(
            "race",
            hyperparameters={"epochs": 3},
            checkpoint={"everySteps": 0},
            resilience={"stragglers": {"policy": "singleFork", "forkWhenDone": 0.5, "replicas": 1}},
            tuning={
                "objective": {"metric": "val_accuracy"},
                "parameters": [{"name": "momentum", "type": "float", "min": 0.8, "max": 0.9}],
                "sampler": {"name": "random", "seed": 0},
                "maxTrials": 2,
                "parallelTrials": 2,
            },
        )
        cluster.api.create(study, namespace="default")
        wait_for(lambda: status_of(cluster, "race").get("phase") == "Succeeded", timeout=300, what="the study")
    finally:
        cluster.kubelet.slow_node("ondemand-1", 1.0)
    status = status_of(cluster, "race")
    assert status["trials"]["complete"] == 2
    assert status["cost"]["wastedSeconds"]["replicas"] > 0
    children = cluster.api.objects("trainingjobs", "default", label_selector="kubetune.dev/study=race")
    names = {c["metadata"]["name"]: c for c in children}
    replicas = [n for n in names if "r" in n.rsplit("-t", 1)[1]]
    assert len(replicas) == 1, sorted(names)
    replica = names[replicas[0]]
    original = names[replicas[0].rsplit("r", 1)[0]]
    assert replica["status"]["phase"] == "Succeeded"  # the copy on the fast node won
    assert original["metadata"]["annotations"]["kubetune.dev/stop"] == "Cancelled"
    name = original["metadata"]["name"]
    # The loser stops gracefully at its next step boundary (slow on its node), then ends Stopped.
    wait_for(lambda: status_of(cluster, name).get("phase") == "Stopped", timeout=180, what=f"{name} to stop")
    assert replica["spec"] == original["spec"]  # the same values and seed
