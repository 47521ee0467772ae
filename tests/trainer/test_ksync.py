"""K-of-N synchronous SGD: the protocol in threads (exact), then real gangs over RPC (resume, counters, SIGTERM)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict

import pytest
import torch
import torch.nn.functional as F
from kubetune_trainer import checkpoint
from kubetune_trainer.config import ConfigError, StepDelay, TrainerConfig
from kubetune_trainer.data import Splits, load_dataset
from kubetune_trainer.ksync import DONE, ParameterServer, Worker, _Local
from kubetune_trainer.models import build_model
from torch import nn
from torch.utils.data.distributed import DistributedSampler
from trainer_harness import base_env, free_port, launch, read_progress, read_result, run_gang

BATCH = 64  # the trainer's default global batch


@functools.cache
def _digits() -> Splits:
    return load_dataset("digits", "mlp", 0)


def _model(data: Splits) -> nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", 2, 128, input_shape=data.input_shape, num_outputs=data.num_outputs)


def _steps_per_epoch(data: Splits, n: int, batch: int = BATCH) -> int:
    return (len(data.train_y) // n) // (batch // n)


def _in_threads(
    n: int, k: int, steps: int, delays: Mapping[int, StepDelay] | None = None, batch: int = BATCH
) -> tuple[ParameterServer, nn.Module, list[float]]:
    """Server + N workers in this process (direct calls instead of RPC): the trainer's defaults, seed 0."""
    torch.set_num_threads(1)
    data = _digits()
    model = _model(data)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    server = ParameterServer(model, optimizer, k=k, world_size=n, timeout=60)
    base = TrainerConfig(world_size=n, parallelism="ksync", k=k, batch_size=batch)
    workers = [
        Worker(
            dataclasses.replace(base, rank=rank, step_delay=(delays or {}).get(rank)),
            _Local(server),
            copy.deepcopy(model),
            train_x=data.train_x,
            train_y=data.train_y,
            batch=batch // n,
            steps_per_epoch=_steps_per_epoch(data, n, batch),
            autocast=contextlib.nullcontext,
        )
        for rank in range(n)
    ]
    threads = [threading.Thread(target=w.run, args=(lambda: False,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    losses = [server.step(version) for version in range(steps)]
    server.finish(DONE, steps)
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    return server, model, losses


# ---- the protocol, in one process --------------------------------------------------------------------------


def test_k_equals_n_is_synchronous_sgd_step_for_step() -> None:
    n, steps = 2, 25  # crosses an epoch end (19 steps)
    server, model, losses = _in_threads(n, n, steps)

    data = _digits()
    reference = _model(data)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    samplers: list[DistributedSampler[int]] = [
        DistributedSampler(range(len(data.train_y)), num_replicas=n, rank=r, shuffle=True, seed=0, drop_last=True)  # type: ignore[arg-type]
        for r in range(n)
    ]
    per_worker, per_epoch = BATCH // n, _steps_per_epoch(data, n)
    for version in range(steps):
        epoch, index = divmod(version, per_epoch)
        grads: list[list[torch.Tensor]] = []
        step_losses = []
        for sampler in samplers:
            sampler.set_epoch(epoch)
            batch = torch.tensor(list(iter(sampler)))[index * per_worker : (index + 1) * per_worker]
            reference.zero_grad()
            loss = F.cross_entropy(reference(data.train_x[batch]), data.train_y[batch])
            loss.backward()  # type: ignore[no-untyped-call]
            grads.append([p.grad.clone() for p in reference.parameters() if p.grad is not None])
            step_losses.append(float(loss))
        for param, *per_rank in zip(reference.parameters(), *grads, strict=True):
            param.grad = torch.stack(per_rank).mean(dim=0)
        optimizer.step()
        assert losses[version] == pytest.approx(sum(step_losses) / n, rel=1e-5), version

    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert (server.applied, server.stale, server.updates) == (n * steps, 0, steps)


def test_k_of_n_drops_the_stragglers_gradients_and_counts_them() -> None:
    steps = 12
    # Rank 2 sleeps ~5 s per step: every update goes ahead with ranks 0 and 1, its gradient is always stale.
    server, _, losses = _in_threads(3, 2, steps, delays={2: StepDelay(shift=1.0, rate=1e6, scale=5.0)}, batch=48)
    assert all(math.isfinite(loss) for loss in losses)
    assert server.applied == 2 * steps
    assert server.applied_by_rank == [steps, steps, 0]
    assert 1 <= server.stale == server.cut_short <= steps - 1  # the last one arrives after the end: not counted


def test_the_server_applies_the_mean_of_the_first_k_and_drops_late_and_old_pushes() -> None:
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 1.0]]))
    server = ParameterServer(model, torch.optim.SGD(model.parameters(), lr=1.0), k=2, world_size=3, timeout=10)
    first = server.wait_after(-1)
    results: list[float] = []
    worker = threading.Thread(target=lambda: results.append(server.step(0)))
    worker.start()
    assert first.wait().version == 0
    server.push(0, 0, torch.tensor([1.0, 0.0]), 1.0, 0.0, False)
    server.push(2, 0, torch.tensor([0.0, 1.0]), 3.0, 0.0, False)
    worker.join(timeout=10)
    server.push(1, 0, torch.tensor([100.0, 100.0]), 5.0, 0.0, True)  # the third for version 0: stale
    assert results == [2.0]
    torch.testing.assert_close(model.weight, torch.tensor([[0.5, 0.5]]))
    assert (server.applied, server.stale, server.applied_by_rank) == (2, 1, [1, 0, 1])
    assert server.stop_requested  # a stop request counts even on a stale push

    pending = server.wait_after(0)
    assert not pending.done()
    server.finish(DONE, 1, checkpoint_step=1)
    assert pending.wait().state == DONE and server.wait_after(5).wait().checkpoint_step == 1
    server.push(0, 1, torch.tensor([1.0, 1.0]), 1.0, 0.0, False)  # after the end: ignored
    assert server.stale == 1


