"""The fork server: its protocol, the workers it forks (this process's children, leaders of their own sessions),
what happens when it dies or is closed, and how ``kubetune run`` chooses it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubetune import cli
from kubetune.local import forks
from kubetune.local.forks import MAX_RESTARTS, ForkServer
from kubetune.local.runner import LocalRunner, RunOptions
from kubetune_trainer.forkserver import parse_request
from kubetune_trainer.warm import HandOverError

from local.conftest import TinyJob

pytestmark = pytest.mark.skipif(not forks.available(), reason="forking workers needs Linux")
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]  # a server that never says ready


def test_a_fork_request_names_the_process_that_adopts_the_worker() -> None:
    line = b'{"env": {"A": "1"}, "log": "/x/log.txt", "reaper": 4242}\n'
    assert parse_request(line) == ({"A": "1"}, "/x/log.txt", 4242)
    for bad in (
        b'{"env": {}, "log": "x"}',
        b'{"env": {}, "log": "x", "reaper": "4242"}',
        b'{"env": {}, "log": "x", "reaper": 1}',
    ):
        with pytest.raises(HandOverError, match='"reaper"'):
            parse_request(bad)


def test_the_server_answers_a_bad_request_with_an_error_and_ends_at_end_of_input() -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "kubetune_trainer.forkserver"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        assert server.stdout.readline() == b"ready\n"
        server.stdin.write(b"not json\n")
        server.stdin.flush()
        assert server.stdout.readline().startswith(b"error: hand-over is not JSON")
        server.stdin.close()
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.wait()


def test_a_forked_worker_is_this_process_s_child_and_leads_its_own_session(tmp_path: Path) -> None:
    with ForkServer() as server:
        worker = server.take({**os.environ, "KUBETUNE_STEP_DELAY": "bad"}, tmp_path / "log.txt")
        assert worker is not None and server.handed == 1
        assert os.getpgid(worker.pid) == worker.pid  # signals to its group reach it, and only it
        code = worker.wait(timeout=60)  # waitpid works: adopted by this process
    assert code != 0  # no TrainingJob in its environment: the trainer refuses to start
    assert (tmp_path / "log.txt").read_text().strip()  # and says why in its log


def test_a_forked_worker_killed_by_a_signal_reports_it_as_popen_does(tmp_path: Path) -> None:
    with ForkServer() as server:
        worker = server.take(dict(os.environ), tmp_path / "log.txt")
        assert worker is not None
        os.killpg(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
        assert worker.poll() == -signal.SIGKILL


def test_closing_the_server_leaves_its_workers_running(tiny_job: TinyJob, tmp_path: Path) -> None:
    slow = tiny_job("slow", hyperparameters={"steps": 200})
    delay = {"KUBETUNE_STEP_DELAY": "shiftedexp:1,1e9,0.01"}  # 10 ms a step
    server = ForkServer()
    runner = LocalRunner(slow, RunOptions(workdir=tmp_path, pool=server, extra_env=delay))
    runner.begin()
    deadline = time.monotonic() + 120

    def step() -> int:
        beat = runner.workers["slow-w0-a0"].heartbeats.latest if runner.workers else None
        return beat.step if beat is not None else 0

    while step() < 5:
        assert time.monotonic() < deadline
        runner.tick()
        time.sleep(0.1)
    server.close()  # mid-run
    assert server.server is None and server.take(dict(os.environ), tmp_path / "other.txt") is None
    while not runner.tick():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert runner.finish()["phase"] == "Succeeded" and server.handed == 1


def test_a_dead_server_is_restarted_a_bounded_number_of_times(tmp_path: Path) -> None:
    with ForkServer() as server:
        for restart in range(1, MAX_RESTARTS + 1):
            assert server.server is not None
            server.server.kill()
            server.server.wait()
            assert server.take(dict(os.environ), tmp_path / "log.txt") is None  # the worker starts cold
            server.fill()
            assert server.restarts == restart
        last = server.server
        assert last is not None
        last.kill()
        last.wait()
        server.fill()
        assert server.server is None  # it keeps dying: workers start cold from now on
        assert server.take(dict(os.environ), tmp_path / "log.txt") is None


def test_a_restarted_server_forks_again(tmp_path: Path) -> None:
    with ForkServer() as server:
        assert server.server is not None
        server.server.kill()
        server.server.wait()
        server.fill()
        worker = server.take(dict(os.environ), tmp_path / "log.txt")
        assert worker is not None and isinstance(worker.wait(timeout=60), int)


def test_a_server_that_never_loads_is_given_up_and_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forks, "READY_SECONDS", 0.5)
    with ForkServer(command=SLEEPER) as server:
        process = server.server
        started = time.monotonic()
        assert server.take(dict(os.environ), tmp_path / "log.txt") is None
        assert time.monotonic() - started < 10 and server.server is None
        assert process is not None and process.poll() is not None


def test_closing_restores_whether_this_process_was_a_subreaper() -> None:
    assert forks._subreaper() == 0
    with ForkServer(command=SLEEPER):
        assert forks._subreaper() == 1
    assert forks._subreaper() == 0


@pytest.mark.parametrize(
    ("asked", "warm", "expected"),
    [(None, None, "forkserver"), ("cold", None, "cold"), ("warm", None, "warm"), (None, 0, "cold"), (None, 3, "warm")],
)
def test_kubetune_run_forks_workers_unless_told_otherwise(asked: str | None, warm: int | None, expected: str) -> None:
    assert cli._start_method(asked, warm) == expected


def test_a_warm_count_with_the_fork_server_is_a_usage_error(tmp_path: Path) -> None:
    spec = Path(__file__).resolve().parents[2] / "examples" / "digits-tune.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "run", str(spec), "--start-method", "forkserver", "--warm", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "--warm: counts warm processes, not valid with --start-method forkserver" in (
        done.stderr
    )
    assert not (tmp_path / "kubetune-runs").exists()
