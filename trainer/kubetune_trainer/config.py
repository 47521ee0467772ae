"""The trainer's configuration: the contract's environment parsed into one frozen dataclass.

Decides: which environment variables exist (docs/trainer-contract.md), their defaults, how each value is
parsed and validated, and the derived per-worker batch size. Unknown ``KUBETUNE_*`` variables and bad values
raise :class:`ConfigError` naming the variable (and the value).

Must not import: torch, mlflow, kopf, kubernetes or ``kubetune`` (parsing stays pure and fast).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MODEL_FAMILIES = ("mlp", "cnn", "transformer")
DATASETS = ("digits", "mnist5k", "synthetic")
OPTIMIZERS = ("sgd", "adam")
PARALLELISMS = ("data", "model", "ksync")
BACKENDS = ("auto", "nccl", "gloo")
PRECISIONS = ("fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """A variable of the trainer contract is unknown or has a bad value."""


def _int(minimum: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r}: not an integer") from None
        if value < minimum:
            raise ConfigError(f"{name}={raw!r}: must be >= {minimum}")
        return value

    return parse


def _float(minimum: float, *, strict: bool = False) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r}: not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{name}={raw!r}: not a finite number")
        if value < minimum or (strict and value == minimum):
            raise ConfigError(f"{name}={raw!r}: must be {'>' if strict else '>='} {minimum}")
        return value

    return parse


def _choice(choices: Sequence[str]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ConfigError(f"{name}={raw!r}: must be one of {', '.join(choices)}")
        return value

    return parse


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise ConfigError(f"{name}={raw!r}: must be true or false")


def _text(name: str, raw: str) -> str:
    return raw.strip()


@dataclass(frozen=True)
class StepDelay:
    """Chaos knob: a random sleep per worker and step, ``SCALE * (SHIFT + Exp(RATE))`` seconds."""

    shift: float
    rate: float
    scale: float = 1.0

    @property
    def mean(self) -> float:
        """Expected delay in seconds."""
        return self.scale * (self.shift + 1.0 / self.rate)

    def order_statistic_mean(self, k: int, n: int) -> float:
        """E[X_(k:n)] in seconds: the k-th smallest of n independent delays (shift + (H_n - H_(n-k)) / rate)."""
        harmonic = sum(1.0 / i for i in range(n - k + 1, n + 1))
        return self.scale * (self.shift + harmonic / self.rate)

    def sample(self, rng: random.Random) -> float:
        """One delay in seconds."""
        return self.scale * (self.shift + rng.expovariate(self.rate))

    @staticmethod
    def rng(seed: int, rank: int) -> random.Random:
        """The delay stream of one rank: seeded by (seed, rank), apart from every other random stream."""
        return random.Random(f"kubetune-step-delay:{seed}:{rank}")


def _step_delay(name: str, raw: str) -> StepDelay | None:
    """``shiftedexp:SHIFT,RATE[,SCALE_SECONDS]`` (``none`` or empty: off)."""
    value = raw.strip().lower()
    if value in ("", "none"):
        return None
    kind, _, args = value.partition(":")
    expected = "must be shiftedexp:SHIFT,RATE[,SCALE_SECONDS] or none"
    parts = args.split(",")
    if kind != "shiftedexp" or len(parts) not in (2, 3):
        raise ConfigError(f"{name}={raw!r}: {expected}")
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: {expected} (numbers)") from None
    if not all(math.isfinite(number) for number in numbers):
        raise ConfigError(f"{name}={raw!r}: SHIFT, RATE and SCALE_SECONDS must be finite")
    shift, rate, scale = (*numbers, 1.0)[:3]
    if shift < 0 or rate <= 0 or scale <= 0:
        raise ConfigError(f"{name}={raw!r}: needs SHIFT >= 0, RATE > 0 and SCALE_SECONDS > 0")
    return StepDelay(shift, rate, scale)


def _progress(name: str, raw: str) -> str:
    value = raw.strip()
    if value in ("", "none", "stdout") or ":" in value:
        return value or "none"
    raise ConfigError(f"{name}={raw!r}: must be file:PATH, stdout, none or another SCHEME:TARGET")


# field name -> (environment variable, parser). The default lives on the dataclass field.
_KUBETUNE_FIELDS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "job": ("KUBETUNE_JOB", _text),
    "attempt": ("KUBETUNE_ATTEMPT", _int(0)),
    "model_family": ("KUBETUNE_MODEL_FAMILY", _choice(MODEL_FAMILIES)),
    "model_depth": ("KUBETUNE_MODEL_DEPTH", _int(1)),
    "model_width": ("KUBETUNE_MODEL_WIDTH", _int(1)),
    "dataset": ("KUBETUNE_DATASET", _choice(DATASETS)),
    "synthetic_seq_len": ("KUBETUNE_SYNTHETIC_SEQ_LEN", _int(1)),
    "synthetic_vocab": ("KUBETUNE_SYNTHETIC_VOCAB", _int(2)),
    "learning_rate": ("KUBETUNE_LEARNING_RATE", _float(0.0, strict=True)),
    "batch_size": ("KUBETUNE_BATCH_SIZE", _int(1)),
    "momentum": ("KUBETUNE_MOMENTUM", _float(0.0)),
    "weight_decay": ("KUBETUNE_WEIGHT_DECAY", _float(0.0)),
    "optimizer": ("KUBETUNE_OPTIMIZER", _choice(OPTIMIZERS)),
    "epochs": ("KUBETUNE_EPOCHS", _int(1)),
    "steps": ("KUBETUNE_STEPS", _int(0)),
    "seed": ("KUBETUNE_SEED", _int(0)),
    "parallelism": ("KUBETUNE_PARALLELISM", _choice(PARALLELISMS)),
    "backend": ("KUBETUNE_BACKEND", _choice(BACKENDS)),
    "microbatches": ("KUBETUNE_MICROBATCHES", _int(1)),
    "k": ("KUBETUNE_K", _int(1)),
    "precision": ("KUBETUNE_PRECISION", _choice(PRECISIONS)),
    "compile": ("KUBETUNE_COMPILE", _bool),
    "device": ("KUBETUNE_DEVICE", _choice(DEVICES)),
    "checkpoint_dir": ("KUBETUNE_CHECKPOINT_DIR", _text),
    "resume_from": ("KUBETUNE_RESUME_FROM", _text),
    "checkpoint_every_steps": ("KUBETUNE_CHECKPOINT_EVERY_STEPS", _int(0)),
    "checkpoint_every_seconds": ("KUBETUNE_CHECKPOINT_EVERY_SECONDS", _float(0.0)),
    "checkpoint_min_interval_seconds": ("KUBETUNE_CHECKPOINT_MIN_INTERVAL_SECONDS", _float(0.0)),
    "checkpoint_keep": ("KUBETUNE_CHECKPOINT_KEEP", _int(1)),
    "progress": ("KUBETUNE_PROGRESS", _progress),
    "progress_interval": ("KUBETUNE_PROGRESS_INTERVAL", _float(0.0)),
    "result_file": ("KUBETUNE_RESULT_FILE", _text),
    "timeout_seconds": ("KUBETUNE_TIMEOUT_SECONDS", _float(0.0, strict=True)),
    "slowdown": ("KUBETUNE_SLOWDOWN", _float(1.0)),
    "step_delay": ("KUBETUNE_STEP_DELAY", _step_delay),
    "mlflow_run_id": ("KUBETUNE_MLFLOW_RUN_ID", _text),
}

# Variables the trainer reads that are not KUBETUNE_*: (primary, torchrun fallback).
_RENDEZVOUS: dict[str, tuple[str, str | None, Callable[[str, str], Any]]] = {
    "rank": ("RANK", "PET_NODE_RANK", _int(0)),
    "world_size": ("WORLD_SIZE", "PET_NNODES", _int(1)),
    "local_rank": ("LOCAL_RANK", None, _int(0)),
    "master_addr": ("MASTER_ADDR", "PET_MASTER_ADDR", _text),
    "master_port": ("MASTER_PORT", "PET_MASTER_PORT", _int(1)),
}


@dataclass(frozen=True)
class TrainerConfig:
    """Everything one worker needs to know; build it with :meth:`from_env`."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    job: str = "local"
    attempt: int = 0
    model_family: str = "mlp"
    model_depth: int = 2
    model_width: int = 128
    dataset: str = "digits"
    synthetic_seq_len: int = 128  # dataset synthetic, transformer: tokens per sequence
    synthetic_vocab: int = 256  # dataset synthetic, transformer: vocabulary size
    learning_rate: float = 0.05
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 0.0
    optimizer: str = "sgd"
    epochs: int = 30
    steps: int = 0
    seed: int = 0
    parallelism: str = "data"
    backend: str = "auto"
    microbatches: int = 4
    k: int = 0  # ksync: gradients applied per step (0 = every worker)
    precision: str = "fp32"
    compile: bool = False
    device: str = "auto"
    checkpoint_dir: str = ""
    resume_from: str = ""  # another run's checkpoint directory, to start from while checkpoint_dir has none
    checkpoint_every_steps: int = 100
    checkpoint_every_seconds: float = 0.0
    checkpoint_min_interval_seconds: float = 1.0
    checkpoint_keep: int = 2
    progress: str = "none"
    progress_interval: float = 2.0
    result_file: str = ""
    timeout_seconds: float = 300.0
    slowdown: float = 1.0
    step_delay: StepDelay | None = None  # chaos: a random sleep per worker and step
    mlflow_tracking_uri: str = ""
    mlflow_run_id: str = ""
    omp_num_threads: int = 0

    def __post_init__(self) -> None:
        if self.rank >= self.world_size:
            raise ConfigError(f"RANK={self.rank}: must be < WORLD_SIZE={self.world_size}")
        if self.batch_size % self.world_size != 0 and self.parallelism in ("data", "ksync"):
            raise ConfigError(
                f"KUBETUNE_BATCH_SIZE={self.batch_size}: the global batch must be divisible by "
                f"WORLD_SIZE={self.world_size}"
            )
        if self.parallelism == "model" and self.batch_size % self.microbatches != 0:
            raise ConfigError(
                f"KUBETUNE_MICROBATCHES={self.microbatches}: must divide KUBETUNE_BATCH_SIZE={self.batch_size}"
            )
        if self.parallelism == "ksync" and self.k > self.world_size:
            raise ConfigError(f"KUBETUNE_K={self.k}: must be <= WORLD_SIZE={self.world_size} (K of N workers)")

    @property
    def applied_per_step(self) -> int:
        """ksync: gradients applied per step, K of the N workers (``KUBETUNE_K``; 0 means all)."""
        return self.k or self.world_size

    @property
    def per_worker_batch(self) -> int:
        """Batch one worker computes per step: the global batch split over data-parallel ranks."""
        if self.parallelism == "model":
            return self.batch_size
        return self.batch_size // self.world_size

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TrainerConfig:
        """Parse the contract's variables; raise :class:`ConfigError` naming a bad or unknown variable."""
        known = {variable for variable, _ in _KUBETUNE_FIELDS.values()}
        for name in sorted(env):
            if name.startswith("KUBETUNE_") and name not in known:
                raise ConfigError(f"{name}: unknown variable (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for field, (variable, parse) in _KUBETUNE_FIELDS.items():
            if variable in env:
                values[field] = parse(variable, env[variable])
        for field, (primary, fallback, parse) in _RENDEZVOUS.items():
            if primary in env:
                values[field] = parse(primary, env[primary])
            elif fallback is not None and fallback in env:
                values[field] = parse(fallback, env[fallback])
        if "world_size" not in values and "PET_NPROC_PER_NODE" in env and "PET_NNODES" in env:
            nproc = _int(1)("PET_NPROC_PER_NODE", env["PET_NPROC_PER_NODE"])
            values["world_size"] = values.get("world_size", 1) * nproc
        if "MLFLOW_TRACKING_URI" in env:
            values["mlflow_tracking_uri"] = env["MLFLOW_TRACKING_URI"].strip()
        if env.get("OMP_NUM_THREADS", "").strip():
            values["omp_num_threads"] = _int(1)("OMP_NUM_THREADS", env["OMP_NUM_THREADS"])
        return cls(**values)

    def as_params(self) -> dict[str, str]:
        """The hyperparameters worth recording (MLflow params): what changes the trained model."""
        keys = (
            "model_family", "model_depth", "model_width", "dataset", "learning_rate", "batch_size",
            "momentum", "weight_decay", "optimizer", "epochs", "steps", "seed", "parallelism",
            "microbatches", "precision", "world_size",
        )  # fmt: skip
        return {key: str(getattr(self, key)) for key in keys}


def env_from_args(argv: Sequence[str]) -> dict[str, str]:
    """``--learning-rate 0.1 --model-family cnn`` -> ``{"KUBETUNE_LEARNING_RATE": "0.1", ...}``."""
    out: dict[str, str] = {}
    items = list(argv)
    index = 0
    while index < len(items):
        flag = items[index]
        if not flag.startswith("--") or len(flag) < 3:
            raise ConfigError(f"{flag!r}: expected --key value")
        key, eq, inline = flag[2:].partition("=")
        if eq:
            value = inline
            index += 1
        else:
            if index + 1 >= len(items):
                raise ConfigError(f"{flag}: missing value")
            value = items[index + 1]
            index += 2
        out["KUBETUNE_" + key.replace("-", "_").upper()] = value
    return out
