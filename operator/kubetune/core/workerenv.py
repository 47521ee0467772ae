"""The environment a worker gets: the controller's half of docs/trainer-contract.md.

Decides: every variable a worker pod (or a local worker process) starts with, from the TrainingJob and where the
worker runs. The operator and the local runner both call :func:`worker_env`, so a pod and a process see the same
contract. Pure: standard library and kubetune.api only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from kubetune.api import TrainingJob


@dataclass(frozen=True)
class Placement:
    """Where one worker runs and where its outputs go (the shell's choice)."""

    master_addr: str
    master_port: int
    checkpoint_dir: str
    progress: str  # a sink spec: file:PATH, stdout, none, ...
    result_file: str | None = None
    tracking_uri: str | None = None
    run_id: str | None = None
    threads: int | None = None
    resume_dir: str | None = None  # another run's checkpoints to start from while checkpoint_dir has none


def _flag(value: bool) -> str:
    return "true" if value else "false"


def worker_env(job: TrainingJob, rank: int, attempt: int, placement: Placement) -> dict[str, str]:
    """The environment of ``rank`` in gang ``attempt`` of ``job``."""
    spec = job.spec
    hyper, par, ckpt, trainer = spec.hyperparameters, spec.parallelism, spec.checkpoint, spec.trainer
    world = par.workers
    env: dict[str, str] = {
        "PYTHONUNBUFFERED": "1",
        "RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_RANK": "0",
        "MASTER_ADDR": placement.master_addr,
        "MASTER_PORT": str(placement.master_port),
        "PET_NNODES": str(world),
        "PET_NPROC_PER_NODE": "1",
        "PET_NODE_RANK": str(rank),
        "PET_MASTER_ADDR": placement.master_addr,
        "PET_MASTER_PORT": str(placement.master_port),
        "KUBETUNE_JOB": job.name,
        "KUBETUNE_ATTEMPT": str(attempt),
        "KUBETUNE_DATASET": trainer.dataset,
        "KUBETUNE_LEARNING_RATE": repr(hyper.learning_rate),
        "KUBETUNE_BATCH_SIZE": str(hyper.batch_size),
        "KUBETUNE_MOMENTUM": repr(hyper.momentum),
        "KUBETUNE_WEIGHT_DECAY": repr(hyper.weight_decay),
        "KUBETUNE_OPTIMIZER": hyper.optimizer,
        "KUBETUNE_EPOCHS": str(hyper.epochs),
        "KUBETUNE_STEPS": str(hyper.steps),
        "KUBETUNE_SEED": str(hyper.seed),
        "KUBETUNE_PARALLELISM": par.mode,
        "KUBETUNE_BACKEND": par.resolved_backend,
        "KUBETUNE_MICROBATCHES": str(par.microbatches),
        "KUBETUNE_K": str(par.applied_per_step),
        "KUBETUNE_TIMEOUT_SECONDS": str(par.timeout_seconds),
        "KUBETUNE_PRECISION": trainer.precision,
        "KUBETUNE_COMPILE": _flag(trainer.compile),
        "KUBETUNE_DEVICE": "cuda" if par.gpus_per_worker > 0 else "cpu",
        "KUBETUNE_CHECKPOINT_DIR": placement.checkpoint_dir,
        "KUBETUNE_CHECKPOINT_EVERY_STEPS": str(ckpt.every_steps),
        "KUBETUNE_CHECKPOINT_EVERY_SECONDS": str(ckpt.every_seconds),
        "KUBETUNE_CHECKPOINT_MIN_INTERVAL_SECONDS": str(ckpt.min_interval_seconds),
        "KUBETUNE_CHECKPOINT_KEEP": str(ckpt.keep),
        "KUBETUNE_PROGRESS": placement.progress,
    }
    if placement.resume_dir:
        env["KUBETUNE_RESUME_FROM"] = placement.resume_dir
    if trainer.model is not None:
        env["KUBETUNE_MODEL_FAMILY"] = trainer.model.family
        env["KUBETUNE_MODEL_DEPTH"] = str(trainer.model.depth)
        env["KUBETUNE_MODEL_WIDTH"] = str(trainer.model.width)
    if placement.result_file:
        env["KUBETUNE_RESULT_FILE"] = placement.result_file
    if placement.threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(placement.threads)
    if spec.tracking.enabled and placement.tracking_uri and placement.run_id:
        env["MLFLOW_TRACKING_URI"] = placement.tracking_uri
        env["KUBETUNE_MLFLOW_RUN_ID"] = placement.run_id
    env.update(user_env(job))
    return env


def cpu_threads(job: TrainingJob) -> int | None:
    """The CPU threads a worker container should use: its CPU limit, else its request, rounded up (at least 1).

    torch and the BLAS libraries size their thread pools by the node's cores, not the container's CPU quota, so a
    worker limited to 4 CPUs on a 64-core node would run 64 threads and be throttled by the kernel's CFS quota most
    of every period. None when neither is set (the worker may use the node). ``trainer.env`` overrides the result.
    """
    for kind in ("limits", "requests"):
        cores = job.spec.cpus(kind)
        if cores is not None and cores > 0:
            return max(1, math.ceil(cores - 1e-9))
    return None


def user_env(job: TrainingJob) -> Mapping[str, str]:
    """The job's own ``trainer.env`` entries (they win over the contract's, as in a Pod spec's later entries)."""
    return {item.name: item.value for item in job.spec.trainer.env}
