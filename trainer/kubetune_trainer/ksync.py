"""K-of-N synchronous SGD ("backup workers"): a parameter server in rank 0's process over torch.distributed.rpc.

Decides: the step protocol of ``KUBETUNE_PARALLELISM=ksync``. Rank 0 is the parameter server: it holds the
trainer's own model and optimizer (so evaluation, checkpoints and resume are the trainer's usual ones) and the
version, which *is* the trainer's step. Every rank, rank 0 included (in a thread, on a replica), is a worker:

1. wait for the publication of version ``v`` (the parameters), load it;
2. compute the gradient of its batch for ``v``: batch ``v mod steps_per_epoch`` of its shard in epoch
   ``v // steps_per_epoch``, the data order of data parallelism, so K = N is synchronous SGD step for step and
   the data a worker sees never depends on arrival order;
3. sleep the chaos delay (``KUBETUNE_STEP_DELAY``), cut short when ``v + 1`` is published meanwhile (its gradient
   can no longer count, so the rest of the wait is waste; an iteration then lasts the K-th fastest worker's
   time, E[X_(K:N)]);
4. push ``(gradient, v)``, or a bare stale notice when cut short, and go to 1.

The server takes the first K gradients pushed for ``v``, applies their mean with the optimizer (version ``v + 1``)
and drops everything else pushed for ``v`` or older (counted as stale). It publishes the next version only when
the trainer asks for the next step, so epoch ends, evaluation and checkpoints see the model of one version while
the workers wait. The end of the run (done, preempted, diverged, failed) is a final publication every worker
receives; a worker's stop request (its SIGTERM) rides on its pushes. Everything is deterministic given the seed
apart from which K gradients arrive first. RPC (TensorPipe, rendezvous on MASTER_ADDR:MASTER_PORT) is the only
channel: there is no process group in this mode. Tensors cross it on the CPU, as float32 flat vectors.

Must not import: the training loop (:mod:`kubetune_trainer.train`), the checkpoint, tracking or progress modules,
mlflow, kopf, kubernetes or ``kubetune``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, Protocol

import torch
import torch.distributed.rpc as rpc
import torch.nn.functional as F
from torch import nn
from torch.futures import Future
from torch.utils.data.distributed import DistributedSampler

from kubetune_trainer.config import TrainerConfig

RUNNING = "running"
DONE = "done"
PREEMPTED = "preempted"
DIVERGED = "diverged"
FAILED = "failed"
SERVER = "ksync-0"
SHUTDOWN_TIMEOUT_S = 30.0

AutocastFactory = Callable[[], contextlib.AbstractContextManager[object]]


class Publication(NamedTuple):
    """What the server tells the workers: a version's parameters, or (``params`` None) the end of the run."""

    version: int
    params: torch.Tensor | None
    state: str = RUNNING
    message: str = ""
    checkpoint_step: int | None = None


