"""Which asyncio event loop kubetune's long-running servers run on: uvloop's when it is installed, else asyncio's.

Decides only that choice, for the operator (kopf's loop: watch streams, handler tasks, the futures of the reconcile
threads) and the test API server (aiohttp): both spend much of their CPU in the loop itself, which uvloop runs in
C. ``kopf run`` makes the same choice. ``KUBETUNE_UVLOOP=0`` keeps asyncio's loop. Imports nothing of kubetune.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory of new event loops (for ``asyncio.Runner(loop_factory=...)``)."""
    if os.environ.get("KUBETUNE_UVLOOP", "1") != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop
