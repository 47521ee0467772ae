"""Task-time distributions for the simulator, and the ``DIST`` strings that name them.

Decides what ``--dist`` accepts and what it means:

- ``shiftedexp:SHIFT,RATE``: ``SHIFT + Exp(RATE)`` (mean ``SHIFT + 1/RATE``), SHIFT >= 0, RATE > 0;
- ``pareto:XM,ALPHA``: Pareto with scale XM > 0 and shape ALPHA > 0 (``P(X > t) = (XM/t)^ALPHA`` for t >= XM);
- ``shiftedpareto:SHIFT,XM,ALPHA``: ``SHIFT + Pareto(XM, ALPHA)``, SHIFT >= 0 (a fixed start-up plus a heavy-tailed
  part: what a trial slowed by a Pareto factor looks like);
- ``hyperexp:P,RATE1,RATE2``: ``Exp(RATE1)`` with probability P, else ``Exp(RATE2)``;
- ``empirical:FILE``: resampling (with replacement) of the numbers in FILE: one per line (blank lines and ``#``
  comments skipped) or a JSON list.

Start-up: a shifted family's SHIFT is its *start-up*, the part of a task's time every copy pays in full (a process
or pod starting, imports, data); the rest is *work*, which a copy that resumes a task from its checkpoint at progress
``p`` does only ``1 - p`` of (see :mod:`kubetune.simulate.engine`). The other families have no start-up.

A bad string raises :class:`DistributionError` naming the bad part. Sampling uses a numpy ``Generator`` (the caller
seeds it). May import numpy; must not import kopf, kubernetes, optuna, mlflow or torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]

FORMS = (
    "shiftedexp:SHIFT,RATE",
    "pareto:XM,ALPHA",
    "shiftedpareto:SHIFT,XM,ALPHA",
    "hyperexp:P,RATE1,RATE2",
    "empirical:FILE",
)


class DistributionError(ValueError):
    """A ``--dist`` string that does not parse, or names parameters out of range."""


class Distribution(Protocol):
    """A task-time distribution: non-negative draws, a mean (``inf`` when it has none), a canonical name."""

    @property
    def mean(self) -> float: ...

    @property
    def startup(self) -> float: ...

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> Floats: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class ShiftedExp:
    shift: float
    rate: float

    @property
    def startup(self) -> float:
        return self.shift

    @property
    def mean(self) -> float:
        return self.shift + 1.0 / self.rate

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> Floats:
        draws: Floats = rng.standard_exponential(size)
        draws *= 1.0 / self.rate
        draws += self.shift
        return draws

    def describe(self) -> str:
        return f"shiftedexp:{self.shift:g},{self.rate:g}"


@dataclass(frozen=True)
class Pareto:
    xm: float
    alpha: float

    @property
    def startup(self) -> float:
        return 0.0

    @property
    def mean(self) -> float:
        return self.alpha * self.xm / (self.alpha - 1.0) if self.alpha > 1 else math.inf

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> Floats:
        # X = xm * exp(E / alpha), E ~ Exp(1): the inverse-survival transform.
        draws: Floats = rng.standard_exponential(size)
        draws *= 1.0 / self.alpha
        np.exp(draws, out=draws)
        draws *= self.xm
        return draws

    def describe(self) -> str:
        return f"pareto:{self.xm:g},{self.alpha:g}"


@dataclass(frozen=True)
class ShiftedPareto:
    shift: float
    xm: float
    alpha: float

    @property
    def startup(self) -> float:
        return self.shift

    @property
    def mean(self) -> float:
        return self.shift + Pareto(self.xm, self.alpha).mean

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> Floats:
        draws = Pareto(self.xm, self.alpha).sample(rng, size)
        draws += self.shift
        return draws

    def describe(self) -> str:
        return f"shiftedpareto:{self.shift:g},{self.xm:g},{self.alpha:g}"


@dataclass(frozen=True)
class HyperExp:
    p: float
    rate1: float
    rate2: float

    @property
    def startup(self) -> float:
        return 0.0

    @property
    def mean(self) -> float:
        return self.p / self.rate1 + (1.0 - self.p) / self.rate2

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> Floats:
        first = rng.random(size) < self.p
        draws: Floats = rng.standard_exponential(size)
        draws *= np.where(first, 1.0 / self.rate1, 1.0 / self.rate2)
        return draws

    def describe(self) -> str:
        return f"hyperexp:{self.p:g},{self.rate1:g},{self.rate2:g}"


@dataclass(frozen=True)
class Empirical:
    values: Floats = field(repr=False)
    source: str = ""

    @property
    def startup(self) -> float:
        return 0.0

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> Floats:
        picked: Floats = self.values[rng.integers(0, self.values.size, size)]
        return picked

    def describe(self) -> str:
        return f"empirical:{self.source} ({self.values.size} values)"


def _numbers(text: str, spec: str, names: tuple[str, ...]) -> list[float]:
    parts = [part.strip() for part in text.split(",")] if text.strip() else []
    if len(parts) != len(names):
        raise DistributionError(
            f"--dist {spec}: expects {len(names)} numbers {','.join(names)}, got {len(parts)}"
            + (f" ({text!r})" if parts else "")
        )
    out = []
    for name, part in zip(names, parts, strict=True):
        try:
            value = float(part)
        except ValueError:
            raise DistributionError(f"--dist {spec}: {name} {part!r} is not a number") from None
        if not math.isfinite(value):
            raise DistributionError(f"--dist {spec}: {name} must be finite, got {part!r}")
        out.append(value)
    return out


def _positive(spec: str, name: str, value: float) -> None:
    if value <= 0:
        raise DistributionError(f"--dist {spec}: {name} must be > 0, got {value:g}")


def read_empirical(path: Path) -> Floats:
    """Task times from ``path``: a JSON list, or one number per line (blank lines and ``#`` comments skipped)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise DistributionError(f"--dist empirical:{path}: cannot read the file ({error.strerror or error})") from None
    values: list[float] = []
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise DistributionError(f"--dist empirical:{path}: not a JSON list ({error.msg})") from None
        for index, item in enumerate(data):
            if isinstance(item, bool) or not isinstance(item, int | float):
                raise DistributionError(f"--dist empirical:{path}: item {index} ({item!r}) is not a number")
            values.append(float(item))
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            try:
                values.append(float(entry))
            except ValueError:
                raise DistributionError(f"--dist empirical:{path}: line {number} ({entry!r}) is not a number") from None
    if not values:
        raise DistributionError(f"--dist empirical:{path}: the file holds no task times")
    array = np.asarray(values, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(array) | (array < 0))
    if bad.size:
        raise DistributionError(f"--dist empirical:{path}: task times must be finite and >= 0, got {values[bad[0]]!r}")
    return array


def parse_distribution(spec: str) -> Distribution:
    """The distribution a ``DIST`` string names; :class:`DistributionError` naming the bad part otherwise."""
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if not sep:
        raise DistributionError(f"--dist {spec}: expected KIND:PARAMETERS, one of {' | '.join(FORMS)}")
    if kind == "shiftedexp":
        shift, rate = _numbers(rest, spec, ("SHIFT", "RATE"))
        if shift < 0:
            raise DistributionError(f"--dist {spec}: SHIFT must be >= 0, got {shift:g}")
        _positive(spec, "RATE", rate)
        return ShiftedExp(shift, rate)
    if kind == "pareto":
        xm, alpha = _numbers(rest, spec, ("XM", "ALPHA"))
        _positive(spec, "XM", xm)
        _positive(spec, "ALPHA", alpha)
        return Pareto(xm, alpha)
    if kind == "shiftedpareto":
        shift, xm, alpha = _numbers(rest, spec, ("SHIFT", "XM", "ALPHA"))
        if shift < 0:
            raise DistributionError(f"--dist {spec}: SHIFT must be >= 0, got {shift:g}")
        _positive(spec, "XM", xm)
        _positive(spec, "ALPHA", alpha)
        return ShiftedPareto(shift, xm, alpha)
    if kind == "hyperexp":
        p, rate1, rate2 = _numbers(rest, spec, ("P", "RATE1", "RATE2"))
        if not 0 <= p <= 1:
            raise DistributionError(f"--dist {spec}: P must be in [0, 1], got {p:g}")
        _positive(spec, "RATE1", rate1)
        _positive(spec, "RATE2", rate2)
        return HyperExp(p, rate1, rate2)
    if kind == "empirical":
        if not rest.strip():
            raise DistributionError(f"--dist {spec}: FILE is missing (empirical:FILE)")
        return Empirical(read_empirical(Path(rest.strip())), rest.strip())
    raise DistributionError(f"--dist {spec}: unknown distribution {kind!r}; one of {' | '.join(FORMS)}")
