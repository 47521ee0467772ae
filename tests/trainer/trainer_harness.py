"""Harness for the trainer's tests: a clean worker environment and subprocess launchers (not a test module)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def base_env(tmp: Path, rank: int = 0, **overrides: str) -> dict[str, str]:
    """The environment a controller would give one worker, pointing every output into ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBETUNE_", "PET_", "MLFLOW_"))}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    env.update(
        OMP_NUM_THREADS="1",
        RANK=str(rank),
        LOCAL_RANK="0",
        WORLD_SIZE="1",
        KUBETUNE_JOB="test",
        KUBETUNE_CHECKPOINT_DIR=str(tmp / "ckpt"),
        KUBETUNE_CHECKPOINT_MIN_INTERVAL_SECONDS="0",  # the tests count on the exact cadence they ask for
        KUBETUNE_PROGRESS=f"file:{tmp / f'progress-{rank}.jsonl'}",
        KUBETUNE_RESULT_FILE=str(tmp / f"result-{rank}.json"),
        KUBETUNE_DEVICE="cpu",
    )
    env.update(overrides)
    return env


def launch(env: Mapping[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kubetune_trainer", *args],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_result(tmp: Path, rank: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((tmp / f"result-{rank}.json").read_text())
    return result


def read_progress(tmp: Path, rank: int = 0) -> list[dict[str, Any]]:
    path = tmp / f"progress-{rank}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_heartbeat(proc: subprocess.Popen[str], tmp: Path, timeout: float, rank: int = 0) -> None:
    """Block until ``rank`` has written a step heartbeat (it is training); fail if it exits or times out first."""
    deadline = time.monotonic() + timeout
    while not any(r["kind"] == "heartbeat" for r in read_progress(tmp, rank)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no heartbeat within {timeout} s"
        time.sleep(0.05)


PORT_TAKEN = ("EADDRINUSE", "Address already in use")


def run_gang(tmp: Path, world: int, timeout: float = 120, **overrides: str) -> list[tuple[int, str]]:
    """Start ``world`` ranks with a fresh rendezvous port; return each rank's (exit code, stderr).

    A free port can be taken by another process before rank 0 binds it; then the gang is started again.
    """
    for _ in range(3):
        outcomes = _run_gang_once(tmp, world, timeout, **overrides)
        if not any(marker in err for _, err in outcomes for marker in PORT_TAKEN):
            break
    return outcomes


def _run_gang_once(tmp: Path, world: int, timeout: float, **overrides: str) -> list[tuple[int, str]]:
    port = str(free_port())
    procs = [
        launch(base_env(tmp, rank, WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=port, **overrides))
        for rank in range(world)
    ]
    outcomes = []
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=timeout)
            outcomes.append((proc.returncode, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return outcomes
