"""Resume is the normal start: training interrupted after a checkpoint ends exactly where a straight run does."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from kubetune_trainer import checkpoint
from kubetune_trainer.config import TrainerConfig
from kubetune_trainer.train import Trainer

BASE = TrainerConfig(
    steps=50, checkpoint_every_steps=7, checkpoint_min_interval_seconds=0, omp_num_threads=1, progress_interval=0.0
)


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.module.state_dict().items()}


def test_interrupted_and_resumed_training_equals_straight_training(tmp_path: Path) -> None:
    straight = Trainer(dataclasses.replace(BASE, checkpoint_dir=""))
    straight_metrics = straight.run()

    config = dataclasses.replace(BASE, checkpoint_dir=str(tmp_path))
    first = Trainer(config)
    assert first.resume() is None
    first.train_steps(31)  # crosses the epoch end at step 19; the last checkpoint is step 28
    first.writer.wait()  # the background write of step 28 has committed
    assert checkpoint.complete_steps(tmp_path) == [21, 28]  # keep 2
    del first  # "killed": steps 29..31 are lost

    second = Trainer(config)
    assert second.resume() == 28
    assert (second.step, second.epoch, second.batch_in_epoch) == (28, 1, 9)
    resumed_metrics = second.run()

    assert second.step == straight.step == 50
    for name, tensor in _weights(straight).items():
        assert torch.equal(tensor, _weights(second)[name]), name
    assert resumed_metrics["test_accuracy"] == straight_metrics["test_accuracy"]
    assert abs(resumed_metrics["train_loss"] - straight_metrics["train_loss"]) < 1e-6


def test_a_moved_run_starts_from_another_directory_and_writes_only_its_own(tmp_path: Path) -> None:
    straight = Trainer(dataclasses.replace(BASE, checkpoint_dir=""))
    straight.run()
    source, own = tmp_path / "original", tmp_path / "moved"
    first = Trainer(dataclasses.replace(BASE, checkpoint_dir=str(source)))
    first.train_steps(31)
    first.writer.wait()
    del first  # the slow copy, cancelled after its checkpoint of step 28

    moved = Trainer(dataclasses.replace(BASE, checkpoint_dir=str(own), resume_from=str(source)))
    assert moved.resume() == 28 and moved.checkpoint_step is None  # step 28 is not checkpointed in its own dir yet
    moved.run()
    assert moved.step == 50
    for name, tensor in _weights(straight).items():
        assert torch.equal(tensor, _weights(moved)[name]), name
    assert checkpoint.complete_steps(source) == [21, 28]  # the source is read, never written
    assert checkpoint.latest(own) == 50
    # Once it has checkpoints of its own, they come first.
    again = Trainer(dataclasses.replace(BASE, checkpoint_dir=str(own), resume_from=str(source)))
    assert again.resume() == 50


def test_a_finished_run_relaunched_only_evaluates(tmp_path: Path) -> None:
    config = dataclasses.replace(BASE, steps=10, checkpoint_dir=str(tmp_path))
    Trainer(config).run()
    again = Trainer(config)
    metrics = again.run()
    assert again.step == 10 and metrics["steps"] == 10.0
    assert checkpoint.latest(tmp_path) == 10


def test_checkpoints_every_n_steps_and_at_epoch_ends(tmp_path: Path) -> None:
    config = dataclasses.replace(BASE, steps=40, checkpoint_every_steps=15, checkpoint_keep=10)
    trainer = Trainer(dataclasses.replace(config, checkpoint_dir=str(tmp_path)))
    trainer.run()  # returns after the last write committed
    assert checkpoint.complete_steps(tmp_path) == [15, 19, 30, 38, 40]
