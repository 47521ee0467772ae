"""``kubetune operator``: run the kopf operator in this process (in a cluster, or against a kubeconfig).

Decides: the operator's start-up — which namespaces are watched, peering, the liveness endpoint — and hands the
settings to the handlers through kopf's memo.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading

import kopf

from kubetune.operator.settings import OperatorSettings


def peering_priority() -> int:
    """This replica's kopf peering priority: ``$KUBETUNE_PEERING_PRIORITY``, else random.

    kopf's peering pauses every operator that sees a peer of equal or higher priority. Distinct priorities make two
    replicas an active/standby pair: the highest runs, the other pauses until the active one's peering record
    expires. Equal priorities would pause both.
    """
    configured = os.environ.get("KUBETUNE_PEERING_PRIORITY")
    return int(configured) if configured else random.SystemRandom().randint(1, 1_000_000)


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
    watched = namespaces or ([settings.namespace] if settings.namespace else [])
    asyncio.run(
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
