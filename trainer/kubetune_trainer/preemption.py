"""SIGTERM handling: the signal only sets a flag; the training loop acts on it at the next step boundary.

Decides: that a SIGTERM (Kubernetes eviction, spot reclaim, the local runner's stop) is a request to stop
cleanly, never an immediate exit; the trainer then checkpoints, writes result ``preempted`` and exits 143.

Must not import: torch, mlflow, kopf, kubernetes or ``kubetune``.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

PREEMPTED_EXIT_CODE = 143


class StopFlag:
    """Set by SIGTERM (once installed) or by :meth:`request`; read every step, so reading must be cheap."""

    def __init__(self) -> None:
        self.requested = False

    def request(self) -> None:
        self.requested = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def install(self) -> StopFlag:
        """Route SIGTERM to this flag (only possible from the main thread; elsewhere a no-op)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._handle)
        return self
