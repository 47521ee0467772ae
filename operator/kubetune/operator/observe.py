"""Reading pods back into the core's vocabulary: a Pod dict becomes a :class:`WorkerObservation`.

Decides: where each fact comes from — rank and attempt from labels, the heartbeat from the
``kubetune.dev/progress`` annotation that the trainer patches onto its own pod, the result from the container's
termination message, a disruption from a True ``DisruptionTarget`` condition, a pod being torn down from its
``deletionTimestamp``. Pure: no I/O, no kopf or kubernetes imports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubetune.core import Heartbeat, Result, WorkerObservation
from kubetune.core.observed import WorkerPhase
from kubetune.operator.settings import ATTEMPT_LABEL, PROGRESS_ANNOTATION, RANK_LABEL

_PHASES: frozenset[str] = frozenset({"Pending", "Running", "Succeeded", "Failed", "Unknown"})


def _json(text: Any) -> Any:
    if not isinstance(text, str) or not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for status in pod.get("status", {}).get("containerStatuses") or ():
        state = status.get("state") or {}
        if state.get("terminated"):
            terminated: Mapping[str, Any] = state["terminated"]
            return terminated
    return None


def _disruption(pod: Mapping[str, Any]) -> str | None:
    for condition in pod.get("status", {}).get("conditions") or ():
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
            return str(condition.get("reason") or "DisruptionTarget")
    return None


def _seconds(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _times(pod: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """When the container started and finished (unix seconds), from its running or terminated state."""
    for status in pod.get("status", {}).get("containerStatuses") or ():
        state = status.get("state") or {}
        if state.get("terminated"):
            return _seconds(state["terminated"].get("startedAt")), _seconds(state["terminated"].get("finishedAt"))
        if state.get("running"):
            return _seconds(state["running"].get("startedAt")), None
    return None, None


def observe_pod(pod: Mapping[str, Any]) -> WorkerObservation | None:
    """The worker a pod stands for, or None when the pod is not a kubetune worker."""
    metadata = pod.get("metadata", {})
    labels = metadata.get("labels") or {}
    try:
        rank = int(labels[RANK_LABEL])
        attempt = int(labels[ATTEMPT_LABEL])
    except (KeyError, ValueError):
        return None
    phase_text = str(pod.get("status", {}).get("phase") or "Pending")
    phase: WorkerPhase = phase_text if phase_text in _PHASES else "Unknown"  # type: ignore[assignment]
    beat_data = _json((metadata.get("annotations") or {}).get(PROGRESS_ANNOTATION))
    heartbeat = Heartbeat.from_dict(beat_data) if isinstance(beat_data, dict) else None
    terminated = _terminated(pod)
    started_at, finished_at = _times(pod)
    exit_code: int | None = None
    reason = pod.get("status", {}).get("reason")
    result: Result | None = None
    if terminated is not None:
        exit_code = int(terminated.get("exitCode", 0))
        reason = reason or terminated.get("reason")
        data = _json(terminated.get("message"))
        result = Result.from_dict(data) if isinstance(data, dict) else None
        if phase in ("Pending", "Running"):
            phase = "Succeeded" if exit_code == 0 else "Failed"
    return WorkerObservation(
        name=str(metadata.get("name")),
        rank=rank,
        attempt=attempt,
        phase=phase,
        exit_code=exit_code,
        reason=str(reason) if reason else None,
        disruption=_disruption(pod),
        terminating=bool(metadata.get("deletionTimestamp")),
        heartbeat=heartbeat,
        result=result,
        node=pod.get("spec", {}).get("nodeName"),
        started_at=started_at,
        finished_at=finished_at,
    )