# ---- configuration ------------------------------------------------------------------------------------------


def test_step_delay_is_parsed_and_its_order_statistics_are_the_harmonic_formula() -> None:
    delay = TrainerConfig.from_env({"KUBETUNE_STEP_DELAY": "shiftedexp:1,1,0.05"}).step_delay
    assert delay == StepDelay(1.0, 1.0, 0.05)
    assert delay.order_statistic_mean(8, 8) == pytest.approx(0.05 * 3.7179, rel=1e-4)
    assert delay.order_statistic_mean(6, 8) == pytest.approx(0.05 * 2.2179, rel=1e-4)
    assert TrainerConfig.from_env({"KUBETUNE_STEP_DELAY": "shiftedexp:0,2"}).step_delay == StepDelay(0.0, 2.0, 1.0)
    assert TrainerConfig.from_env({"KUBETUNE_STEP_DELAY": "none"}).step_delay is None
    draws = {
        rank: [delay.sample(rng) for _ in range(2000)] for rank, rng in enumerate(map(StepDelay.rng, [0, 0], [0, 1]))
    }
    assert min(draws[0]) >= 0.05 and sum(draws[0]) / 2000 == pytest.approx(delay.mean, rel=0.1)
    again = StepDelay.rng(0, 0)
    assert [delay.sample(again) for _ in range(5)] == draws[0][:5] != draws[1][:5]  # seeded per rank


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KUBETUNE_STEP_DELAY": "exp:1"}, "KUBETUNE_STEP_DELAY='exp:1'"),
        ({"KUBETUNE_STEP_DELAY": "shiftedexp:1"}, "KUBETUNE_STEP_DELAY"),
        ({"KUBETUNE_STEP_DELAY": "shiftedexp:1,0"}, "KUBETUNE_STEP_DELAY"),
        ({"KUBETUNE_STEP_DELAY": "shiftedexp:-1,1"}, "KUBETUNE_STEP_DELAY"),
        ({"KUBETUNE_STEP_DELAY": "shiftedexp:1,1,0"}, "KUBETUNE_STEP_DELAY"),
        ({"KUBETUNE_STEP_DELAY": "shiftedexp:a,1"}, "KUBETUNE_STEP_DELAY"),
        ({"KUBETUNE_STEP_DELAY": "shiftedexp:1,inf"}, "KUBETUNE_STEP_DELAY"),
        ({"KUBETUNE_K": "0"}, "KUBETUNE_K='0'"),
        ({"KUBETUNE_K": "two"}, "KUBETUNE_K"),
        ({"KUBETUNE_PARALLELISM": "ksync", "KUBETUNE_K": "3", "WORLD_SIZE": "2"}, "KUBETUNE_K=3"),
        ({"KUBETUNE_PARALLELISM": "ksync", "KUBETUNE_BATCH_SIZE": "64", "WORLD_SIZE": "3"}, "KUBETUNE_BATCH_SIZE"),
    ],
)
def test_bad_ksync_values_are_refused_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        TrainerConfig.from_env(env)


def test_k_defaults_to_every_worker() -> None:
    config = TrainerConfig.from_env({"KUBETUNE_PARALLELISM": "ksync", "WORLD_SIZE": "4"})
    assert (config.k, config.applied_per_step, config.per_worker_batch) == (0, 4, 16)


# ---- real gangs over RPC ------------------------------------------------------------------------------------


def _epoch_losses(losses: list[float], per_epoch: int) -> list[float]:
    return [math.fsum(losses[start : start + per_epoch]) / per_epoch for start in range(0, len(losses), per_epoch)]


