"""The training run: config -> build -> resume -> step loop -> result. ``python -m kubetune_trainer`` runs it.

Decides: the order of a worker's life (resume from the newest complete checkpoint is the normal start), the
step loop and what happens at step boundaries (stop/checkpoint agreement across ranks, heartbeats, epoch ends
with evaluation), divergence and preemption handling, the outcome -> exit code mapping of the contract (0
succeeded, 143 preempted, 1 failed, 2 InvalidConfig). The hot loop keeps the loss on the device and reads it
only at heartbeat, epoch and checkpoint time (no per-step host sync on one process).

Checkpoints are asynchronous where one process writes them (one process, data parallel: rank 0, ksync: the
parameter server): the step loop only snapshots the state to CPU and a background writer commits it
(:class:`kubetune_trainer.checkpoint.BackgroundWriter`). ``checkpoint_step`` -- what heartbeats (``checkpoint``
records), the result and ksync's end name -- moves only once a write has committed; data-parallel ranks > 0 learn
rank 0's newest committed step through the per-step agreement collective they already make. A stop (SIGTERM) and
the end of training write a last checkpoint and wait for it before the result goes out; a failed write is raised
on the training thread at the next checkpoint or at that wait. Model parallelism writes every stage's file
synchronously between barriers, as a collective. Periodic checkpoints (every N steps, every N seconds, epoch
ends) come at least ``checkpoint_min_interval_seconds`` apart (default 1 s, so a model that steps in a millisecond
does not write many checkpoints a second); whether one is too soon is part of the per-step agreement, so stages
defer together.

Must not import: kopf, kubernetes or ``kubetune``; mlflow only through :mod:`kubetune_trainer.tracking`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pickle
import random
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from kubetune_trainer import checkpoint
from kubetune_trainer.config import ConfigError, TrainerConfig, env_from_args
from kubetune_trainer.data import Splits, load_dataset
from kubetune_trainer.ksync import DIVERGED, DONE, FAILED, PREEMPTED, KSyncStep
from kubetune_trainer.models import StagedModel, build_model
from kubetune_trainer.pipeline import PipelineStage, boundary_shapes
from kubetune_trainer.preemption import PREEMPTED_EXIT_CODE, StopFlag
from kubetune_trainer.progress import TERMINATION_LOG, Reporter, open_sink, write_result
from kubetune_trainer.tracking import Tracker

EVAL_BATCH = 512
USAGE = """usage: python -m kubetune_trainer [--key value ...]

