"""Forked workers: one loaded trainer process (a fork server) that the local runner's built-in workers are forked from.

Decides: when the server starts (at once, when the runner is made: the first workers are wanted at once), how long
a worker's start waits for it to load (as long as a cold worker would load: up to :data:`READY_SECONDS`), how a
worker is asked for (one JSON line, the protocol of :mod:`kubetune_trainer.forkserver`) and adopted (this process
becomes a child subreaper, Linux ``PR_SET_CHILD_SUBREAPER``, so that the forked worker is its child: waited for,
polled and signalled like one it started itself), what happens when the server fails (the worker starts cold; a dead
server is restarted by :meth:`ForkServer.fill`, at most :data:`MAX_RESTARTS` times), and that closing it ends the
server but never its workers.

Why not warm processes (:mod:`kubetune.local.warm`): each of those costs a whole load (several CPU-seconds); on a
small machine the first wave's processes load against each other and every spare loads against the running
trials. The server loads once; a fork costs milliseconds and shares the loaded pages, so that a copy or a relaunch
starts in about the time its data takes to load. Only on Linux (``available``); elsewhere the runner uses warm
processes. Only the built-in trainer is forked; a bring-your-own command always starts cold.

Imports no kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from kubetune.local.processes import start_loader

FORK_COMMAND = (sys.executable, "-m", "kubetune_trainer.forkserver")
READY_SECONDS = 300.0  # a worker's start waits this long for the server to load, then starts cold
REPLY_SECONDS = 30.0  # a fork takes milliseconds; no reply in this long: the server is lost
MAX_RESTARTS = 3  # a server that keeps dying is not restarted again: workers start cold
END_SECONDS = 2.0  # a server told to end (end of input) gets this long before it is killed
LOST_EXIT_CODE = 255  # the exit code of a forked worker whose status could not be read (reaped by someone else)
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


@functools.cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL("libc.so.6", use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


def _subreaper() -> int | None:
    """Whether this process is a child subreaper (1 or 0); None where that cannot be asked (not Linux)."""
    prctl = _prctl()
    if prctl is None:
        return None
    flag = ctypes.c_int(0)
    if prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) != 0:
        return None
    return flag.value


def _set_subreaper(on: bool) -> bool:
    prctl = _prctl()
    return prctl is not None and prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0


def available() -> bool:
    """Whether this machine can fork workers (Linux: a process can adopt its orphaned descendants)."""
    return hasattr(os, "fork") and _subreaper() is not None


class ForkedProcess:
    """A worker forked by the server and adopted by this process; polled, waited for and signalled like a Popen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self._reap(os.WNOHANG)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            while self.returncode is None:
                self._reap(0)
            return self.returncode
        deadline = time.monotonic() + timeout
        while (code := self.poll()) is None:
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"forked worker {self.pid}", timeout)
            time.sleep(0.01)
        return code

    def _reap(self, flags: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped by someone else: its status is gone; it ended, how is unknown
            self.returncode = LOST_EXIT_CODE
            return
        except InterruptedError:
            return
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(status)


class ForkServer:
    """Forks built-in workers from one loaded trainer process; use as a context manager (closing ends the server,
    never a worker). ``preload`` names what the workers will import besides the trainer (see ``warm.preloads``)."""

    def __init__(self, preload: Sequence[str] = (), *, command: Sequence[str] = FORK_COMMAND) -> None:
        was = _subreaper()
        if was is None or not hasattr(os, "fork"):
            raise OSError("forking workers needs Linux (PR_SET_CHILD_SUBREAPER)")
        self._was_subreaper = bool(was)
        if not _set_subreaper(True):
            raise OSError(f"cannot make this process a child subreaper: errno {ctypes.get_errno()}")
        self.command = [*command, *preload]
        self.handed = 0  # workers started forked
        self.restarts = 0
        self.closed = False
        self.server: subprocess.Popen[bytes] | None = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        process = start_loader(self.command)
        self._loaded = False  # the server has said ``ready``
        self._pending = b""  # what the server wrote after its last whole line
        return process

    def take(self, env: Mapping[str, str], log: Path) -> ForkedProcess | None:
        """A worker forked with environment ``env`` (the whole of it) writing to ``log``; None when the server cannot
        give one (closed, dead, or failing: the caller starts the worker cold). Waits for a server still loading."""
        server = self.server
        if self.closed or server is None or server.poll() is not None:
            return None
        if not self._loaded:
            if self._read_line(READY_SECONDS) != b"ready":
                self._lose()
                return None
            self._loaded = True
        request = json.dumps({"env": dict(env), "log": str(log), "reaper": os.getpid()}).encode() + b"\n"
        try:
            assert server.stdin is not None
            server.stdin.write(request)
            server.stdin.flush()
        except (BrokenPipeError, OSError):
            self._lose()
            return None
        reply = self._read_line(REPLY_SECONDS)
        if reply is None:
            self._lose()
            return None
        if not reply.isdigit():  # "error: ...": this worker starts cold; the server serves the next
            return None
        self.handed += 1
        return ForkedProcess(int(reply))

    def _read_line(self, timeout: float) -> bytes | None:
        """The server's next stdout line (without its newline); None at end of output or after ``timeout``."""
        server = self.server
        assert server is not None and server.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([server.stdout], [], [], left)
            if not readable:
                continue
            chunk = os.read(server.stdout.fileno(), 4096)
            if not chunk:
                return None
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.strip()

    def _lose(self) -> None:
        """Kill a server that did not answer; :meth:`fill` starts another."""
        server, self.server = self.server, None
        if server is not None:
            _end(server, serving=False)

    def fill(self) -> None:
        """Start a new server if the last one died (at most :data:`MAX_RESTARTS` times)."""
        if self.closed:
            return
        if self.server is not None and self.server.poll() is not None:
            _end(self.server, serving=False)
            self.server = None
        if self.server is None and self.restarts < MAX_RESTARTS:
            self.restarts += 1
            self.server = self._start()

    def close(self) -> None:
        """End the server (its workers run on, still this process's children) and start no more."""
        self.closed = True
        if self.server is not None:
            _end(self.server, serving=self._loaded or self._read_line(0) == b"ready")
            self.server = None
        if not self._was_subreaper:
            _set_subreaper(False)

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def _end(server: subprocess.Popen[bytes], *, serving: bool = True) -> None:
    """Stop the server process: end its input and give it a moment if it is ``serving`` (one still loading is killed
    at once). Never its group: a worker forked a moment ago may not lead its own session yet (the server replies only
    once it does, but a request may be in flight)."""
    if server.stdin is not None and serving:
        with contextlib.suppress(OSError):
            server.stdin.close()  # end of input: a serving server exits 0
    try:
        server.wait(timeout=END_SECONDS if serving else 0)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGKILL)
        server.wait()
    for pipe in (server.stdin, server.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
