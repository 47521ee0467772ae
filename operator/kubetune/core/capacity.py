"""Spot or on-demand: which capacity a gang attempt runs on, and the node constraints that put it there.

Decides ``spec.resilience.spot``: ``spot`` always, ``onDemand`` always, ``spotThenOnDemand`` on spot until the job
has been preempted ``fallbackAfterPreemptions`` times, then on-demand; and what each capacity means on each
provider: spot pods select the provider's spot label and tolerate the known spot taints (AKS taints its spot pools,
GKE users often do); on-demand pods refuse nodes carrying the spot label (``NotIn``, which also admits nodes without
the label). ``spot.nodeSelectors`` overrides a provider's labels. Nodes the job learned to avoid (a rank failed there
under ``RelaunchElsewhere``, or straggled) are refused by hostname.

Pure: standard library and kubetune.api only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubetune.api import TrainingJob
from kubetune.api.trainingjob import Capacity

# The label each provider puts on spot nodes, and its value there.
SPOT_LABELS: dict[str, tuple[str, str]] = {
    "gke": ("cloud.google.com/gke-spot", "true"),
    "eks": ("eks.amazonaws.com/capacityType", "SPOT"),
    "karpenter": ("karpenter.sh/capacity-type", "spot"),
    "aks": ("kubernetes.azure.com/scalesetpriority", "spot"),
}
SPOT_TOLERATIONS: tuple[Mapping[str, str], ...] = (
    {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot", "effect": "NoSchedule"},
    {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
)
MAX_AVOIDED_NODES = 8


@dataclass(frozen=True)
class CapacityPlacement:
    """What a worker pod of one attempt adds to the job's own node selector, tolerations and affinity."""

    capacity: Capacity
    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, str], ...]
    # Required node-affinity expressions (matchExpressions items), ANDed with the job's own.
    node_expressions: tuple[Mapping[str, Any], ...]


def capacity_for(job: TrainingJob, preemptions: int) -> Capacity:
    """The capacity of the next attempt after ``preemptions`` preemptions."""
    spot = job.spec.resilience.spot
    if spot.capacity == "spotThenOnDemand":
        return "spot" if preemptions < spot.fallback_after_preemptions else "onDemand"
    return spot.capacity


def placement(job: TrainingJob, capacity: Capacity, avoid_nodes: Sequence[str] = ()) -> CapacityPlacement:
    """The constraints that put a worker on ``capacity`` and away from ``avoid_nodes``."""
    spot = job.spec.resilience.spot
    key, value = SPOT_LABELS[spot.provider]
    override = spot.node_selectors.get(capacity)
    expressions: list[Mapping[str, Any]] = []
    if capacity == "spot":
        selector = dict(override) if override is not None else {key: value}
        tolerations = SPOT_TOLERATIONS
    else:
        selector = dict(override) if override is not None else {}
        tolerations = ()
        if override is None:
            expressions.append({"key": key, "operator": "NotIn", "values": [value]})
    if avoid_nodes:
        hosts = sorted(set(avoid_nodes))[-MAX_AVOIDED_NODES:]
        expressions.append({"key": "kubernetes.io/hostname", "operator": "NotIn", "values": hosts})
    return CapacityPlacement(capacity, selector, tolerations, tuple(expressions))


def is_spot_node(labels: Mapping[str, str]) -> bool:
    """Whether a node's labels mark it as spot capacity on any known provider."""
    return any(labels.get(key) == value for key, value in SPOT_LABELS.values())