def flatten(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """One float32 CPU vector of ``tensors`` (parameters or their gradients), in order."""
    return torch.cat([t.detach().reshape(-1).to("cpu", torch.float32) for t in tensors])


def unflatten(vector: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The inverse of :func:`flatten`: chunks shaped, typed and placed like ``like``."""
    out = []
    offset = 0
    for tensor in like:
        count = tensor.numel()
        out.append(vector[offset : offset + count].view_as(tensor).to(tensor.device, tensor.dtype))
        offset += count
    return out


class ParameterServer:
    """Rank 0's model and optimizer behind the K-of-N protocol. ``step`` runs in the trainer's thread only."""

    def __init__(
        self, module: nn.Module, optimizer: torch.optim.Optimizer, *, k: int, world_size: int, timeout: float
    ) -> None:
        self.params = list(module.parameters())
        self.optimizer = optimizer
        self.k = k
        self.world_size = world_size
        self.timeout = timeout
        self._lock = threading.Condition()
        self._published: Publication | None = None
        self._waiters: list[Future[Publication]] = []
        self._version = -1  # the version whose gradients are being collected
        self._open = False  # still taking gradients for it (fewer than K so far)
        self._grads: list[torch.Tensor] = []
        self._losses: list[float] = []
        self._published_at = 0.0
        self._kth_at = 0.0
        self._kth_delay = 0.0
        self._error: BaseException | None = None
        self.stop_requested = False
        self.applied = 0  # gradients applied
        self.applied_by_rank = [0] * world_size
        self.stale = 0  # gradients dropped: pushed for an old version, or beyond the first K, or cut short
        self.cut_short = 0  # of which the worker stopped waiting out its delay (a bare stale notice)
        self.updates = 0
        self.collect_seconds = 0.0  # sum over updates of publication -> K-th gradient
        self.delay_seconds = 0.0  # sum over updates of the K-th gradient's injected delay

    # ---- called by the workers (RPC handler threads, or rank 0's worker thread) ----------------------------

    def wait_after(self, version: int) -> Future[Publication]:
        """A future of the first publication newer than ``version`` (or of the end of the run)."""
        future: Future[Publication] = Future()
        with self._lock:
            ready = self._published
            if ready is None or (ready.state == RUNNING and ready.version <= version):
                self._waiters.append(future)
                return future
        future.set_result(ready)
        return future

    def push(self, rank: int, version: int, grad: torch.Tensor | None, loss: float, delay: float, stop: bool) -> None:
        """A worker's gradient for ``version`` (None: it gave up on it); kept if among the first K, else stale.

        ``delay``: the injected delay the worker slept for it (reported, so the iteration time splits into
        delay and protocol cost); ``stop``: the worker was asked to stop (SIGTERM).
        """
        with self._lock:
            if stop:
                self.stop_requested = True
                self._lock.notify_all()
            if self._published is None or self._published.state != RUNNING:
                return
            if grad is not None and self._open and version == self._version:
                self._grads.append(grad)
                self._losses.append(loss)
                self.applied_by_rank[rank] += 1
                if len(self._grads) == self.k:
                    self._open = False
                    self._kth_at = time.perf_counter()
                    self._kth_delay = delay
                    self._lock.notify_all()
                return
            self.stale += 1
            self.cut_short += grad is None

    def fail(self, error: BaseException) -> None:
        """Rank 0's worker thread died: the trainer's next ``step`` raises ``error``."""
        with self._lock:
            self._error = error
            self._lock.notify_all()

    # ---- called by the trainer (rank 0's main thread) -----------------------------------------------------

    def _publish(self, publication: Publication) -> None:
        with self._lock:
            if self._published is not None and self._published.state != RUNNING:
                return  # the end was published already; it stays the last word
            self._published = publication
            self._version = publication.version
            self._open = publication.state == RUNNING
            self._grads, self._losses = [], []
            waiters, self._waiters = self._waiters, []
            self._published_at = time.perf_counter()
        for future in waiters:
            future.set_result(publication)

    def step(self, version: int) -> float:
        """Publish ``version``, apply the mean of the first K gradients pushed for it; their mean loss."""
        self._publish(Publication(version, flatten(self.params)))
        deadline = time.monotonic() + self.timeout
        with self._lock:
            while self._open:
                if self._error is not None:
                    raise RuntimeError(f"rank 0's ksync worker failed: {self._error!r}") from self._error
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"ksync: {len(self._grads)} of K={self.k} gradients for step {version} after "
                        f"{self.timeout:g} s (KUBETUNE_TIMEOUT_SECONDS)"
                    )
                self._lock.wait(min(remaining, 1.0))
            grads, losses = self._grads, self._losses
            self._grads, self._losses = [], []
            self.collect_seconds += self._kth_at - self._published_at
            self.delay_seconds += self._kth_delay
        mean = torch.stack(grads).mean(dim=0)
        for param, grad in zip(self.params, unflatten(mean, self.params), strict=True):
            param.grad = grad
        self.optimizer.step()
        self.applied += len(grads)
        self.updates += 1
        return math.fsum(losses) / len(losses)

    def finish(self, state: str, version: int, message: str = "", checkpoint_step: int | None = None) -> None:
        """Publish the end of the run (once; later calls change nothing): every worker's wait returns it."""
        self._publish(Publication(version, None, state, message, checkpoint_step))

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._published is not None and self._published.state != RUNNING


# ---- the workers' view of the server: a direct call on rank 0, RPC elsewhere ------------------------------

_SERVER: ParameterServer | None = None  # in rank 0's process: the target of the RPC handlers below


def _server() -> ParameterServer:
    if _SERVER is None:
        raise RuntimeError("ksync: this process is not the parameter server (rank 0)")
    return _SERVER


@rpc.functions.async_execution  # type: ignore[untyped-decorator]
def _remote_wait_after(version: int) -> Future[Publication]:
    return _server().wait_after(version)


def _remote_push(rank: int, version: int, grad: torch.Tensor | None, loss: float, delay: float, stop: bool) -> None:
    _server().push(rank, version, grad, loss, delay, stop)


class ServerHandle(Protocol):
    def wait_after(self, version: int) -> Future[Publication]: ...

    def push(
        self, rank: int, version: int, grad: torch.Tensor | None, loss: float, delay: float, stop: bool
    ) -> Future[None]: ...


class _Local:
    def __init__(self, server: ParameterServer) -> None:
        self.server = server

    def wait_after(self, version: int) -> Future[Publication]:
        return self.server.wait_after(version)

    def push(
        self, rank: int, version: int, grad: torch.Tensor | None, loss: float, delay: float, stop: bool
    ) -> Future[None]:
        self.server.push(rank, version, grad, loss, delay, stop)
        done: Future[None] = Future()
        done.set_result(None)
        return done


class _Remote:
    def wait_after(self, version: int) -> Future[Publication]:
        future: Future[Publication] = rpc.rpc_async(SERVER, _remote_wait_after, args=(version,))
        return future

    def push(
        self, rank: int, version: int, grad: torch.Tensor | None, loss: float, delay: float, stop: bool
    ) -> Future[None]:
        future: Future[None] = rpc.rpc_async(SERVER, _remote_push, args=(rank, version, grad, loss, delay, stop))
        return future


def _setter(event: threading.Event) -> Callable[[Future[Publication]], None]:
    def callback(_: Future[Publication]) -> None:
        event.set()

    return callback


class Worker:
    """One worker's loop: pull a version, compute its batch's gradient, (sleep the delay), push; until the end."""

    def __init__(
        self,
        config: TrainerConfig,
        server: ServerHandle,
        module: nn.Module,
        *,
        train_x: torch.Tensor,
        train_y: torch.Tensor,
        batch: int,
        steps_per_epoch: int,
        autocast: AutocastFactory,
    ) -> None:
        self.rank = config.rank
        self.server = server
        self.module = module
        self.params = list(module.parameters())
        self.forward: nn.Module = torch.compile(module) if config.compile else module  # type: ignore[assignment]
        self.train_x = train_x
        self.train_y = train_y
        self.batch = batch
        self.steps_per_epoch = steps_per_epoch
        self.autocast = autocast
        self.delay = config.step_delay
        self.rng = config.step_delay.rng(config.seed, config.rank) if config.step_delay else None
        # The trainer's own sampler (the same shard and seed), but private: rank 0's one is used by its main thread.
        self.sampler: DistributedSampler[int] = DistributedSampler(
            range(len(train_y)),  # type: ignore[arg-type]
            num_replicas=config.world_size,
            rank=config.rank,
            shuffle=True,
            seed=config.seed,
            drop_last=True,
        )
        self._epoch = -1
        self._order = torch.empty(0, dtype=torch.long)
        self.pushed = 0
        self.cut_short = 0

    def batch_indices(self, version: int) -> torch.Tensor:
        """This worker's batch for ``version``: the batch data parallelism would take at that step."""
        epoch, index = divmod(version, self.steps_per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._order = torch.tensor(list(iter(self.sampler)), dtype=torch.long, device=self.train_y.device)
            self._epoch = epoch
        return self._order[index * self.batch : (index + 1) * self.batch]

    def gradient(self, version: int) -> tuple[torch.Tensor, float]:
        """(flat gradient, loss) of this worker's batch for ``version`` at the loaded parameters."""
        indices = self.batch_indices(version)
        x = self.train_x[indices]
        y = self.train_y[indices]
        for param in self.params:
            param.grad = None
        with self.autocast():
            logits = self.forward(x)
            loss = F.cross_entropy(logits.flatten(0, -2).float(), y.flatten())
        loss.backward()  # type: ignore[no-untyped-call]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        return flatten(grads), float(loss.detach())

    @torch.no_grad()
    def _load(self, params: torch.Tensor) -> None:
        for param, value in zip(self.params, unflatten(params, self.params), strict=True):
            param.copy_(value)

    def run(self, stop_requested: Callable[[], bool], on_version: Callable[[int], None] | None = None) -> Publication:
        """Work until the server publishes the end of the run; returns that final publication."""
        publication = self.server.wait_after(-1).wait()
        pushed: Future[None] | None = None
        while publication.state == RUNNING:
            version = publication.version
            if on_version is not None:
                on_version(version)
            assert publication.params is not None
            self._load(publication.params)
            newer = self.server.wait_after(version)
            arrived = threading.Event()
            newer.add_done_callback(_setter(arrived))
            grad, loss = self.gradient(version)
            delay = self.delay.sample(self.rng) if self.delay is not None and self.rng is not None else 0.0
            if delay > 0:
                arrived.wait(delay)
            fresh = not newer.done()
            if pushed is not None:
                pushed.wait()  # long done; raises if the previous push failed
            stop = stop_requested()
            pushed = self.server.push(self.rank, version, grad if fresh else None, loss, delay, stop)
            self.pushed += 1
            self.cut_short += not fresh
            publication = newer.wait()
        if pushed is not None:
            pushed.wait()
        return publication


def init_rpc(config: TrainerConfig) -> None:
    """Join the gang's RPC group (this mode's only channel) on MASTER_ADDR:MASTER_PORT."""
    options = rpc.TensorPipeRpcBackendOptions(
        init_method=f"tcp://{config.master_addr}:{config.master_port}",
        rpc_timeout=config.timeout_seconds,
        num_worker_threads=max(16, 2 * config.world_size + 4),
    )
    rpc.init_rpc(  # type: ignore[no-untyped-call]
        f"ksync-{config.rank}", rank=config.rank, world_size=config.world_size, rpc_backend_options=options
    )


class KSyncStep:
    """This rank's part in K-of-N synchronous SGD, built by the trainer once its model and optimizer exist.

    Rank 0: :meth:`apply` is the trainer's step (publish, collect K, apply), :meth:`finish` ends the run for
    everyone. Other ranks: :meth:`work` is the whole training loop. Every rank: :meth:`close` at the very end.
    """

    def __init__(
        self,
        config: TrainerConfig,
        *,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        train_x: torch.Tensor,
        train_y: torch.Tensor,
        batch: int,
        steps_per_epoch: int,
        autocast: AutocastFactory,
    ) -> None:
        global _SERVER
        self.config = config
        self.k = config.applied_per_step
        self.server: ParameterServer | None = None
        handle: ServerHandle
        if config.rank == 0:
            self.server = ParameterServer(
                module, optimizer, k=self.k, world_size=config.world_size, timeout=config.timeout_seconds
            )
            _SERVER = self.server
            handle = _Local(self.server)
            module = copy.deepcopy(module)  # rank 0's worker computes on a replica, the server owns the model
        else:
            handle = _Remote()
        self.worker = Worker(
            config,
            handle,
            module,
            train_x=train_x,
            train_y=train_y,
            batch=batch,
            steps_per_epoch=steps_per_epoch,
            autocast=autocast,
        )
        self._thread: threading.Thread | None = None
        self._closed = False
        init_rpc(config)

    # ---- rank 0 ----------------------------------------------------------------------------------------------

    def _server(self) -> ParameterServer:
        if self.server is None:
            raise RuntimeError("ksync: only rank 0 runs the parameter server")
        return self.server

    def _work_in_thread(self) -> None:
        try:
            self.worker.run(lambda: False)
        except BaseException as error:  # handed to the trainer's thread by the server's next step
            self._server().fail(error)

    def apply(self, version: int) -> float:
        """The trainer's step ``version`` -> ``version + 1``: the mean loss of the K gradients applied."""
        server = self._server()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work_in_thread, name="ksync-worker-0", daemon=True)
            self._thread.start()
        return server.step(version)

    @property
    def stop_requested(self) -> bool:
        """Some worker asked to stop (its SIGTERM)."""
        return self.server is not None and self.server.stop_requested

    def finish(self, state: str, version: int, message: str = "", checkpoint_step: int | None = None) -> None:
        """Rank 0: publish the end of the run (the first call wins)."""
        self._server().finish(state, version, message, checkpoint_step)

    def counters(self) -> dict[str, float]:
        """Rank 0: K, N, gradients applied and dropped, mean iteration time and the K-th gradient's delay."""
        server = self._server()
        return {
            "ksync_k": float(self.k),
            "ksync_workers": float(self.config.world_size),
            "ksync_applied": float(server.applied),
            "ksync_stale": float(server.stale),
            "ksync_cut_short": float(server.cut_short),
            "ksync_iteration_s": server.collect_seconds / max(1, server.updates),
            "ksync_delay_s": server.delay_seconds / max(1, server.updates),
        }

    # ---- other ranks ---------------------------------------------------------------------------------------

    def work(self, stop_requested: Callable[[], bool], on_version: Callable[[int], None]) -> Publication:
        """A worker rank's whole training: returns the server's final publication."""
        return self.worker.run(stop_requested, on_version)

    # ---- every rank ----------------------------------------------------------------------------------------

    def close(self, state: str, version: int, checkpoint_step: int | None) -> None:
        """End the run (rank 0 publishes ``state`` unless it published an end already), then leave RPC."""
        global _SERVER
        if self._closed:
            return
        self._closed = True
        if self.server is not None:
            self.server.finish(state, version, "", checkpoint_step)
            if self._thread is not None:
                self._thread.join(timeout=SHUTDOWN_TIMEOUT_S)
        # Graceful: every rank meets here and outstanding replies are delivered. Bounded, so a dead peer
        # costs a wait, not a hang.
        with contextlib.suppress(Exception):
            rpc.shutdown(graceful=True, timeout=min(self.config.timeout_seconds, SHUTDOWN_TIMEOUT_S))
        if self.server is not None:
            _SERVER = None
