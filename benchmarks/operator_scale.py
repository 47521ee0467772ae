"""How does the operator scale? (goals: >= 50 jobs/s, p99 pod-deletion-to-relaunch <= 1 s, operator RSS <= 400 MB)

Everything runs on this machine, in three processes: the test API server (in this process), the fake kubelet
(``python -m kubetune.testing.kubelet``; pods are its child processes) and the real operator
(``kubetune operator --standalone``), so that none of them competes with another for an interpreter lock, and the
operator's peak RSS (VmHWM, children included) can be read from /proc.

1. raw create rate: N ConfigMaps POSTed one after another over one keep-alive HTTP connection — what the emulator
   itself can take, measured in the same run as the figures below;
2. throughput: N TrainingJobs whose pod runs ``true`` (it exits 0 at once) are POSTed the same way; jobs/s is N over
   the time from the first create to the last job Succeeded;
3. relaunch latency: K jobs running ``sleep 60``; one by one, each worker pod ``<job>-w0-a0`` is deleted (grace 0)
   and the time until ``<job>-w0-a1`` is created is taken from the API server's own event stream.

    python benchmarks/operator_scale.py                 # CI-sized: 200 jobs
    python benchmarks/operator_scale.py --jobs 1000 --relaunch-jobs 50 --json

The exit status is 0 even when a goal is missed: this is a measurement; the table says which goals were met.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import http.client
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubetune.api.crd import crd
from kubetune.testing.apiserver import TestAPIServer
from kubetune.testing.apiserver_store import WatchEvent

GOAL_JOBS_PER_S = 50.0
GOAL_RELAUNCH_P99_S = 1.0
GOAL_RSS_MB = 400.0  # decimal megabytes, as the issue states it
NAMESPACE = "default"
GROUP_PATH = "/apis/kubetune.dev/v1alpha1"
TOKEN = "kubetune-test-token"


# -- helpers --------------------------------------------------------------------------------------------------------


def training_job(name: str, command: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {"trainer": {"command": command}, "parallelism": {"workers": 1}, "tracking": {"enabled": False}},
    }


class Client:
    """A sequential HTTP client over one keep-alive connection (no client library in the measured path)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self._connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self._headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}

    def post(self, path: str, body: dict[str, Any]) -> None:
        self._connection.request("POST", path, json.dumps(body), self._headers)
        response = self._connection.getresponse()
        payload = response.read()
        if response.status not in (200, 201):
            raise RuntimeError(f"POST {path}: {response.status} {payload[:300]!r}")

    def close(self) -> None:
        self._connection.close()


class Recorder:
    """Timestamps from the API server's event stream (called under the store's lock: keep it cheap — it wakes no
    thread: waiters poll, which costs the API server nothing; every figure is taken from the timestamps)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.phase_at: dict[str, dict[str, float]] = {}  # job name -> phase -> first time seen
        self.job_added_at: dict[str, float] = {}
        self.pod_added_at: dict[str, float] = {}
        self.pod_phase_at: dict[str, dict[str, float]] = {}  # pod name -> phase -> first time seen
        self.pod_running: set[str] = set()
        self.finished: set[str] = set()  # jobs seen Succeeded or Failed (so that waiting on N jobs is O(1) an event)

    def __call__(self, event: WatchEvent) -> None:
        now = time.monotonic()
        resource = event.key[1]
        if resource not in ("trainingjobs", "pods"):
            return
        name = event.obj.get("metadata", {}).get("name", "")
        with self.lock:
            if resource == "trainingjobs":
                if event.type == "ADDED":
                    self.job_added_at.setdefault(name, now)
                phase = (event.obj.get("status") or {}).get("phase")
                if phase:
                    self.phase_at.setdefault(name, {}).setdefault(phase, now)
                if phase in ("Succeeded", "Failed"):
                    self.finished.add(name)
            else:
                if event.type == "ADDED":
                    self.pod_added_at.setdefault(name, now)
                phase = (event.obj.get("status") or {}).get("phase")
                if phase:
                    self.pod_phase_at.setdefault(name, {}).setdefault(phase, now)
                if phase == "Running":
                    self.pod_running.add(name)

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if predicate():
                    return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(min(left, 0.02))

    def pod_added(self, name: str) -> bool:
        return name in self.pod_added_at

    def count_phase(self, names: list[str], phase: str) -> int:
        return sum(1 for n in names if phase in self.phase_at.get(n, {}))


class RssSampler:
    """Peak resident set of a process and its descendants: the max over samples of the sum of their VmHWM."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.hwm_kib: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        for pid in _descendants(self.pid):
            kib = _vm_hwm_kib(pid)
            if kib is not None:
                self.hwm_kib[pid] = max(kib, self.hwm_kib.get(pid, 0))

    @property
    def peak_bytes(self) -> int:
        return sum(self.hwm_kib.values()) * 1024


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in task.read_text().split())
    return found


