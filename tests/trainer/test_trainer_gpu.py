"""The trainer on a CUDA GPU: accuracy, resume, bf16 + torch.compile, SIGTERM. Skipped where there is no GPU.

CI has none; ``scripts/gpu-check.sh`` runs these on a GPU machine (with the GPU figures of the trainer benchmark).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from kubetune_trainer import checkpoint
from kubetune_trainer.config import TrainerConfig
from kubetune_trainer.train import Trainer
from trainer_harness import base_env, launch, read_result, wait_for_heartbeat

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

GPU = TrainerConfig(device="cuda", omp_num_threads=1, checkpoint_min_interval_seconds=0)


def test_digits_on_the_gpu_reaches_the_cpu_accuracy_and_resumes_there(tmp_path: Path) -> None:
    config = dataclasses.replace(GPU, epochs=30, checkpoint_dir=str(tmp_path), checkpoint_every_steps=0)
    trainer = Trainer(config)
    assert trainer.device.type == "cuda" and next(trainer.module.parameters()).is_cuda
    metrics = trainer.run()
    assert metrics["test_accuracy"] >= 0.96
    assert checkpoint.latest(tmp_path) == 30 * 19
    longer = Trainer(dataclasses.replace(config, epochs=31))
    assert longer.resume() == 30 * 19  # a GPU checkpoint loads onto the GPU: model, optimizer, CUDA RNG
    assert next(iter(longer.optimizer.state.values()))["momentum_buffer"].is_cuda
    assert longer.run()["steps"] == 31 * 19


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("cc") is None, reason="inductor needs a compiler")
def test_a_compiled_bf16_transformer_trains_on_the_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    config = dataclasses.replace(
        GPU, model_family="transformer", model_depth=2, model_width=64, dataset="synthetic", synthetic_seq_len=64,
        synthetic_vocab=128, batch_size=32, steps=40, precision="bf16", compile=True, optimizer="adam",
        learning_rate=3e-3, checkpoint_every_steps=0,
    )  # fmt: skip
    trainer = Trainer(config)
    assert trainer.forward_model is not trainer.module
    with trainer._autocast():
        assert trainer.module(trainer.train_x[:2]).dtype == torch.bfloat16
    first = trainer.evaluate(test=False)["val_loss"]
    metrics = trainer.run()
    assert math.isfinite(metrics["train_loss"]) and metrics["val_loss"] < first  # it learns the unigram counts


def test_sigterm_on_the_gpu_checkpoints_within_five_seconds_and_exits_143(tmp_path: Path) -> None:
    env = base_env(tmp_path, KUBETUNE_DEVICE="cuda", KUBETUNE_EPOCHS="100000", KUBETUNE_CHECKPOINT_EVERY_STEPS="0")
    proc = launch(env)
    wait_for_heartbeat(proc, tmp_path, 120)
    time.sleep(0.5)
    sent_wall = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    result = read_result(tmp_path)
    assert result["outcome"] == "preempted" and result["checkpoint_step"] == result["step"]
    marker = tmp_path / "ckpt" / f"step-{result['step']:08d}" / "COMPLETE"
    assert marker.stat().st_mtime - sent_wall < 5.0
