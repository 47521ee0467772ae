"""Asynchronous checkpoints in the trainer: only committed checkpoints are named, stops wait, failures surface."""

from __future__ import annotations

import dataclasses
import json
import random
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from kubetune_trainer import checkpoint
from kubetune_trainer.config import TrainerConfig
from kubetune_trainer.progress import NullSink, Reporter
from kubetune_trainer.train import Preempted, Trainer, _rng_state, _set_rng_state, sampler_order, train
from torch.utils.data.distributed import DistributedSampler

BASE = TrainerConfig(
    steps=40,
    checkpoint_every_steps=5,
    checkpoint_min_interval_seconds=0,
    model_width=32,
    omp_num_threads=1,
    progress_interval=3600,
)


class _Records(NullSink):
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def emit(self, record: Mapping[str, Any]) -> None:
        self.records.append(dict(record))

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["kind"] == kind]


class _GatedSave:
    """Replaces :func:`checkpoint.save` in the writer thread: each write blocks until released, or fails."""

    def __init__(self, error: Exception | None = None) -> None:
        self.release = threading.Event()
        self.error = error
        self.real = checkpoint.save

    def __call__(self, root: str, step: int, states: Mapping[int, Mapping[str, Any]], keep: int) -> Path:
        assert self.release.wait(timeout=30)
        if self.error is not None:
            raise self.error
        return self.real(root, step, states, keep)


def _trainer(tmp_path: Path, sink: _Records, **changes: Any) -> Trainer:
    config = dataclasses.replace(BASE, checkpoint_dir=str(tmp_path / "ckpt"), **changes)
    return Trainer(config, reporter=Reporter(sink, interval=config.progress_interval))


def test_the_checkpoint_is_named_only_once_its_write_has_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _GatedSave()
    monkeypatch.setattr(checkpoint, "save", gate)
    sink = _Records()
    trainer = _trainer(tmp_path, sink)
    trainer.train_steps(8)  # step 5's snapshot was handed over; its write is held back
    assert trainer.checkpoint_step is None and sink.kind("checkpoint") == []
    assert checkpoint.latest(tmp_path / "ckpt") is None
    gate.release.set()
    assert trainer.writer.wait() == 5
    trainer.train_steps(1)  # the next step boundary publishes it
    assert trainer.checkpoint_step == 5
    assert [(r["step"], r["epoch"]) for r in sink.kind("checkpoint")] == [(5, 0)]
    trainer.close("FINISHED")


def test_a_stop_writes_and_waits_for_its_checkpoint_before_raising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _GatedSave()
    monkeypatch.setattr(checkpoint, "save", gate)
    sink = _Records()
    trainer = _trainer(tmp_path, sink, checkpoint_every_steps=0)
    trainer.train_steps(3)
    trainer.stop.request()
    release = threading.Timer(0.3, gate.release.set)
    release.start()
    with pytest.raises(Preempted):
        trainer.train_steps(10)
    release.join()
    assert trainer.step == 4 and trainer.checkpoint_step == 4
    assert (tmp_path / "ckpt" / "step-00000004" / checkpoint.COMPLETE).is_file()
    assert [r["step"] for r in sink.kind("checkpoint")] == [4]
    trainer.close("KILLED")


def test_the_end_of_training_reports_its_last_checkpoint_only_after_it_is_written(tmp_path: Path) -> None:
    sink = _Records()
    trainer = _trainer(tmp_path, sink, steps=12)
    trainer.run()
    kinds = [(r["kind"], r["step"]) for r in sink.records if r["kind"] in ("checkpoint", "final")]
    assert kinds[-2:] == [("checkpoint", 12), ("final", 12)]
    assert trainer.checkpoint_step == 12 == checkpoint.latest(tmp_path / "ckpt")
    trainer.close("FINISHED")


def test_a_failed_background_write_fails_the_run_at_the_next_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _GatedSave(OSError("No space left on device"))
    gate.release.set()
    monkeypatch.setattr(checkpoint, "save", gate)
    result_file = tmp_path / "result.json"
    config = dataclasses.replace(
        BASE, checkpoint_dir=str(tmp_path / "ckpt"), result_file=str(result_file), progress="none"
    )
    result = train(config)
    assert (result["outcome"], result["reason"]) == ("failed", "Error")
    assert "No space left on device" in result["message"]
    assert result["checkpoint_step"] is None  # nothing was ever committed
    assert result["step"] == 10  # raised when step 10's checkpoint found step 5's write failed
    assert json.loads(result_file.read_text()) == result


@pytest.mark.parametrize(("size", "replicas"), [(1257, 1), (1257, 2), (16384, 3)])
def test_sampler_order_is_the_distributed_samplers_order(size: int, replicas: int) -> None:
    for rank in range(replicas):
        sampler: DistributedSampler[int] = DistributedSampler(
            range(size),  # type: ignore[arg-type]
            num_replicas=replicas,
            rank=rank,
            shuffle=True,
            seed=7,
            drop_last=True,
        )
        for epoch in (0, 1, 5):
            sampler.set_epoch(epoch)
            assert sampler_order(sampler, epoch).tolist() == list(sampler)


def test_rng_state_round_trips_and_older_checkpoints_python_state_still_loads() -> None:
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    state = _rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    _set_rng_state(state)
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected
    random.seed(4)
    legacy = {**_rng_state(), "python": random.getstate()}  # the tuple itself, as checkpoints used to hold it
    value = random.random()
    _set_rng_state(legacy)
    assert random.random() == value
