"""The fake kubelet schedules pods onto fake nodes, runs them as local processes and keeps their status true."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubetune.testing.apiserver import TestAPIServer
from kubetune.testing.apiserver_store import WatchEvent
from kubetune.testing.kubelet import FakeKubelet
from kubetune.testing.kubelet_placement import on_demand_node

from .conftest import wait_for

SPOT_TOLERATION = {
    "key": "kubernetes.azure.com/scalesetpriority",
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}


@pytest.fixture
def kubelet(api: TestAPIServer, tmp_path: Path) -> Iterator[FakeKubelet]:
    with FakeKubelet(api.url, workdir=tmp_path / "kubelet", node_loss_delay=0.3) as fake:
        yield fake
    assert fake.errors == []


def _pod(
    name: str, code: str, *, env: list[dict[str, Any]] | None = None, restart: str = "Never", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": restart,
            **spec,
            "containers": [
                {"name": "main", "image": "kubetune/trainer", "command": ["python", "-c", code], "env": env or []}
            ],
        },
    }


def _phase(api: TestAPIServer, name: str, *phases: str) -> dict[str, Any] | None:
    pod = api.get("pods", name)
    return pod if pod is not None and pod["status"].get("phase") in phases else None


def _finished(api: TestAPIServer, name: str) -> dict[str, Any]:
    return wait_for(lambda: _phase(api, name, "Succeeded", "Failed"), timeout=15, what=f"pod {name} to finish")


def test_fake_nodes_are_registered_ready_with_their_labels_and_taints(api: TestAPIServer, kubelet: FakeKubelet) -> None:
    nodes = {n["metadata"]["name"]: n for n in api.objects("nodes")}
    assert sorted(nodes) == ["ondemand-1", "ondemand-2", "spot-1", "spot-2"]
    assert nodes["ondemand-1"]["metadata"]["labels"]["node.kubernetes.io/capacity"] == "on-demand"
    spot = nodes["spot-1"]
    assert spot["metadata"]["labels"]["karpenter.sh/capacity-type"] == "spot"
    assert spot["metadata"]["labels"]["cloud.google.com/gke-spot"] == "true"
    assert spot["spec"]["taints"] == [
        {"key": "kubernetes.azure.com/scalesetpriority", "value": "spot", "effect": "NoSchedule"}
    ]
    assert all(c["status"] == "True" for n in nodes.values() for c in n["status"]["conditions"] if c["type"] == "Ready")


def test_a_succeeding_pod_reports_its_exit_code_and_termination_message(
    api: TestAPIServer, kubelet: FakeKubelet
) -> None:
    code = textwrap.dedent("""
        import os
        print("hello from", os.environ["POD_NAME"], os.environ["POD_NAMESPACE"], os.environ["GREETING"])
        open(os.environ["KUBETUNE_RESULT_FILE"], "w").write('{"accuracy": 0.9}')
    """)
    env: list[dict[str, Any]] = [
        {"name": "GREETING", "value": "hi"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    api.create(_pod("ok", code, env=env))
    pod = _finished(api, "ok")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["nodeName"].startswith("ondemand-")
    assert pod["status"]["podIP"] == "127.0.0.1"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert terminated["message"] == '{"accuracy": 0.9}'
    assert {"startedAt", "finishedAt"} <= set(terminated)
    assert "hello from ok default hi" in kubelet.log("ok")
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["PodScheduled"] == "True"


def test_a_failing_pod_reports_failed_with_its_exit_code(api: TestAPIServer, kubelet: FakeKubelet) -> None:
    api.create(_pod("bad", "import sys; sys.exit(3)"))
    pod = _finished(api, "bad")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")


def test_a_running_pod_is_running_and_ready(api: TestAPIServer, kubelet: FakeKubelet) -> None:
    api.create(_pod("sleeper", "import time; time.sleep(60)"))
    pod = wait_for(lambda: _phase(api, "sleeper", "Running"), what="Running")
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] is True and "running" in status["state"]
    assert pod["status"]["startTime"]


def test_on_failure_restarts_count_up(api: TestAPIServer, tmp_path: Path) -> None:
    marker = tmp_path / "attempts"
    code = (
        f"import pathlib, sys; p = pathlib.Path({str(marker)!r}); p.write_text(p.read_text() + 'x' "
        f"if p.exists() else 'x'); sys.exit(0 if len(p.read_text()) >= 3 else 1)"
    )
    with FakeKubelet(api.url, workdir=tmp_path / "k", restart_backoff=0.05):
        api.create(_pod("flaky", code, restart="OnFailure"))
        pod = _finished(api, "flaky")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 2
    assert marker.read_text() == "xxx"


def test_spot_pods_go_to_spot_nodes_only_with_selector_and_toleration(api: TestAPIServer, kubelet: FakeKubelet) -> None:
    api.create(_pod("spot", "pass", nodeSelector={"karpenter.sh/capacity-type": "spot"}, tolerations=[SPOT_TOLERATION]))
    api.create(_pod("no-toleration", "pass", nodeSelector={"karpenter.sh/capacity-type": "spot"}))
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "karpenter.sh/capacity-type", "operator": "NotIn", "values": ["spot"]}
                        ]
                    }
                ]
            }
        }
    }
    api.create(_pod("not-spot", "pass", affinity=affinity, tolerations=[{"operator": "Exists"}]))
    assert _finished(api, "spot")["spec"]["nodeName"].startswith("spot-")
    assert _finished(api, "not-spot")["spec"]["nodeName"].startswith("ondemand-")
    # The probe's falsy answers (None, False) never come back from wait_for: only the pod does.
    pending = cast(
        "dict[str, Any]",
        wait_for(
            lambda: (
                (p := api.get("pods", "no-toleration"))
                and any(
                    c["type"] == "PodScheduled" and c["status"] == "False" for c in p["status"].get("conditions", [])
                )
                and p
            ),
            what="Unschedulable",
        ),
    )
    assert pending["status"]["phase"] == "Pending" and not pending["spec"].get("nodeName")


def test_service_names_ports_and_volumes_are_rewritten_for_local_runs(api: TestAPIServer, kubelet: FakeKubelet) -> None:
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "job-a", "namespace": "default"},
            "spec": {"clusterIP": "None", "selector": {"job": "a"}},
        }
    )
    code = textwrap.dedent("""
        import os, json
        keys = ["MASTER_ADDR", "PEER", "HEADLESS", "MASTER_PORT", "CKPT", "SCRATCH", "KUBECONFIG",
                "KUBETUNE_SLOWDOWN"]
        open(os.environ["KUBETUNE_RESULT_FILE"], "w").write(json.dumps({k: os.environ.get(k) for k in keys}))
        os.makedirs(os.environ["CKPT"], exist_ok=True)
        open(os.path.join(os.environ["CKPT"], "written"), "w").write("x")
    """)
    env = [
        {"name": "MASTER_ADDR", "value": "job-a-0.job-a"},
        {"name": "PEER", "value": "job-a-1.job-a.default.svc.cluster.local"},
        {"name": "HEADLESS", "value": "job-a"},
        {"name": "MASTER_PORT", "value": "29500"},
        {"name": "CKPT", "value": "/ckpt/run"},
        {"name": "SCRATCH", "value": "/scratch"},
    ]

    results: list[dict[str, Any]] = []
    kubelet.slow_node("ondemand-1", 3.0)
    for name in ("job-a-0", "job-a-1"):
        pod = _pod(
            name,
            code,
            env=env,
            subdomain="job-a",
            hostname=name,
            nodeSelector={"kubernetes.io/hostname": "ondemand-1"},
            volumes=[
                {"name": "ckpt", "persistentVolumeClaim": {"claimName": "shared"}},
                {"name": "scratch", "emptyDir": {}},
            ],
        )
        pod["spec"]["containers"][0]["volumeMounts"] = [
            {"name": "ckpt", "mountPath": "/ckpt"},
            {"name": "scratch", "mountPath": "/scratch"},
        ]
        api.create(pod)
        finished = _finished(api, name)
        assert finished["status"]["phase"] == "Succeeded", kubelet.log(name)
        results.append(json.loads(finished["status"]["containerStatuses"][0]["state"]["terminated"]["message"]))
    first, second = results
    assert first["MASTER_ADDR"] == first["PEER"] == first["HEADLESS"] == "127.0.0.1"
    assert first["MASTER_PORT"] != "29500" and first["MASTER_PORT"] == second["MASTER_PORT"]
    assert first["CKPT"] == second["CKPT"] and first["CKPT"].endswith("pvc/default/shared/run")
    assert first["SCRATCH"] != second["SCRATCH"]
    assert os.path.exists(os.path.join(first["CKPT"], "written"))
    assert first["KUBECONFIG"] and os.path.exists(first["KUBECONFIG"])
    assert first["KUBETUNE_SLOWDOWN"] == "3.0"


def test_deleting_a_running_pod_terminates_it_gracefully(api: TestAPIServer, kubelet: FakeKubelet) -> None:
    code = textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
        print("handler installed", flush=True)
        while True:
            time.sleep(0.05)
    """)
    api.create(_pod("graceful", code))
    wait_for(lambda: _phase(api, "graceful", "Running"), what="Running")
    wait_for(lambda: "handler installed" in kubelet.log("graceful"), what="the SIGTERM handler")
    pid = kubelet.pids()[0]
    finals: list[dict[str, Any]] = []
    api.store.subscribe(lambda e: finals.append(e.obj) if e.type == "DELETED" else None)
    api.delete("pods", "graceful")
    terminating = api.get("pods", "graceful")
    assert terminating is not None and terminating["metadata"]["deletionTimestamp"]
    wait_for(lambda: api.get("pods", "graceful") is None, what="the kubelet to finish the deletion")
    terminated = finals[-1]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 7
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_preemption_marks_disruption_target_then_deletes_after_sigterm(
    api: TestAPIServer, kubelet: FakeKubelet
) -> None:
    api.create(
        _pod(
            "victim",
            "import time; time.sleep(60)",
            tolerations=[SPOT_TOLERATION],
            nodeSelector={"karpenter.sh/capacity-type": "spot"},
        )
    )
    wait_for(lambda: _phase(api, "victim", "Running"), what="Running")
    events: list[WatchEvent] = []
    api.store.subscribe(events.append)
    kubelet.preempt("victim")
    wait_for(lambda: api.get("pods", "victim") is None, what="the preempted pod to go")
    pod_events = [e for e in events if e.key == ("", "pods") and e.obj["metadata"]["name"] == "victim"]
    last = pod_events[-1].obj
    disruption = [c for c in last["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert disruption and disruption[0]["reason"] == "PreemptionByScheduler"
    assert last["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143  # SIGTERM
    assert pod_events[-1].type == "DELETED"


def test_eviction_api_marks_disruption_target(api: TestAPIServer, kubelet: FakeKubelet) -> None:
    api.create(_pod("evicted", "import time; time.sleep(60)"))
    wait_for(lambda: _phase(api, "evicted", "Running"), what="Running")
    events: list[WatchEvent] = []
    api.store.subscribe(events.append)
    kubelet.evict("evicted")
    wait_for(lambda: api.get("pods", "evicted") is None, what="the evicted pod to go")
    reasons = {
        c.get("reason")
        for e in events
        if e.key == ("", "pods")
        for c in e.obj["status"].get("conditions", [])
        if c["type"] == "DisruptionTarget"
    }
    assert reasons == {"EvictionByEvictionAPI"}


def test_losing_a_node_kills_its_pods_and_marks_it_not_ready(api: TestAPIServer, kubelet: FakeKubelet) -> None:
    api.create(_pod("lost", "import time; time.sleep(60)", nodeSelector={"kubernetes.io/hostname": "ondemand-2"}))
    wait_for(lambda: _phase(api, "lost", "Running"), what="Running")
    pid = kubelet.pids()[0]
    kubelet.lose_node("ondemand-2")
    node = api.get("nodes", "ondemand-2", None)
    assert node is not None
    assert [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"] == ["Unknown"]
    assert {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}.items() <= node["spec"]["taints"][
        -1
    ].items()
    wait_for(lambda: api.get("pods", "lost") is None, what="the lost node's pod to be deleted")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    api.create(_pod("after", "pass", nodeSelector={"kubernetes.io/hostname": "ondemand-2"}))
    wait_for(lambda: (p := api.get("pods", "after")) and p["status"].get("conditions"), what="a scheduling verdict")
    assert not api.get("pods", "after")["spec"].get("nodeName")  # type: ignore[index]


def test_stop_leaves_no_process_behind(api: TestAPIServer, tmp_path: Path) -> None:
    with FakeKubelet(api.url, workdir=tmp_path / "k") as fake:
        api.create(_pod("forever", "import time; time.sleep(600)"))
        wait_for(lambda: _phase(api, "forever", "Running"), what="Running")
        pids = fake.pids()
    assert len(pids) == 1
    wait_for(lambda: not _alive(pids[0]), timeout=5, what="the process to die")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead too
            return stat.read().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or reaped between open() and read()
        return False


def test_python_is_this_interpreter(api: TestAPIServer, kubelet: FakeKubelet) -> None:
    api.create(_pod("which", "import os, sys; open(os.environ['KUBETUNE_RESULT_FILE'], 'w').write(sys.executable)"))
    pod = _finished(api, "which")
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == sys.executable


def test_a_kubelet_from_a_kubeconfig_uses_its_server(api: TestAPIServer, kubeconfig: Path, tmp_path: Path) -> None:
    with FakeKubelet.from_kubeconfig(kubeconfig, workdir=tmp_path / "k", nodes=[on_demand_node("solo")]) as fake:
        assert fake.api_url == api.url and fake.kubeconfig == kubeconfig
        api.create(_pod("solo-pod", "pass"))
        assert _finished(api, "solo-pod")["spec"]["nodeName"] == "solo"
    node = api.get("nodes", "solo", None)
    assert node is not None and [c["status"] for c in node["status"]["conditions"]] == ["Unknown"]


def test_kubectl_logs_and_events_of_a_pod(api: TestAPIServer, kubelet: FakeKubelet, core: Any) -> None:
    api.serve_logs_from(kubelet.workdir)
    api.create(_pod("chatty", "print('line one'); print('line two')"))
    _finished(api, "chatty")
    assert core.read_namespaced_pod_log("chatty", "default") == "line one\nline two\n"
    assert core.read_namespaced_pod_log("chatty", "default", tail_lines=1) == "line two\n"
    reasons = [e["reason"] for e in api.objects("events", "default", field_selector="involvedObject.name=chatty")]
    assert {"Scheduled", "Started"} <= set(reasons)
