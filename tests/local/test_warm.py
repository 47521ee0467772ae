"""Warm trainer processes: the hand-over protocol, the pool, and runs whose workers start warm."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from kubetune.local.study import warm_processes
from kubetune.local.warm import WarmPool, preloads
from kubetune_trainer.warm import HandOverError, limit_threads, parse_hand_over

from local.conftest import TinyJob


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"not json\n", "not JSON"),
        (b'["env"]\n', '{"env"'),
        (b'{"env": {}, "log": 3}\n', '{"env"'),
        (b'{"env": {"A": 1}, "log": "x"}\n', "strings to strings"),
    ],
)
def test_a_bad_hand_over_is_refused(line: bytes, problem: str) -> None:
    with pytest.raises(HandOverError, match=problem):
        parse_hand_over(line)


def test_a_hand_over_gives_the_environment_and_the_log() -> None:
    assert parse_hand_over(b'{"env": {"A": "1"}, "log": "/x/log.txt"}\n') == ({"A": "1"}, "/x/log.txt")


def test_the_hand_over_sets_the_thread_count_the_environment_names() -> None:
    before = torch.get_num_threads()
    try:
        limit_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def filled(pool: WarmPool, idle: int, timeout: float = 120) -> bool:
    """Tick the pool (as a runner does) until ``idle`` processes wait and none is loading."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pool.fill()
        if len(pool.idle) == idle and not pool.loading:
            return True
        time.sleep(0.1)
    return False


def test_a_pool_refills_one_process_at_a_time_and_closing_it_leaves_none() -> None:
    with WarmPool(2) as pool, tempfile.TemporaryDirectory() as tmp:
        assert len(pool.idle) == 2 and pool.loading == list(pool.idle)  # the first workers are wanted at once
        assert pool.take(dict(os.environ), Path(tmp) / "log.txt") is not None  # (an invalid worker: it exits 2)
        pool.fill()
        assert len(pool.idle) == 1  # the others are still loading: no new one competes with them
        assert filled(pool, 2)
        pids = [p.pid for p in pool.idle]
    assert not pool.idle and pool.closed
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # reaped, not a zombie
    with pytest.raises(ValueError, match="must be >= 0"):
        WarmPool(-1)


def test_a_pool_starts_its_first_processes_at_once_and_its_spares_one_at_a_time() -> None:
    with WarmPool(3, first=1) as pool:
        assert len(pool.idle) == 1 and len(pool.loading) == 1
        pool.fill()
        assert len(pool.idle) == 1  # the first is still loading: no spare competes with it
        assert filled(pool, 3)
    with pytest.raises(ValueError, match=r"within 0\.\.2, got 3"):
        WarmPool(2, first=3)


STUDY = {
    "tuning": {
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "parameters": [{"name": "learningRate", "type": "float", "min": 0.01, "max": 0.1}],
        "maxTrials": 8,
        "parallelTrials": 4,
    }
}


@pytest.mark.parametrize(
    ("stragglers", "workers", "expected"),
    [
        ({"policy": "none"}, 1, (4, 4)),
        ({"policy": "none"}, 2, (4, 4)),  # 2 trials of 2 workers on 4 cores
        ({"policy": "spark"}, 1, (8, 4)),
        ({"policy": "adaptive"}, 1, (8, 4)),
        ({"policy": "migrate"}, 1, (8, 4)),
        ({"policy": "migrate", "hedge": 2}, 1, (12, 4)),
        ({"policy": "singleFork", "forkWhenDone": 0.5, "replicas": 2}, 1, (12, 4)),
    ],
)
def test_a_study_keeps_a_warm_process_for_every_copy_its_straggler_policy_may_start_at_once(
    tiny_job: TinyJob, stragglers: dict[str, Any], workers: int, expected: tuple[int, int]
) -> None:
    study = tiny_job("tune", **STUDY, parallelism={"workers": workers}, resilience={"stragglers": stragglers})
    assert warm_processes(study, cores=4) == expected


def test_a_dead_warm_process_is_not_handed_out(tmp_path: Path) -> None:
    with WarmPool(1) as pool:
        process = pool.idle[0]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pool.size = 0  # no replacement: the pool has nothing alive to give
        assert pool.take(dict(os.environ), tmp_path / "log.txt") is None
        assert pool.handed == 0


def test_a_closed_pool_gives_nothing(tmp_path: Path) -> None:
    pool = WarmPool(1)
    pool.close()
    assert pool.take(dict(os.environ), tmp_path / "log.txt") is None


def test_a_warm_process_loads_what_its_job_will_import(tiny_job: TinyJob) -> None:
    assert preloads(tiny_job("plain")) == ("sklearn.datasets", "sklearn.model_selection")  # digits (the default)
    synthetic = tiny_job(
        "synthetic", trainer={"model": {"family": "mlp", "depth": 1, "width": 16}, "dataset": "synthetic"}
    )
    assert preloads(synthetic) == ()
    tracked = tiny_job("tracked", tracking={"enabled": True})
    assert "mlflow" in preloads(tracked)
    own = tiny_job("own", trainer={"image": "example.com/own:1", "command": ["train"]}, tracking={"enabled": True})
    assert preloads(own) == ("mlflow",)


def test_a_negative_warm_count_is_a_usage_error(tmp_path: Path) -> None:
    spec = Path(__file__).resolve().parents[2] / "examples" / "digits-tune.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "run", str(spec), "--warm", "-1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "--warm: must be >= 0, got -1" in done.stderr
    assert not (tmp_path / "kubetune-runs").exists()


def test_a_study_with_bad_options_starts_no_warm_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sampler and pruner options are checked before the pool starts its processes (not started, then killed)."""
    import yaml
    from kubetune import cli

    pools: list[int] = []
    monkeypatch.setattr(WarmPool, "__init__", lambda self, size, **_: pools.append(size))
    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "digits-tune.yaml").read_text())
    doc["spec"]["tuning"]["sampler"] = {"name": "tpe", "options": {"n_startup": 2}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", str(path), "--warm", "2"]) == 2
    assert pools == [] and not (tmp_path / "kubetune-runs").exists()
