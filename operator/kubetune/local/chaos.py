"""Chaos for local runs: stragglers and spot preemptions, injected the way they happen in a cluster.

Decides what ``kubetune run --chaos`` does. ``straggler=DIST`` slows every worker by a factor drawn from ``DIST``
(the simulator's forms, e.g. ``pareto:1,2``; factors below 1 count as 1) through the trainer's
``KUBETUNE_SLOWDOWN`` knob; the draw is per worker process, keyed by its name, so a relaunch or a replica of a trial
is a fresh draw, as a copy on another node would be. ``preempt=mtbf:60s`` preempts workers that run on spot capacity
(the job's ``status.capacity``): preemption notices arrive with exponential inter-arrival times of that mean, and
each one SIGTERMs one running spot worker (it checkpoints and exits "preempted"; the runner kills it after the grace
period), as a spot reclaim does. Everything is seeded (``--chaos-seed``).

Imports numpy and the simulator's distributions; no kopf, kubernetes, optuna or mlflow.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kubetune.simulate.distributions import Distribution, DistributionError, parse_distribution

_DURATION = re.compile(r"^(?P<value>\d+(\.\d+)?)(?P<unit>ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class ChaosError(ValueError):
    """A ``--chaos`` value that cannot be used; the message names it."""


def _duration(spec: str, text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match or float(match["value"]) <= 0:
        raise ChaosError(f"--chaos {spec}: expected a positive duration like 60s, 500ms or 2m, got {text!r}")
    return float(match["value"]) * _UNITS[match["unit"]]


@dataclass
class Chaos:
    """The chaos of one run (shared by a study's trials)."""

    straggler: Distribution | None = None
    mtbf_seconds: float | None = None
    seed: int = 0
    preemptions: int = 0
    _next_preemption: float | None = field(default=None, repr=False)
    _rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0), repr=False)

    @classmethod
    def parse(cls, specs: Sequence[str], seed: int = 0) -> Chaos:
        chaos = cls(seed=seed, _rng=np.random.default_rng(seed))
        for spec in specs:
            kind, sep, value = spec.partition("=")
            if not sep:
                raise ChaosError(f"--chaos {spec}: expected straggler=DIST or preempt=mtbf:DURATION")
            if kind == "straggler":
                try:
                    chaos.straggler = parse_distribution(value)
                except DistributionError as error:
                    raise ChaosError(f"--chaos {spec}: {error}") from None
            elif kind == "preempt":
                form, _, duration = value.partition(":")
                if form != "mtbf":
                    raise ChaosError(f"--chaos {spec}: expected preempt=mtbf:DURATION (e.g. mtbf:60s)")
                chaos.mtbf_seconds = _duration(spec, duration)
            else:
                raise ChaosError(f"--chaos {spec}: unknown kind {kind!r} (straggler or preempt)")
        return chaos

    @property
    def active(self) -> bool:
        return self.straggler is not None or self.mtbf_seconds is not None

    def slowdown(self, worker: str) -> float | None:
        """The slowdown factor of one worker process (same name, same factor), or None without straggler chaos."""
        if self.straggler is None:
            return None
        digest = hashlib.sha256(f"{self.seed}:{worker}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        return max(1.0, float(self.straggler.sample(rng, 1)[0]))

    def preemption_due(self, now: float) -> bool:
        """Whether a preemption notice arrives at ``now`` (monotonic seconds); draws the next arrival if so."""
        if self.mtbf_seconds is None:
            return False
        if self._next_preemption is None:
            self._next_preemption = now + float(self._rng.exponential(self.mtbf_seconds))
            return False
        if now < self._next_preemption:
            return False
        self._next_preemption = now + float(self._rng.exponential(self.mtbf_seconds))
        return True

    def pick(self, candidates: Sequence[str]) -> str | None:
        """The worker a notice hits, among the running spot workers."""
        if not candidates:
            return None
        self.preemptions += 1
        return sorted(candidates)[int(self._rng.integers(len(candidates)))]
