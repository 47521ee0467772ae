"""``kubetune dev-cluster``: the test API server, the fake kubelet and the real operator, started together.

Decides: how the three harness pieces are wired — a kubeconfig for the API server (written where asked), the
TrainingJob CRD applied, fake on-demand and spot nodes, the operator (the same kopf handlers as in a cluster) in a
background thread with MLflow on a SQLite file in the working directory. It is a test harness for trying the
Kubernetes path with the real kubectl on a laptop without Docker, not a cluster: pods are local processes, there is
no networking, no scheduler beyond the fake kubelet's placement, no admission and no authentication.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import TracebackType

from kubetune.api.crd import crd
from kubetune.operator.settings import OperatorSettings
from kubetune.testing.apiserver import TestAPIServer
from kubetune.testing.kubelet import FakeKubelet


class DevCluster:
    """``with DevCluster(workdir) as cluster: cluster.kubeconfig ...`` (the operator runs in a thread)."""

    def __init__(
        self,
        workdir: str | Path,
        *,
        kubeconfig: str | Path | None = None,
        operator: bool = True,
        settings: OperatorSettings | None = None,
        port: int = 0,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.kubeconfig = Path(kubeconfig).resolve() if kubeconfig else self.workdir / "kubeconfig.yaml"
        self.with_operator = operator
        self.settings = settings or OperatorSettings(
            metrics_port=0,
            tracking_uri=f"sqlite:///{self.workdir / 'mlflow.db'}",
            progress_interval_seconds=1.0,
            resync_seconds=2.0,
            termination_grace_seconds=30,
            study_dir=str(self.workdir / "studies"),
        )
        self.api = TestAPIServer(port=port)
        self.kubelet: FakeKubelet | None = None
        self._operator_thread: threading.Thread | None = None
        self._operator_stop = threading.Event()

    def __enter__(self) -> DevCluster:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.api.start()
        self.api.write_kubeconfig(self.kubeconfig)
        self.api.create(crd())
        self.kubelet = FakeKubelet(self.api.url, workdir=self.workdir / "kubelet", kubeconfig=self.kubeconfig)
        self.kubelet.start()
        if self.with_operator:
            self.start_operator()

    def start_operator(self, settings: OperatorSettings | None = None) -> None:
        """Start (or restart) the operator thread against this cluster."""
        from kubetune.operator.run import run_operator

        os.environ["KUBECONFIG"] = str(self.kubeconfig)
        if settings is not None:
            self.settings = settings
        self._operator_stop = threading.Event()
        ready = threading.Event()
        self._operator_thread = threading.Thread(
            target=run_operator,
            args=(self.settings,),
            kwargs={"standalone": True, "stop_flag": self._operator_stop, "ready_flag": ready},
            name="kubetune-operator",
            daemon=True,
        )
        self._operator_thread.start()
        if not ready.wait(60):
            raise RuntimeError("the operator did not become ready within 60 s")

    def stop_operator(self) -> None:
        if self._operator_thread is not None:
            self._operator_stop.set()
            self._operator_thread.join(30)
            self._operator_thread = None

    def stop(self) -> None:
        self.stop_operator()
        if self.kubelet is not None:
            self.kubelet.stop()
        self.api.stop()


def serve(workdir: Path, kubeconfig: Path | None, port: int) -> int:
    """Run a dev cluster until Ctrl-C; prints ``ready`` once kubectl can use it."""
    with DevCluster(workdir, kubeconfig=kubeconfig, port=port) as cluster:
        print(f"kubeconfig: {cluster.kubeconfig}", flush=True)
        print(
            f"try: KUBECONFIG={cluster.kubeconfig} kubectl apply --validate=false -f examples/digits-ddp.yaml",
            flush=True,
        )
        print("ready", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
