"""How a worker process ends once its result is written: promptly, with the exit code the contract names.

Decides: that a worker entry point (``python -m kubetune_trainer``, a warm process) does what the interpreter's own
shutdown does that anyone can observe (joins non-daemon threads, runs the ``atexit`` handlers: MLflow's, logging's,
torch's worker pools', flushes stdout and stderr) and then leaves with ``os._exit``, skipping the tear-down of every
loaded module. With torch, torch._dynamo and scikit-learn loaded that tear-down alone takes about 1 s on an idle
2-core machine and up to 3 s on a busy one, after the result is already on disk: every trial (and every pod) would
hold its slot that much longer, and the controller would learn the result that much later.

The trainer writes its result, joins its checkpoint writer and closes its progress channel before this runs (see
``Trainer.close``); nothing it owns is left to a finaliser.

Must not import: torch, kopf, kubernetes or ``kubetune``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` after the observable part of a normal shutdown."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # the registered handlers, as a normal exit runs them (and clears them)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or gone: nothing left to lose
            stream.flush()
    os._exit(code)
