"""``kubetune operator``: run the kopf operator in this process (in a cluster, or against a kubeconfig).

Decides: the operator's start-up — which namespaces are watched, peering, the liveness endpoint — and hands the
settings to the handlers through kopf's memo.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import sys
import threading

import kopf

from kubetune.eventloop import event_loop_factory
from kubetune.operator.settings import OperatorSettings


def peering_priority() -> int:
    """This replica's kopf peering priority: ``$KUBETUNE_PEERING_PRIORITY``, else random.

    kopf's peering pauses every operator that sees a peer of equal or higher priority. Distinct priorities make two
    replicas an active/standby pair: the highest runs, the other pauses until the active one's peering record
    expires. Equal priorities would pause both.
    """
    configured = os.environ.get("KUBETUNE_PEERING_PRIORITY")
    return int(configured) if configured else random.SystemRandom().randint(1, 1_000_000)


class _QuietWakeups(logging.Filter):
    """Drops kopf's "Handler 'wake-on-...' succeeded." lines: one per watch event, they say nothing (failures and
    everything else still pass)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        return not (
            record.levelno == logging.INFO
            and message.startswith("Handler 'wake-on-")
            and message.endswith(" succeeded.")
        )


def _tune_interpreter() -> None:
    """The operator is one event loop (kopf) plus worker threads that block on the API (the reconcile passes).

    A thread whose response has arrived waits for the event loop to give up the interpreter lock, up to the switch
    interval (5 ms by default) per request, which made a pass of four requests wait 20 ms or more while the loop was
    busy with watch events: 1 ms keeps that wait short. The objects alive after start-up (modules, kopf's registry)
    are frozen out of the cyclic garbage collector, and its youngest generation is collected less often, so that a
    collection does not walk them again and again (it took a fifth of the operator's CPU at 200 jobs)."""
    sys.setswitchinterval(0.001)
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(20_000, middle, oldest)


def run_operator(
    settings: OperatorSettings,
    *,
    namespaces: list[str] | None = None,
    standalone: bool = False,
    liveness: str | None = None,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
    verbose: bool = False,
) -> None:
    """Run until stopped (Ctrl-C, SIGTERM, or ``stop_flag``)."""
    import kubetune.operator.handlers  # noqa: F401 - registers the handlers

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    objects = logging.getLogger("kopf.objects")
    if not verbose and not any(isinstance(f, _QuietWakeups) for f in objects.filters):
        objects.addFilter(_QuietWakeups())
    _tune_interpreter()
    watched = namespaces or ([settings.namespace] if settings.namespace else [])
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(
            kopf.operator(
                clusterwide=not watched,
                namespaces=watched,
                standalone=standalone,
                peering_name="kubetune",
                priority=peering_priority(),
                liveness_endpoint=liveness,
                memo=kopf.Memo(settings=settings),
                stop_flag=stop_flag,
                ready_flag=ready_flag,
            )
        )