Configured by the environment of docs/trainer-contract.md (KUBETUNE_*, RANK, WORLD_SIZE, MASTER_ADDR, ...).
Each --key value overrides KUBETUNE_<KEY>, e.g. --learning-rate 0.1 --model-family cnn --epochs 5.
Exit codes: 0 succeeded, 143 preempted, 1 failed, 2 invalid configuration."""


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


class Preempted(RuntimeError):
    """A stop was requested (SIGTERM on some rank); a checkpoint has been written."""


def _resolve_device(config: TrainerConfig) -> torch.device:
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("KUBETUNE_DEVICE='cuda': no CUDA device is available")
        return torch.device("cuda", config.local_rank)
    return torch.device("cpu")


def _init_process_group(config: TrainerConfig, device: torch.device) -> None:
    backend = config.backend
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend=backend,
        init_method=f"tcp://{config.master_addr}:{config.master_port}",
        rank=config.rank,
        world_size=config.world_size,
        timeout=datetime.timedelta(seconds=config.timeout_seconds),
    )


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        # Pickled here, in C: as a tuple of 625 ints it would cost the checkpoint writer 625 persistent_id calls of
        # torch.save, all holding the GIL the training thread needs.
        "python": pickle.dumps(random.getstate(), protocol=pickle.HIGHEST_PROTOCOL),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    python = state["python"]
    random.setstate(pickle.loads(python) if isinstance(python, bytes) else python)  # older checkpoints: the tuple
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def sampler_order(sampler: DistributedSampler[int], epoch: int) -> torch.Tensor:
    """The indices ``sampler`` yields in ``epoch`` (shuffled, drop_last), computed as one tensor.

    The same order as ``sampler.set_epoch(epoch); list(sampler)`` without a Python list of every index (a
    millisecond per epoch on a 16k-sample set).
    """
    if not (sampler.shuffle and sampler.drop_last):
        raise ValueError("sampler_order: the trainer's samplers shuffle and drop the last partial round")
    generator = torch.Generator().manual_seed(sampler.seed + epoch)
    order = torch.randperm(len(sampler.dataset), generator=generator)  # type: ignore[arg-type]
    return order[: sampler.total_size][sampler.rank :: sampler.num_replicas].contiguous()


class Trainer:
    """One worker's training state and loop: ``run()`` is the whole life, ``train_steps(n)`` the hot loop."""

    def __init__(
        self,
        config: TrainerConfig,
        *,
        splits: Splits | None = None,
        reporter: Reporter | None = None,
        stop: StopFlag | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.stop = stop or StopFlag()
        self.clock = clock  # seconds, for the checkpoint intervals and epoch times (injectable: tests, benchmarks)
        self.reporter = reporter or Reporter(
            open_sink(config.progress),
            job=config.job,
            rank=config.rank,
            attempt=config.attempt,
            interval=config.progress_interval,
        )
        self.tracker = Tracker(config)
        self.device = _resolve_device(config)
        if config.omp_num_threads:
            torch.set_num_threads(config.omp_num_threads)
        ksync = config.parallelism == "ksync" and config.distributed  # RPC to a parameter server, no process group
        if config.distributed and not ksync and not dist.is_initialized():
            _init_process_group(config, self.device)
        self.data = splits or load_dataset(
            config.dataset,
            config.model_family,
            config.seed,
            seq_len=config.synthetic_seq_len,
            vocab=config.synthetic_vocab,
        )
        self.train_x = self.data.train_x.to(self.device)
        self.train_y = self.data.train_y.to(self.device)
        self.pipelined = config.parallelism == "model" and config.distributed

        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed)
        full = build_model(
            config.model_family,
            config.model_depth,
            config.model_width,
            input_shape=self.data.input_shape,
            num_outputs=self.data.num_outputs,
            vocab_size=self.data.vocab_size,
            classify=self.data.classify,
        )
        self.pipeline: PipelineStage | None = None
        if self.pipelined:
            self.module = self._build_stage(full)
        else:
            self.module = full.to(self.device)
        self.forward_model: nn.Module = self.module
        if config.compile:
            self.forward_model = torch.compile(self.module)  # type: ignore[assignment]
        if config.distributed and not self.pipelined and not ksync:
            self.forward_model = DistributedDataParallel(self.forward_model)
        self.optimizer = self._build_optimizer()

        # Model parallelism: every stage sees every batch (one replica); data: each rank its shard.
        replicas, replica = (1, 0) if self.pipelined else (config.world_size, config.rank)
        self.sampler: DistributedSampler[int] = DistributedSampler(
            range(len(self.data.train_y)),  # type: ignore[arg-type]
            num_replicas=replicas,
            rank=replica,
            shuffle=True,
            seed=config.seed,
            drop_last=True,
        )
        self.batch = config.per_worker_batch
        self.steps_per_epoch = len(self.sampler) // self.batch
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"KUBETUNE_BATCH_SIZE={config.batch_size}: larger than a worker's share of the training set"
            )
        self.total_steps = config.steps or config.epochs * self.steps_per_epoch
        self.samples_per_step = self.batch * (config.applied_per_step if ksync else replicas)

        self.step = 0
        self.epoch = 0  # completed epochs
        self.batch_in_epoch = 0
        self.samples = 0
        self.checkpoint_step: int | None = None  # the newest checkpoint known to be complete on disk
        self._saved_step: int | None = None  # the newest step handed to a checkpoint (written or in flight)
        self.metrics: dict[str, float] = {}
        self._batches: torch.Tensor | None = None
        self._loss_sum = torch.zeros((), device=self.device)
        self._epoch_loss = 0.0  # folded-in loss sums of the epoch (host side)
        self._epoch_start = self.clock()
        self._epoch_first_step = 0
        self._last_checkpoint_time = self.clock()
        # Per-step agreement across ranks: stop, time-based checkpoint due, loss, rank 0's newest committed checkpoint,
        # a periodic checkpoint too soon after the last.
        self._flags = torch.zeros(5, dtype=torch.float64, device=self.device)
        self._too_soon = False  # set by every _agree()
        self._data_parallel = config.distributed and not self.pipelined and not ksync
        # Seconds of this rank's own work (forward, injected slowness) over the steps since the last heartbeat.
        self._local_step = 0.0
        self._local_steps = 0
        self.writer = checkpoint.BackgroundWriter()
        self._delay_rng = config.step_delay.rng(config.seed, config.rank) if config.step_delay and not ksync else None
        self.ksync: KSyncStep | None = None  # K-of-N synchronous SGD (ksync.py); last, as it joins the gang
        if ksync:
            self.ksync = KSyncStep(
                config,
                module=self.module,
                optimizer=self.optimizer,
                train_x=self.train_x,
                train_y=self.train_y,
                batch=self.batch,
                steps_per_epoch=self.steps_per_epoch,
                autocast=self._autocast,
            )

    # ---- build ---------------------------------------------------------------------------------------------

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.config.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _build_stage(self, full: StagedModel) -> nn.Module:
        config = self.config
        try:
            stages = full.stages(config.world_size)
        except ValueError as error:
            raise ConfigError(
                f"WORLD_SIZE={config.world_size}: {error} (KUBETUNE_MODEL_DEPTH={config.model_depth})"
            ) from None
        shapes = boundary_shapes(stages, self.data.train_x[:1])
        stage = stages[config.rank].to(self.device)
        self.pipeline = PipelineStage(
            stage,
            rank=config.rank,
            world_size=config.world_size,
            shapes=shapes,
            microbatches=config.microbatches,
            device=self.device,
            autocast=self._autocast,
        )
        return stage

    def _build_optimizer(self) -> torch.optim.Optimizer:
        config = self.config
        params = list(self.module.parameters())
        if config.optimizer == "adam":
            return torch.optim.Adam(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        return torch.optim.SGD(
            params, lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
        )

    # ---- checkpoints ---------------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "samples": self.samples,
            "epoch_loss": self._epoch_loss + float(self._loss_sum),
            "epoch_first_step": self._epoch_first_step,
            "rng": _rng_state(),
            "params": self.config.as_params(),
        }

    def resume(self) -> int | None:
        """Load the newest complete checkpoint, if any; returns its step. The run's own checkpoints come first;
        while it has none, the newest of ``resume_from`` (another copy's directory: a task moved off a slow
        machine continues where that copy checkpointed), which this run never writes to."""
        own = self.config.checkpoint_dir
        step = checkpoint.latest(own) if own else None
        root = own
        if step is None and self.config.resume_from:
            root = self.config.resume_from
            step = checkpoint.latest(root)
        if step is None:
            return None
        file_rank = self.config.rank if self.pipelined else 0
        state = checkpoint.load(root, step, file_rank, map_location=self.device)
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.samples = int(state["samples"])
        self._epoch_loss = float(state["epoch_loss"])
        self._epoch_first_step = int(state["epoch_first_step"])
        self._loss_sum.zero_()
        self._batches = None
        _set_rng_state(state["rng"])
        if root == own:  # a step borrowed from another directory is not checkpointed here yet
            self.checkpoint_step = self._saved_step = step
        return step

    def save_checkpoint(self, *, periodic: bool = False) -> None:
        """Checkpoint the current step (``periodic``: one the interval asked for, which :meth:`_agree` may have
        deferred; a stop or the end of training always checkpoints).

        One writer (one process, data parallel, ksync): rank 0 snapshots the state and hands it to the background
        writer; the step is reported as the checkpoint once the write has committed. Model parallelism: every stage
        writes its file between barriers (collective), committed before this returns.
        """
        root = self.config.checkpoint_dir
        if not root or self._saved_step == self.step or (periodic and self._too_soon):
            return
        if self.pipelined:
            if self.config.rank == 0:
                checkpoint.prepare(root, self.step)
            dist.barrier()
            checkpoint.write_rank(checkpoint.temp_dir(root, self.step), self.config.rank, self._state())
            dist.barrier()
            if self.config.rank == 0:
                checkpoint.commit(root, self.step, self.config.checkpoint_keep)
            dist.barrier()
            self._checkpoint_written(self.step)
        elif self.config.rank == 0:
            self._check_finite(self._epoch_loss + float(self._loss_sum))
            self.writer.submit(root, self.step, {0: self._state()}, self.config.checkpoint_keep)
        self._saved_step = self.step
        self._last_checkpoint_time = self.clock()

    def _checkpoint_written(self, step: int) -> None:
        """Checkpoint ``step`` is complete on disk: from now on it is the one this worker names."""
        if self.checkpoint_step is not None and step <= self.checkpoint_step:
            return
        self.checkpoint_step = step
        # The record names the checkpoint's step and epoch; ``samples`` is this worker's count now (the write
        # committed a few steps after its snapshot), which keeps the samples/s window moving forward.
        self.reporter.report(
            step,
            total_steps=self.total_steps,
            epoch=step // self.steps_per_epoch,
            samples=self.samples,
            kind="checkpoint",
        )

    def _collect_written(self) -> None:
        """Publish a checkpoint this process's background writer has committed since the last look (every step)."""
        written = self.writer.completed
        if written is not None and written != self.checkpoint_step:
            self._checkpoint_written(written)

    def finish_checkpoints(self) -> None:
        """Wait for the checkpoint write in flight and publish it; raises a failed write's error.

        Collective in data parallelism: every rank learns rank 0's newest committed step (rank 0 joins even after a
        failed write, so that no rank is left waiting in the collective).
        """
        error: Exception | None = None
        try:
            self.writer.wait()
        except Exception as raised:
            error = raised
        written = self.writer.completed
        if self._data_parallel:
            mine = -1.0 if written is None else float(written)
            shared = torch.tensor([mine], dtype=torch.float64, device=self.device)
            dist.all_reduce(shared, op=dist.ReduceOp.MAX)
            value = float(shared.item())
            written = int(value) if value >= 0 else None
        if written is not None:
            self._checkpoint_written(written)
        if error is not None:
            raise error

    # ---- the loop ------------------------------------------------------------------------------------------

    def _start_epoch(self) -> None:
        order = sampler_order(self.sampler, self.epoch)
        usable = self.steps_per_epoch * self.batch
        self._batches = order[:usable].view(self.steps_per_epoch, self.batch).to(self.device)

    def _step(self, indices: torch.Tensor) -> None:
        if self.ksync is not None:  # rank 0 = the parameter server: the workers computed this step's gradients
            self._loss_sum += self.ksync.apply(self.step)
            return
        x = self.train_x[indices]
        y = self.train_y[indices]
        self.optimizer.zero_grad(set_to_none=True)
        if self.pipeline is not None:
            loss = self.pipeline.train_step(x, y)
            if loss is not None:
                self._loss_sum += loss
        else:
            began = time.perf_counter()
            with self._autocast():
                logits = self.forward_model(x)
                loss = F.cross_entropy(logits.flatten(0, -2).float(), y.flatten())
            self._local_step += time.perf_counter() - began  # this rank's own work (the backward waits for peers)
            loss.backward()  # type: ignore[no-untyped-call]
            self._loss_sum += loss.detach()
        self.optimizer.step()

    def _check_finite(self, value: float) -> None:
        if not np.isfinite(value):
            raise Diverged(f"the training loss became {value} at step {self.step}")

    def _agree(self) -> tuple[bool, bool]:
        """(stop, time-based checkpoint due), identical on every rank; raises Diverged everywhere together.

        Also sets :attr:`_too_soon` (a periodic checkpoint now would come within ``checkpoint_min_interval_seconds``
        of the last one), identical on every rank too: model-parallel stages checkpoint collectively.
        """
        config = self.config
        since = self.clock() - self._last_checkpoint_time
        every = config.checkpoint_every_seconds
        time_due = bool(every) and since >= every
        self._too_soon = since < config.checkpoint_min_interval_seconds
        if self.ksync is not None:  # rank 0 alone decides; the workers learn it from the next publication
            loss = float(self._loss_sum)
            if not np.isfinite(loss):
                message = f"the training loss became {loss} at step {self.step}"
                self.ksync.finish(DIVERGED, self.step, message, self.checkpoint_step)
                raise Diverged(message)
            return self.stop.requested or self.ksync.stop_requested, time_due
        if not self.config.distributed:
            return self.stop.requested, time_due
        flags = self._flags
        flags[0] = float(self.stop.requested)
        flags[1] = float(time_due)
        flags[2] = 0.0 if (self.pipeline is not None and not self.pipeline.last) else self._loss_sum
        written = self.writer.completed  # only rank 0 of data parallelism has a writer that writes
        flags[3] = -1.0 if written is None else float(written)
        flags[4] = float(self._too_soon)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        stop, due, loss, shared, too_soon = flags.tolist()
        self._too_soon = bool(too_soon)
        if not np.isfinite(loss):
            raise Diverged(f"the training loss became {loss} at step {self.step}")
        if shared >= 0:
            self._checkpoint_written(int(shared))
        return bool(stop), bool(due)

    def _heartbeat(self) -> None:
        metrics: dict[str, float] = {}
        if self.pipeline is None or self.pipeline.last:
            done = self.step - self._epoch_first_step
            loss = self._epoch_loss + float(self._loss_sum)
            self._check_finite(loss)
            if done:
                metrics["train_loss"] = loss / done
        local = self._local_step / self._local_steps if self._local_steps else None
        self._local_step, self._local_steps = 0.0, 0
        self.reporter.report(
            self.step, metrics, total_steps=self.total_steps, epoch=self.epoch, samples=self.samples, local_step_s=local
        )

    def train_steps(self, n: int) -> int:
        """Run up to ``n`` steps (fewer at the end of training); returns how many ran. May raise Preempted."""
        config = self.config
        every_steps = config.checkpoint_every_steps
        slowdown = config.slowdown
        ran = 0
        while ran < n and self.step < self.total_steps:
            if self._batches is None:
                self._start_epoch()
            assert self._batches is not None
            started = time.perf_counter() if slowdown > 1 else 0.0
            self._step(self._batches[self.batch_in_epoch])
            self.step += 1
            self.batch_in_epoch += 1
            self.samples += self.batch
            ran += 1
            if self._delay_rng is not None and config.step_delay is not None:
                pause = config.step_delay.sample(self._delay_rng)
                time.sleep(pause)
                self._local_step += pause
            if slowdown > 1:  # a slow node slows the whole step, an injected delay (emulated device time) included
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                pause = (slowdown - 1) * (time.perf_counter() - started)
                time.sleep(pause)
                self._local_step += pause
            self._local_steps += 1
            stop, time_due = self._agree()
            self._collect_written()
            if self.batch_in_epoch == self.steps_per_epoch:
                self.end_epoch()
            elif time_due or (every_steps and self.step % every_steps == 0):
                self.save_checkpoint(periodic=True)
            if self.reporter.due():
                self._heartbeat()
            if stop:
                self.save_checkpoint()
                self.finish_checkpoints()
                raise Preempted(f"stopped at step {self.step}")
        return ran

    # ---- evaluation ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def _evaluate_split(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """(mean loss, accuracy) of the current weights; with model parallelism only the last rank's count."""
        self.module.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        for start in range(0, len(y), EVAL_BATCH):
            xb = x[start : start + EVAL_BATCH].to(self.device)
            yb = y[start : start + EVAL_BATCH].to(self.device)
            if self.pipeline is not None:
                logits = self.pipeline.forward(xb)
                if logits is None:
                    continue
            else:
                with self._autocast():
                    logits = self.module(xb)
            flat = logits.flatten(0, -2).float()
            loss_sum += F.cross_entropy(flat, yb.flatten(), reduction="sum")
            correct += (flat.argmax(dim=1) == yb.flatten()).sum()
        self.module.train()
        count = y.numel()
        return float(loss_sum) / count, float(correct) / count

    def _share(self, values: list[float], op: str) -> list[float]:
        """Per-rank values made common: mean over data-parallel ranks, or the last stage's broadcast."""
        if not self.config.distributed or self.ksync is not None:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        if op == "broadcast":
            dist.broadcast(tensor, src=self.config.world_size - 1)
        else:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            tensor /= self.config.world_size
        return [float(v) for v in tensor.tolist()]

    def evaluate(self, *, test: bool = True) -> dict[str, float]:
        """Validation (and test) loss and accuracy; epoch ends skip the test split, the end of training not."""
        names = ["val_loss", "val_accuracy"]
        values = list(self._evaluate_split(self.data.val_x, self.data.val_y))
        if test:
            names += ["test_loss", "test_accuracy"]
            values += self._evaluate_split(self.data.test_x, self.data.test_y)
        if self.pipeline is not None:
            values = self._share(values, "broadcast")
        return dict(zip(names, values, strict=True))

    def end_epoch(self) -> None:
        """Epoch boundary: average the loss, evaluate, report, log, checkpoint."""
        steps = self.step - self._epoch_first_step
        loss = (self._epoch_loss + float(self._loss_sum)) / max(1, steps)
        loss = self._share([loss], "broadcast" if self.pipeline is not None else "mean")[0]
        self._check_finite(loss)
        elapsed = self.clock() - self._epoch_start
        self.epoch += 1
        self.batch_in_epoch = 0
        self._batches = None
        self._epoch_loss = 0.0
        self._loss_sum.zero_()
        self._epoch_first_step = self.step
        self._epoch_start = self.clock()
        metrics = {"train_loss": loss, **self.evaluate(test=False)}
        metrics["epoch_time_s"] = elapsed
        metrics["samples_per_s"] = steps * self.samples_per_step / elapsed if elapsed > 0 else 0.0
        if self.ksync is not None:
            metrics.update(self.ksync.counters())
        self.metrics = metrics
        self.reporter.report(
            self.step,
            metrics,
            total_steps=self.total_steps,
            epoch=self.epoch,
            samples=self.samples,
            kind="epoch",
        )
        self.tracker.log_epoch(self.epoch, metrics)
        self.save_checkpoint(periodic=True)

    # ---- the whole life ------------------------------------------------------------------------------------

    def run(self) -> dict[str, float]:
        """Resume, train to the end, evaluate; returns the final metrics. Raises Preempted or Diverged."""
        if self.ksync is not None and self.config.rank != 0:
            return self._work()
        self.resume()
        self.tracker.start(self.config.as_params())
        self.train_steps(self.total_steps - self.step)
        final = self.evaluate()
        ended_at_epoch = self.step == self._epoch_first_step
        if not ended_at_epoch:
            loss = (self._epoch_loss + float(self._loss_sum)) / (self.step - self._epoch_first_step)
            final["train_loss"] = self._share([loss], "broadcast" if self.pipeline else "mean")[0]
        elif "train_loss" in self.metrics:
            final["train_loss"] = self.metrics["train_loss"]
        final["steps"] = float(self.step)
        final["epochs"] = float(self.epoch)
        if self.ksync is not None:
            final.update(self.ksync.counters())
        self.save_checkpoint()
        self.finish_checkpoints()
        self.metrics = final
        self.reporter.report(
            self.step,
            final,
            total_steps=self.total_steps,
            epoch=self.epoch,
            samples=self.samples,
            kind="final",
        )
        # At an epoch end val_accuracy is already logged for this epoch; the test metrics are new.
        names = ("test_accuracy", "test_loss") if ended_at_epoch else ("test_accuracy", "test_loss", "val_accuracy")
        self.tracker.log_final(self.epoch, {k: final[k] for k in names}, self.module.state_dict())
        return final

    def _work(self) -> dict[str, float]:
        """ksync, ranks > 0: compute gradients for the parameter server until it ends the run."""
        assert self.ksync is not None

        def on_version(version: int) -> None:
            self.step = version
            self.epoch = version // self.steps_per_epoch
            if self.reporter.due():
                self.reporter.report(self.step, total_steps=self.total_steps, epoch=self.epoch, samples=self.samples)
            self.samples += self.batch

        end = self.ksync.work(lambda: self.stop.requested, on_version)
        self.step = end.version
        self.epoch = end.version // self.steps_per_epoch
        self.checkpoint_step = end.checkpoint_step
        if end.state == PREEMPTED:
            raise Preempted(f"stopped at step {self.step}")
        if end.state == DIVERGED:
            raise Diverged(end.message)
        if end.state != DONE:
            raise RuntimeError(f"the parameter server (rank 0) failed at step {self.step}")
        self.reporter.report(
            self.step, total_steps=self.total_steps, epoch=self.epoch, samples=self.samples, kind="final"
        )
        return {}

    def close(self, status: str) -> None:
        try:
            self.writer.close()  # normally idle: run() and a stop wait for their last write
        except Exception:  # the run has already ended with its result: report the late failure, finish tearing down
            print("kubetune_trainer: a checkpoint write failed:", file=sys.stderr)
            traceback.print_exc()
        self._collect_written()
        self.tracker.end(status)
        self.reporter.close()
        if self.ksync is not None:  # rank 0 ends the run for every worker (unless it did already), then RPC ends
            state = {"FINISHED": DONE, "KILLED": PREEMPTED}.get(status, FAILED)
            self.ksync.close(state, self.step, self.checkpoint_step)
        if dist.is_initialized():
            if status in ("FINISHED", "KILLED"):
                # Every rank finished, or every rank agreed to stop at this step (the stop is collective): meet
                # before tearing down, so no rank closes its gloo pairs while a peer is still using them (that
                # aborts the peer in C++: "terminate called without an active exception", exit -6 instead of the
                # preempted exit code). On the failure paths a peer may be gone, so no barrier there.
                _meet(status)
            dist.destroy_process_group()


