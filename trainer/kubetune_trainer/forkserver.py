"""``python -m kubetune_trainer.forkserver [MODULE ...]``: one loaded trainer process that forks workers on request.

Decides: how a worker is made from a process that has loaded the trainer once (torch, ``torch._dynamo``, and the
modules named as arguments, as a warm process does: :mod:`kubetune_trainer.warm`), and what the runner and this
process say to each other. Once loaded it writes ``ready`` to stdout. Then each line on stdin,
``{"env": {...}, "log": PATH, "reaper": PID}``, asks for one worker: the server forks twice (the middle process
exits at once), so that the worker is orphaned and adopted by ``reaper``, the runner, which has made itself a child
subreaper (Linux ``PR_SET_CHILD_SUBREAPER``) and can then wait for it, read its exit code and signal its process
group exactly as for a worker it started itself. The reply is one line: the worker's pid, or ``error: WHY``. End of
input ends the server (exit 0); its workers run on.

The worker, once adopted: leads a new session (its pid is its process group, as ``start_new_session`` makes it),
asks for SIGTERM when the runner dies (the parent-death signal a cold worker gets), becomes the worker as a warm
process does (output to ``PATH``, ``env`` as its whole environment, the thread pools sized from it) and runs exactly
what ``python -m kubetune_trainer`` runs, with the same exit code.

Why: a warm process costs a whole load (several CPU-seconds; on 2 cores four processes loading at once take 12 to
16 s to their first step, and a spare loading beside the running trials slows them); a fork costs milliseconds and
shares the loaded pages. The server never runs a torch operation, so no thread pool exists to be lost by a fork.
The training seeds its random generators from its spec, so inherited generator states do not matter.

Must not import: kopf, kubernetes or ``kubetune``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from collections.abc import Sequence

from kubetune_trainer.shutdown import exit_now
from kubetune_trainer.warm import HandOverError, become, parse_hand_over, preload, say_ready

_PR_SET_PDEATHSIG = 1
ADOPTION_SECONDS = 10.0  # how long a forked worker waits to be adopted by the runner before it gives up


def parse_request(line: bytes) -> tuple[dict[str, str], str, int]:
    """The worker's environment, its log path and the pid that will adopt it, from one request line."""
    env, log = parse_hand_over(line)
    reaper = json.loads(line).get("reaper")
    if not isinstance(reaper, int) or isinstance(reaper, bool) or reaper <= 1:
        raise HandOverError('a fork request must name "reaper": the pid of the runner that adopts the worker')
    return env, log, reaper


def serve(extra: Sequence[str] = ()) -> int:
    """Load, say ready, then fork one worker per request line until end of input."""
    preload(extra)
    say_ready()
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return 0
        if not line.strip():
            continue
        try:
            env, log, reaper = parse_request(line)
        except HandOverError as error:
            _reply(f"error: {error}")
            continue
        _fork_worker(env, log, reaper)


def _fork_worker(env: dict[str, str], log: str, reaper: int) -> None:
    """Fork the middle process, which forks the worker, and reply the worker's pid once the middle process has ended
    (the worker is then the runner's child) and the worker leads its own session (its process group can be
    signalled): the middle process writes the pid into a pipe, and the worker closes its end after ``setsid``, so
    the end of that pipe's input means both are done."""
    read_end, write_end = os.pipe()
    try:
        middle = os.fork()
    except OSError as error:
        os.close(read_end)
        os.close(write_end)
        _reply(f"error: fork failed: {error}")
        return
    if middle == 0:  # pragma: no cover - runs in the forked middle process, which ends with os._exit
        code = 1
        try:
            os.close(read_end)
            worker = os.fork()
            if worker == 0:
                _run_worker(env, log, reaper, write_end)
            os.write(write_end, f"{worker}\n".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    said = b""
    with os.fdopen(read_end, "rb") as pipe:
        said = pipe.read()
    _, status = os.waitpid(middle, 0)
    pid = said.strip()
    if os.waitstatus_to_exitcode(status) != 0 or not pid.isdigit():
        _reply(f"error: the forking process ended with status {os.waitstatus_to_exitcode(status)}")
        return
    _reply(pid.decode())


def _run_worker(env: dict[str, str], log: str, reaper: int, started: int) -> None:  # pragma: no cover - forked
    """Lead a session, say so (close ``started``), wait to be adopted by the runner, then become the worker and
    train; never returns."""
    code = 1
    try:
        os.setsid()
        os.close(started)
        deadline = time.monotonic() + ADOPTION_SECONDS
        while os.getppid() != reaper:
            if time.monotonic() > deadline:
                os._exit(1)  # not adopted: the runner is gone or is no subreaper; nobody would wait for us
            time.sleep(0.001)
        _term_with_parent()
        if os.getppid() != reaper:  # the runner died between the check and the request
            os._exit(1)
        become(env, log)
        from kubetune_trainer.train import main as train_main

        code = train_main([])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # reported in the worker's log, as an uncaught error of a cold worker is
        import traceback

        traceback.print_exc()
        code = 1
    exit_now(code)


def _term_with_parent() -> None:  # pragma: no cover - the forked worker
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _reply(text: str) -> None:
    """One reply line on stdout, written whole (one write of a short line to a pipe is atomic)."""
    with contextlib.suppress(OSError):
        os.write(1, text.replace("\n", " ").encode() + b"\n")


def main(argv: Sequence[str] | None = None) -> int:
    return serve(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    exit_now(main())
