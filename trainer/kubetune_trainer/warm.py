"""``python -m kubetune_trainer.warm``: a trainer process started before it has a worker to be (a warm process).

Decides: what a warm process loads while it waits (the trainer, hence torch, and the modules named as arguments:
``python -m kubetune_trainer.warm [MODULE ...]``) and how it becomes a worker. Once loaded it writes ``ready`` to
stdout (the pool's pipe). A worker is handed over as one JSON line on stdin, ``{"env": {...}, "log": PATH}``; the
process then sends its output to ``PATH`` (appending), reads nothing more from stdin, takes ``env`` as its whole
environment, limits the BLAS/OpenMP pools already loaded to the thread count the environment names, and runs exactly
what ``python -m kubetune_trainer`` runs, with the same exit code. End of input before a line (the pool was closed)
exits 0 without training.

Why: a local trial spends seconds importing torch, scikit-learn and MLflow before its first step (about 6 s on a
busy 2-core machine); the local runner keeps a few processes that have done so ready (``kubetune run --warm``), as
Ray Tune reuses actors. What a module reads from the environment when it is imported (OpenMP and OpenBLAS read their
thread counts when loaded) is why the pool starts warm processes with one thread and the hand-over sets the count.

Must not import: kopf, kubernetes or ``kubetune``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from kubetune_trainer.shutdown import exit_now

# Always loaded while waiting (torch's optimizers import torch._dynamo when the first one is built: ~3 s), then the
# modules named on the command line (the pool names what its job needs: scikit-learn for digits, MLflow if tracked).
PRELOAD = ("kubetune_trainer.train", "torch._dynamo", "threadpoolctl")
READY = b"ready\n"  # written to stdout once loaded: the pool starts the next warm process only then
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class HandOverError(ValueError):
    """The hand-over line is not ``{"env": {str: str}, "log": str}``."""


def preload(extra: Sequence[str] = ()) -> None:
    """Import what a worker will need. Errors are left for the worker to meet (and report in its log)."""
    for name in (*PRELOAD, *extra):
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def parse_hand_over(line: bytes) -> tuple[dict[str, str], str]:
    """The worker's environment and log path from the hand-over line."""
    try:
        data: Any = json.loads(line)
    except ValueError as error:
        raise HandOverError(f"hand-over is not JSON: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("log"), str) or not isinstance(data.get("env"), dict):
        raise HandOverError('hand-over must be {"env": {...}, "log": "PATH"}')
    env = data["env"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise HandOverError("hand-over env must map strings to strings")
    return dict(env), data["log"]


def become(env: Mapping[str, str], log: str) -> None:
    """Turn this process into the worker: output to ``log``, stdin closed, ``env`` as the whole environment."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.environ.clear()
    os.environ.update(env)
    threads = next((env[name] for name in THREAD_VARIABLES if env.get(name, "").strip().isdigit()), None)
    if threads is not None and int(threads) > 0:
        limit_threads(int(threads))


def limit_threads(threads: int) -> None:
    """Set the thread count of the pools loaded before the environment named it (torch's and BLAS's)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if "threadpoolctl" in sys.modules:
        sys.modules["threadpoolctl"].threadpool_limits(threads)


def say_ready() -> None:
    """Tell the pool (on stdout, a pipe until the hand-over) that loading is done; nobody listening is no error."""
    with contextlib.suppress(OSError):
        os.write(1, READY)


def main(argv: Sequence[str] | None = None) -> int:
    preload(sys.argv[1:] if argv is None else argv)
    say_ready()
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return 0  # the pool closed before handing this process a worker
    env, log = parse_hand_over(line)
    become(env, log)
    from kubetune_trainer.train import main as train_main

    return train_main([])


if __name__ == "__main__":
    exit_now(main())
