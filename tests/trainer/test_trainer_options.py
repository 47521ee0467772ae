"""Performance and chaos options: bf16, torch.compile, every family trains, slowdown, threads, time triggers."""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from pathlib import Path

import pytest
import torch
from kubetune_trainer import checkpoint, data
from kubetune_trainer.config import StepDelay, TrainerConfig
from kubetune_trainer.progress import NullSink, Reporter
from kubetune_trainer.train import Preempted, Trainer

TINY = TrainerConfig(steps=6, checkpoint_every_steps=0, model_width=32, omp_num_threads=1)


@pytest.mark.parametrize(
    ("family", "dataset"),
    [
        ("mlp", "digits"),
        ("cnn", "digits"),
        ("transformer", "digits"),
        ("cnn", "synthetic"),
        ("transformer", "synthetic"),
    ],
)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_family_trains_in_both_precisions(family: str, dataset: str, precision: str) -> None:
    config = dataclasses.replace(TINY, model_family=family, dataset=dataset, precision=precision, batch_size=16)
    trainer = Trainer(config)
    metrics = trainer.run()
    assert trainer.step == 6
    assert math.isfinite(metrics["train_loss"]) and 0.0 <= metrics["test_accuracy"] <= 1.0


def test_the_synthetic_sequences_take_their_length_and_vocabulary_from_the_config() -> None:
    env = {"KUBETUNE_DATASET": "synthetic", "KUBETUNE_MODEL_FAMILY": "transformer", "KUBETUNE_MODEL_WIDTH": "32"}
    config = TrainerConfig.from_env({**env, "KUBETUNE_SYNTHETIC_SEQ_LEN": "16", "KUBETUNE_SYNTHETIC_VOCAB": "40"})
    trainer = Trainer(dataclasses.replace(config, steps=2, checkpoint_every_steps=0, omp_num_threads=1))
    assert trainer.data.input_shape == (16,) and trainer.train_x.shape[1] == 16 and trainer.data.vocab_size == 40
    assert int(trainer.train_x.max()) < 40 and len(trainer.train_y) == 16384 * 32 // 16  # the same tokens a split
    assert trainer.module(trainer.train_x[:2]).shape == (2, 16, 40)
    assert math.isfinite(trainer.run()["train_loss"])
    default = TrainerConfig()
    assert (default.synthetic_seq_len, default.synthetic_vocab) == (data.SYNTHETIC_SEQ_LEN, data.SYNTHETIC_VOCAB)


def test_bf16_autocast_computes_in_bfloat16() -> None:
    trainer = Trainer(dataclasses.replace(TINY, precision="bf16"))
    with trainer._autocast():
        assert trainer.module(trainer.train_x[:4]).dtype == torch.bfloat16
    fp32 = Trainer(TINY)
    with fp32._autocast():
        assert fp32.module(fp32.train_x[:4]).dtype == torch.float32


def test_training_lowers_the_loss_of_the_digit_transformer() -> None:
    config = dataclasses.replace(
        TINY, model_family="transformer", steps=0, epochs=3, learning_rate=0.01, optimizer="adam"
    )
    trainer = Trainer(config)
    first = trainer.evaluate()["val_loss"]
    assert trainer.run()["val_loss"] < 0.8 * first


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("cc") is None, reason="inductor needs a compiler")
def test_compiled_model_trains_like_the_eager_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A private inductor cache: the default /tmp/torchinductor_<user> is shared by every torch install on the
    # machine, and a precompiled header built by another install breaks the compile.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    eager = Trainer(dataclasses.replace(TINY, steps=3))
    compiled = Trainer(dataclasses.replace(TINY, steps=3, compile=True))
    assert compiled.forward_model is not compiled.module
    eager_loss, compiled_loss = eager.run()["train_loss"], compiled.run()["train_loss"]
    assert compiled_loss == pytest.approx(eager_loss, rel=1e-4)


def test_slowdown_stretches_each_step() -> None:
    config = dataclasses.replace(TINY, model_family="cnn", steps=0, epochs=100)
    normal, slow = Trainer(config), Trainer(dataclasses.replace(config, slowdown=3.0))
    for trainer in (normal, slow):
        trainer.train_steps(3)  # warm-up
    started = time.perf_counter()
    normal.train_steps(15)
    normal_time = time.perf_counter() - started
    started = time.perf_counter()
    slow.train_steps(15)
    assert time.perf_counter() - started > 2.0 * normal_time


def test_slowdown_stretches_the_emulated_device_time_too() -> None:
    """A slow node slows the whole step: with a constant 20 ms step delay (emulated device time) and a slowdown of 3,
    ten steps take at least 10 x 3 x 20 ms."""
    delay = StepDelay(shift=1.0, rate=1e9, scale=0.02)
    config = dataclasses.replace(TINY, steps=0, epochs=100, step_delay=delay)
    slow = Trainer(dataclasses.replace(config, slowdown=3.0))
    slow.train_steps(2)  # warm-up
    started = time.perf_counter()
    slow.train_steps(10)
    assert time.perf_counter() - started >= 10 * 3 * 0.02