class _KSyncEnv(TypedDict):
    """The environment both gangs share: its keys, unlike a ``dict[str, str]``'s, cannot be ``run_gang``'s timeout."""

    KUBETUNE_PARALLELISM: str
    KUBETUNE_K: str


@pytest.mark.slow
def test_a_gang_over_rpc_resumes_from_its_checkpoint_and_equals_the_protocol_in_threads(tmp_path: Path) -> None:
    ksync: _KSyncEnv = {"KUBETUNE_PARALLELISM": "ksync", "KUBETUNE_K": "2"}
    first = run_gang(tmp_path, 2, KUBETUNE_EPOCHS="2", **ksync)
    assert [code for code, _ in first] == [0, 0], first
    assert checkpoint.latest(tmp_path / "ckpt") == 38
    second = run_gang(tmp_path, 2, KUBETUNE_EPOCHS="4", **ksync)  # resumes at step 38
    assert [code for code, _ in second] == [0, 0], second

    results = [read_result(tmp_path, rank) for rank in (0, 1)]
    assert [(r["outcome"], r["step"], r["checkpoint_step"]) for r in results] == [("succeeded", 76, 76)] * 2
    metrics = results[0]["metrics"]
    assert metrics["test_accuracy"] >= 0.9
    assert (metrics["ksync_k"], metrics["ksync_applied"], metrics["ksync_stale"]) == (2, 2 * 38, 0)  # this attempt
    assert sorted(p.name for p in (tmp_path / "ckpt" / "step-00000076").iterdir()) == ["COMPLETE", "rank-0.pt"]
    epochs = [r for r in read_progress(tmp_path, 0) if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]  # the second attempt did not redo epochs 1-2

    # K = N: deterministic, so the two attempts over RPC equal one straight run of the protocol in threads.
    _, _, losses = _in_threads(2, 2, 76)
    expected = _epoch_losses(losses, 19)
    for record, loss in zip(epochs, expected, strict=True):
        assert record["metrics"]["train_loss"] == pytest.approx(loss, rel=1e-4)


@pytest.mark.slow
def test_sigterm_to_a_worker_stops_the_gang_with_a_checkpoint_and_stale_gradients_were_dropped(
    tmp_path: Path,
) -> None:
    overrides = {
        "WORLD_SIZE": "3", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "KUBETUNE_EPOCHS": "1000",
        "KUBETUNE_PARALLELISM": "ksync", "KUBETUNE_K": "2", "KUBETUNE_BATCH_SIZE": "48",
        "KUBETUNE_CHECKPOINT_EVERY_STEPS": "0", "KUBETUNE_STEP_DELAY": "shiftedexp:1,1,0.005",
    }  # fmt: skip
    procs = [launch(base_env(tmp_path, rank, **overrides)) for rank in range(3)]
    try:
        deadline = time.monotonic() + 60
        while not any(r["kind"] == "epoch" for r in read_progress(tmp_path, 0)) or not read_progress(tmp_path, 2):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        sent = time.time()
        procs[2].send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=30) for p in procs]
        # The stop itself (checkpoint, results) is quick; the interpreters' teardown is slow on a loaded machine.
        assert time.time() - sent < 15.0
        assert all((tmp_path / f"result-{rank}.json").stat().st_mtime - sent < 5.0 for rank in range(3))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert codes == [143, 143, 143], [p.communicate() for p in procs]
    results = [read_result(tmp_path, rank) for rank in range(3)]
    assert [r["outcome"] for r in results] == ["preempted"] * 3
    step = checkpoint.latest(tmp_path / "ckpt")
    assert [(r["step"], r["checkpoint_step"]) for r in results] == [(step, step)] * 3
    epoch = next(r for r in read_progress(tmp_path, 0) if r["kind"] == "epoch")
    assert epoch["step"] == 26  # 1257 samples / 3 workers, 16 per worker and step
    assert epoch["metrics"]["ksync_applied"] == 2 * 26  # K = 2 gradients per step ...
    assert epoch["metrics"]["ksync_stale"] > 0  # ... and the third one of most steps dropped


@pytest.mark.slow
def test_a_diverging_gang_fails_everywhere_with_reason_diverged(tmp_path: Path) -> None:
    outcomes = run_gang(tmp_path, 2, KUBETUNE_PARALLELISM="ksync", KUBETUNE_LEARNING_RATE="50", KUBETUNE_EPOCHS="3")
    assert [code for code, _ in outcomes] == [1, 1], outcomes
    assert all("Traceback" not in err for _, err in outcomes)
    results = [read_result(tmp_path, rank) for rank in (0, 1)]
    assert [(r["outcome"], r["reason"]) for r in results] == [("failed", "Diverged")] * 2