def _vm_hwm_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (its threads included), from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request_mix(counts: dict[tuple[str, str], int], before: dict[tuple[str, str], int]) -> dict[str, int]:
    """API requests since ``before`` by method and path shape (object names folded), most frequent first."""
    mix: collections.Counter[str] = collections.Counter()
    for (method, path), n in counts.items():
        shape = re.sub(r"(bench|relaunch)-\d+(-w\d+-a\d+)?", "<name>", path.split("?", 1)[0])
        shape = re.sub(r"/(events|nodes)/[^/]+", r"/\1/<name>", shape)
        mix[f"{method} {shape}"] += n - before.get((method, path), 0)
    return {k: v for k, v in mix.most_common() if v > 0}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (so with few samples p99 is the maximum)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def operator_command(kubeconfig: Path) -> list[str]:
    script = Path(sys.executable).parent / "kubetune"
    found = str(script) if script.exists() else shutil.which("kubetune")
    if found is None:
        raise RuntimeError("the kubetune console script is not installed next to this Python or on PATH")
    return [found, "operator", "--kubeconfig", str(kubeconfig), "--standalone", "--metrics-port", "0"]


def start_kubelet(kubeconfig: Path, workdir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """The fake kubelet in a process of its own; returns once it says ``ready``."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubetune.testing.kubelet",
                "--kubeconfig",
                str(kubeconfig),
                "--workdir",
                str(workdir),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=workdir.parent,
            start_new_session=True,
        )
    assert process.stdout is not None
    line = process.stdout.readline()  # "ready", or "" when it died
    if line.strip() != b"ready":
        stop_process(process)
        raise RuntimeError(f"the fake kubelet did not start:\n{log_path.read_text()[-3000:]}")
    return process


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# -- the benchmark --------------------------------------------------------------------------------------------------


def run_benchmark(
    jobs: int = 200,
    relaunch_jobs: int = 20,
    resync_seconds: float = 2.0,
    operator_log: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    say = progress or (lambda message: None)
    workdir = Path(tempfile.mkdtemp(prefix="kubetune-operator-scale-"))
    log_path = workdir / "operator.log"
    api = TestAPIServer(history=max(10_000, jobs * 40))
    recorder = Recorder()
    kubelet: subprocess.Popen[bytes] | None = None
    process: subprocess.Popen[bytes] | None = None
    sampler: RssSampler | None = None
    client: Client | None = None
    try:
        api.start()
        api.store.subscribe(recorder)
        kubeconfig = api.write_kubeconfig(workdir / "kubeconfig.yaml")
        api.create(crd())
        kubelet = start_kubelet(kubeconfig, workdir / "kubelet", workdir / "kubelet.log")

        env = {k: v for k, v in os.environ.items() if k != "KUBETUNE_MLFLOW_TRACKING_URI"}
        env.update(KUBECONFIG=str(kubeconfig), KUBETUNE_RESYNC_SECONDS=str(resync_seconds), PYTHONUNBUFFERED="1")
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                operator_command(kubeconfig),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                start_new_session=True,
            )
        sampler = RssSampler(process.pid)
        sampler.start()
        client = Client(api.url)
        jobs_path = f"{GROUP_PATH}/namespaces/{NAMESPACE}/trainingjobs"

        # Warm-up: the operator is up once a job goes all the way to Succeeded.
        say("starting the operator (warm-up job)")
        started = time.monotonic()
        client.post(jobs_path, training_job("warmup", ["true"]))
        recorder.wait(
            lambda: "Succeeded" in recorder.phase_at.get("warmup", {}) or process.poll() is not None,
            90,
            "the warm-up job to succeed",
        )
        if process.poll() is not None:
            raise RuntimeError(f"the operator exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        warmup_s = time.monotonic() - started

        # Phase 1: the emulator's raw create rate.
        say(f"phase 1: {jobs} ConfigMaps")
        started = time.monotonic()
        for i in range(jobs):
            client.post(
                f"/api/v1/namespaces/{NAMESPACE}/configmaps",
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"raw-{i:05d}"},
                    "data": {"key": "value"},
                },
            )
        raw_s = time.monotonic() - started
        raw_rate = jobs / raw_s

        # Phase 2: throughput.
        say(f"phase 2: {jobs} TrainingJobs running `true`")
        names = [f"bench-{i:05d}" for i in range(jobs)]
        counts_before = dict(api.counts)
        requests_before, operator_cpu_before, harness_cpu_before, kubelet_cpu_before = (
            api.request_count(),
            cpu_seconds(process.pid),
            time.process_time(),
            cpu_seconds(kubelet.pid),
        )
        started = time.monotonic()
        for name in names:
            client.post(jobs_path, training_job(name, ["true"]))
        created_s = time.monotonic() - started

        wanted = set(names)

        def done() -> bool:
            return len(recorder.finished & wanted) >= jobs if len(recorder.finished) >= jobs else False

        deadline = time.monotonic() + max(120.0, jobs * 0.5)
        while not done() and time.monotonic() < deadline:
            try:
                recorder.wait(done, min(10.0, max(0.0, deadline - time.monotonic())), f"{jobs} jobs to finish")
            except TimeoutError:
                say(
                    f"  {time.monotonic() - started:.0f} s: {recorder.count_phase(names, 'Succeeded')} of {jobs} "
                    f"succeeded, {sum(1 for n in names if f'{n}-w0-a0' in recorder.pod_added_at)} pods created"
                )
        if not done():
            say(f"  gave up: {recorder.count_phase(names, 'Succeeded')} of {jobs} succeeded")
        succeeded = recorder.count_phase(names, "Succeeded")
        failed = recorder.count_phase(names, "Failed")
        finished = [
            recorder.phase_at[n].get("Succeeded", recorder.phase_at[n].get("Failed", 0.0))
            for n in names
            if n in recorder.phase_at
        ]
        last_done = max(finished, default=time.monotonic())
        total_s = (last_done - started) if succeeded + failed == jobs else time.monotonic() - started

        breakdown = stages(recorder, names, started)
        breakdown["phase2_api_requests"] = api.request_count() - requests_before
        breakdown["phase2_request_mix"] = request_mix(dict(api.counts), counts_before)
        breakdown["phase2_operator_cpu_s"] = round(cpu_seconds(process.pid) - operator_cpu_before, 2)
        breakdown["phase2_harness_cpu_s"] = round(time.process_time() - harness_cpu_before, 2)
        breakdown["phase2_kubelet_cpu_s"] = round(cpu_seconds(kubelet.pid) - kubelet_cpu_before, 2)
        # The same per job (what a change to the operator or the emulator moves, however loaded the machine is).
        breakdown["phase2_per_job"] = {
            "operator_cpu_ms": round(1000 * breakdown["phase2_operator_cpu_s"] / jobs, 2),
            "api_server_cpu_ms": round(1000 * breakdown["phase2_harness_cpu_s"] / jobs, 2),
            "kubelet_cpu_ms": round(1000 * breakdown["phase2_kubelet_cpu_s"] / jobs, 2),
            "api_requests": round(breakdown["phase2_api_requests"] / jobs, 2),
        }

        # Phase 3: relaunch latency.
        say(f"phase 3: {relaunch_jobs} relaunches")
        sleepers = [f"relaunch-{i:03d}" for i in range(relaunch_jobs)]
        for name in sleepers:
            client.post(jobs_path, training_job(name, ["sleep", "60"]))
        first_pods = [f"{n}-w0-a0" for n in sleepers]
        relaunch: list[float] = []
        try:
            recorder.wait(
                lambda: all(p in recorder.pod_running for p in first_pods), 120, f"{relaunch_jobs} sleeping pods to run"
            )
            recorder.wait(
                lambda: recorder.count_phase(sleepers, "Running") == len(sleepers),
                60,
                f"{relaunch_jobs} sleeping jobs to be Running",
            )
        except TimeoutError as error:
            say(f"  {error}: relaunches not measured")
        ready = [n for n in sleepers if f"{n}-w0-a0" in recorder.pod_running]
        for name in ready:
            if len(relaunch) >= 3 and not any(math.isfinite(x) for x in relaunch[-3:]):
                break  # three in a row timed out: the rest would too
            deleted_at = time.monotonic()
            api.delete("pods", f"{name}-w0-a0", NAMESPACE, grace_seconds=0)
            second = f"{name}-w0-a1"
            try:
                recorder.wait(functools.partial(recorder.pod_added, second), 30, f"{second} to be created")
                relaunch.append(recorder.pod_added_at[second] - deleted_at)
            except TimeoutError:
                relaunch.append(math.inf)
            time.sleep(0.05)

        # Clean up the sleepers (so their processes go) while the operator still runs.
        for name in sleepers:
            with contextlib.suppress(Exception):  # best effort
                api.delete("trainingjobs", name, NAMESPACE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(api.get("trainingjobs", n, NAMESPACE) for n in sleepers):
            time.sleep(0.1)

        sampler.stop()
        peak = sampler.peak_bytes
        finite = [x for x in relaunch if math.isfinite(x)]
        jobs_per_s = succeeded / total_s if total_s > 0 else 0.0
        p50 = percentile(relaunch, 50) if relaunch else math.nan
        p99 = percentile(relaunch, 99) if relaunch else math.nan
        result: dict[str, Any] = {
            "jobs": jobs,
            "jobs_succeeded": succeeded,
            "jobs_failed": failed,
            "warmup_s": round(warmup_s, 3),
            "raw_creates_per_s": round(raw_rate, 1),
            "job_creates_per_s": round(jobs / created_s, 1),
            "jobs_total_s": round(total_s, 3),
            "jobs_per_s": round(jobs_per_s, 1),
            "jobs_ratio_to_raw": round(jobs_per_s / raw_rate, 3),
            **breakdown,
            "relaunch_samples": len(relaunch),
            "relaunch_timeouts": len(relaunch) - len(finite),
            "relaunch_p50_s": round(p50, 3) if math.isfinite(p50) else None,
            "relaunch_p99_s": round(p99, 3) if math.isfinite(p99) else None,
            "relaunch_max_s": round(max(relaunch), 3) if finite and len(finite) == len(relaunch) else None,
            "relaunch_mean_s": round(statistics.fmean(finite), 3) if finite else None,
            "operator_peak_rss_mib": round(peak / 2**20, 1),
            "operator_processes": len(sampler.hwm_kib),
            "resync_seconds": resync_seconds,
        }
        result["goals"] = {
            "jobs_per_s": {"goal": f">= {GOAL_JOBS_PER_S:g}", "met": jobs_per_s >= GOAL_JOBS_PER_S},
            "relaunch_p99_s": {
                "goal": f"<= {GOAL_RELAUNCH_P99_S:g}",
                "met": bool(relaunch) and p99 <= GOAL_RELAUNCH_P99_S,
            },
            "operator_peak_rss": {"goal": f"<= {GOAL_RSS_MB:g} MB", "met": peak <= GOAL_RSS_MB * 1e6},
        }
        return result
    finally:
        if client is not None:
            client.close()
        if sampler is not None:
            sampler.stop()
        if process is not None:
            stop_process(process)
        if kubelet is not None:
            stop_process(kubelet)
        api.stop()
        if operator_log is not None and log_path.exists():
            shutil.copyfile(log_path, operator_log)
        shutil.rmtree(workdir, ignore_errors=True)


def stages(recorder: Recorder, names: list[str], started: float) -> dict[str, Any]:
    """Where a job's time goes: job created -> worker pod created (operator) -> pod finished (fake kubelet) -> job
    Succeeded (operator); medians over the jobs, and when the last of each stage happened (from the first create)."""
    spans: dict[str, list[float]] = {"operator_pod_create": [], "kubelet_run": [], "operator_job_done": []}
    last: dict[str, float] = {"last_pod_created_s": 0.0, "last_pod_finished_s": 0.0, "last_job_succeeded_s": 0.0}
    for name in names:
        pod = f"{name}-w0-a0"
        created, pod_added = recorder.job_added_at.get(name), recorder.pod_added_at.get(pod)
        pod_phases, job_phases = recorder.pod_phase_at.get(pod, {}), recorder.phase_at.get(name, {})
        pod_done = pod_phases.get("Succeeded", pod_phases.get("Failed"))
        job_done = job_phases.get("Succeeded")
        if created is not None and pod_added is not None:
            spans["operator_pod_create"].append(pod_added - created)
            last["last_pod_created_s"] = max(last["last_pod_created_s"], pod_added - started)
        if pod_added is not None and pod_done is not None:
            spans["kubelet_run"].append(pod_done - pod_added)
            last["last_pod_finished_s"] = max(last["last_pod_finished_s"], pod_done - started)
        if pod_done is not None and job_done is not None:
            spans["operator_job_done"].append(job_done - pod_done)
            last["last_job_succeeded_s"] = max(last["last_job_succeeded_s"], job_done - started)
    out: dict[str, Any] = {f"median_{k}_s": round(statistics.median(v), 3) if v else None for k, v in spans.items()}
    out.update({k: round(v, 3) for k, v in last.items()})
    return out


def table(result: dict[str, Any]) -> str:
    goals = result["goals"]
    per_job = result["phase2_per_job"]

    def met(key: str) -> str:
        return "met" if goals[key]["met"] else "MISSED"

    rows = [
        ("emulator raw creates/s", f"{result['raw_creates_per_s']:.1f}", "", ""),
        (
            "jobs/s (create -> all Succeeded)",
            f"{result['jobs_per_s']:.1f}",
            goals["jobs_per_s"]["goal"],
            met("jobs_per_s"),
        ),
        ("  ratio to raw create rate", f"{result['jobs_ratio_to_raw']:.3f}", "", ""),
        ("  jobs succeeded", f"{result['jobs_succeeded']}/{result['jobs']} in {result['jobs_total_s']:.2f} s", "", ""),
        (
            "  last pod created / finished s",
            f"{result['last_pod_created_s']:.2f} / {result['last_pod_finished_s']:.2f}",
            "",
            "",
        ),
        (
            "  median job->pod, pod run, pod->job Succeeded s",
            f"{result['median_operator_pod_create_s']} / {result['median_kubelet_run_s']} / "
            f"{result['median_operator_job_done_s']}",
            "",
            "",
        ),
        (
            "  CPU s: operator / API server / fake kubelet",
            f"{result['phase2_operator_cpu_s']} / {result['phase2_harness_cpu_s']} / {result['phase2_kubelet_cpu_s']}",
            "",
            "",
        ),
        (
            "  CPU ms per job: operator / API server / fake kubelet",
            f"{per_job['operator_cpu_ms']} / {per_job['api_server_cpu_ms']} / {per_job['kubelet_cpu_ms']}",
            "",
            "",
        ),
        (
            "  API requests (all clients)",
            f"{result['phase2_api_requests']} ({per_job['api_requests']} per job)",
            "",
            "",
        ),
        ("relaunch p50 s", f"{result['relaunch_p50_s']}", "", ""),
        ("relaunch p99 s", f"{result['relaunch_p99_s']}", goals["relaunch_p99_s"]["goal"], met("relaunch_p99_s")),
        ("relaunch max s", f"{result['relaunch_max_s']} (n={result['relaunch_samples']})", "", ""),
        (
            "operator peak RSS MiB",
            f"{result['operator_peak_rss_mib']:.1f}",
            goals["operator_peak_rss"]["goal"],
            met("operator_peak_rss"),
        ),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'measure':<{width}}  {'value':>24}  {'goal':>10}  met", "-" * (width + 44)]
    lines += [f"{a:<{width}}  {b:>24}  {c:>10}  {d}" for a, b, c, d in rows]
    summary = ", ".join(f"{k}: {'met' if v['met'] else 'missed'}" for k, v in goals.items())
    lines.append(f"goals: {summary}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=200, help="TrainingJobs (200 CI-sized, 1000 on request)")
    parser.add_argument("--relaunch-jobs", type=int, default=20, help="pod deletions timed for relaunch latency")
    parser.add_argument("--resync-seconds", type=float, default=2.0, help="KUBETUNE_RESYNC_SECONDS for the operator")
    parser.add_argument("--operator-log", type=Path, default=None, help="keep the operator's log here")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    progress = None if args.json else (lambda message: print(message, file=sys.stderr, flush=True))
    result = run_benchmark(args.jobs, args.relaunch_jobs, args.resync_seconds, args.operator_log, progress)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