def test_omp_num_threads_sets_torch_threads() -> None:
    before = torch.get_num_threads()
    try:
        Trainer(dataclasses.replace(TINY, omp_num_threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_time_trigger_checkpoints(tmp_path: Path) -> None:
    config = dataclasses.replace(
        TINY, steps=0, epochs=100, checkpoint_every_seconds=0.05, checkpoint_min_interval_seconds=0, checkpoint_keep=100
    )
    trainer = Trainer(dataclasses.replace(config, checkpoint_dir=str(tmp_path)))
    trainer.train_steps(5)
    time.sleep(0.06)
    trainer.train_steps(1)
    trainer.writer.wait()
    assert checkpoint.complete_steps(tmp_path) == [6]


def test_checkpoint_intervals_follow_the_injected_clock(tmp_path: Path) -> None:
    """The intervals count the trainer's clock, not the wall: a clock that stands still defers every periodic
    checkpoint, one that jumps past the interval takes the next (the trainer_overhead benchmark's turn clock)."""
    now = [0.0]
    config = dataclasses.replace(
        TINY,
        steps=0,
        epochs=100,
        checkpoint_dir=str(tmp_path),
        checkpoint_every_steps=2,
        checkpoint_min_interval_seconds=10,
        checkpoint_keep=100,
    )
    trainer = Trainer(config, clock=lambda: now[0])
    trainer.train_steps(6)  # steps 2, 4 and 6 ask for one; the clock has not moved: all too soon
    now[0] = 10.0
    trainer.train_steps(2)  # step 8 asks, 10 s after the start
    trainer.train_steps(2)  # step 10 asks, too soon after step 8
    now[0] = 25.0
    trainer.train_steps(2)
    trainer.writer.wait()
    assert checkpoint.complete_steps(tmp_path) == [8, 12]


def test_the_minimum_interval_defers_periodic_checkpoints_but_never_the_last(tmp_path: Path) -> None:
    every_step = dataclasses.replace(TINY, steps=0, epochs=3, checkpoint_every_steps=1, checkpoint_keep=1000)
    spaced = Trainer(
        dataclasses.replace(every_step, checkpoint_dir=str(tmp_path / "a"), checkpoint_min_interval_seconds=3600)
    )
    spaced.run()  # 3 epochs of 19 steps: every step and every epoch end asked for one, all too soon after the start
    assert checkpoint.complete_steps(tmp_path / "a") == [57]  # the end of training always checkpoints
    exact = Trainer(
        dataclasses.replace(every_step, checkpoint_dir=str(tmp_path / "b"), checkpoint_min_interval_seconds=0)
    )
    exact.run()
    assert checkpoint.complete_steps(tmp_path / "b") == list(range(1, 58))
    # A stop checkpoints at once, however recent the last one.
    stopped = Trainer(
        dataclasses.replace(every_step, checkpoint_dir=str(tmp_path / "c"), checkpoint_min_interval_seconds=3600)
    )
    stopped.train_steps(4)
    stopped.stop.request()
    with pytest.raises(Preempted):
        stopped.train_steps(1)
    assert checkpoint.complete_steps(tmp_path / "c") == [5]


def test_the_minimum_interval_spaces_checkpoints_in_time(tmp_path: Path) -> None:
    config = dataclasses.replace(
        TINY, steps=0, epochs=1000, checkpoint_every_steps=1, checkpoint_min_interval_seconds=0.2, checkpoint_keep=1000
    )
    trainer = Trainer(dataclasses.replace(config, checkpoint_dir=str(tmp_path), step_delay=StepDelay(1.0, 1e9, 0.01)))
    began = time.monotonic()
    trainer.train_steps(70)  # 0.7 s and more at 10 ms a step
    trainer.writer.wait()
    elapsed = time.monotonic() - began
    steps = checkpoint.complete_steps(tmp_path)
    assert 2 <= len(steps) <= elapsed / 0.2 + 1  # not the 70 every step asked for


def test_heartbeats_carry_throughput_and_loss() -> None:
    records: list[dict[str, object]] = []

    class Keep(NullSink):
        def emit(self, record: object) -> None:
            records.append(dict(record))  # type: ignore[call-overload]

    config = dataclasses.replace(TINY, steps=40)
    Trainer(config, reporter=Reporter(Keep(), interval=0.0)).run()
    heartbeats = [r for r in records if r["kind"] == "heartbeat"]
    assert len(heartbeats) == 40
    assert all(isinstance(r["samples_per_s"], float) and r["samples_per_s"] > 0 for r in heartbeats[1:])
    # Right after an epoch end the new epoch has no loss yet; the epoch record carries it.
    assert all("train_loss" in r["metrics"] for r in heartbeats if r["step"] % 19)  # type: ignore[operator]
    assert [r["kind"] for r in records].count("epoch") == 2
    assert records[-1]["kind"] == "final"