def _meet(status: str) -> None:
    """The teardown barrier. A stop's barrier may find a peer gone (its checkpoint write failed: it ended FAILED,
    without meeting); that peer's closed connection ends the wait (or the process group's timeout does), and the
    stop still ends as a stop: its result is already written."""
    if status == "FINISHED":
        dist.barrier()
        return
    try:
        dist.barrier()
    except RuntimeError as error:
        print(f"kubetune_trainer: a peer left before the teardown barrier: {error}", file=sys.stderr)


def _result_path(config: TrainerConfig) -> str:
    if config.result_file:
        return config.result_file
    return TERMINATION_LOG if os.path.exists(TERMINATION_LOG) else ""


def train(config: TrainerConfig, *, stop: StopFlag | None = None) -> dict[str, Any]:
    """Run one worker to its end and write the contract's result; returns the result (see ``exit_code``)."""
    path = _result_path(config)
    trainer: Trainer | None = None
    status = "FAILED"
    try:
        trainer = Trainer(config, stop=stop)
        metrics = trainer.run()
        status = "FINISHED"
        owned = metrics if config.rank == 0 else {}
        return write_result(
            "succeeded", step=trainer.step, metrics=owned, checkpoint_step=trainer.checkpoint_step, path=path
        )
    except ConfigError as error:
        return write_result("failed", reason="InvalidConfig", message=str(error), path=path)
    except Preempted as error:
        assert trainer is not None
        status = "KILLED"
        return write_result(
            "preempted",
            step=trainer.step,
            checkpoint_step=trainer.checkpoint_step,
            reason="Preempted",
            message=str(error),
            path=path,
        )
    except Diverged as error:
        assert trainer is not None
        return write_result(
            "failed",
            step=trainer.step,
            checkpoint_step=trainer.checkpoint_step,
            reason="Diverged",
            message=str(error),
            path=path,
        )
    except Exception as error:  # anything else: still leave the controller a result, and the traceback
        traceback.print_exc()
        return write_result(
            "failed",
            step=trainer.step if trainer is not None else 0,
            checkpoint_step=trainer.checkpoint_step if trainer is not None else None,
            reason="Error",
            message=f"{type(error).__name__}: {error}",
            path=path,
        )
    finally:
        if trainer is not None:
            trainer.close(status)


def exit_code(result: Mapping[str, Any]) -> int:
    """The contract's exit code for a result."""
    if result["outcome"] == "succeeded":
        return 0
    if result["outcome"] == "preempted":
        return PREEMPTED_EXIT_CODE
    return 2 if result["reason"] == "InvalidConfig" else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: environment (overridden by ``--key value`` arguments) -> train -> exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    stop = StopFlag().install()
    env = dict(os.environ)
    try:
        env.update(env_from_args(args))
        config = TrainerConfig.from_env(env)
    except ConfigError as error:
        print(f"kubetune_trainer: invalid configuration: {error}", file=sys.stderr)
        path = env.get("KUBETUNE_RESULT_FILE")
        write_result("failed", reason="InvalidConfig", message=str(error), path=path)
        return 2
    result = train(config, stop=stop)
    if result["outcome"] == "failed":
        print(f"kubetune_trainer: {result['reason']}: {result['message']}", file=sys.stderr)
    return exit_code(result)
