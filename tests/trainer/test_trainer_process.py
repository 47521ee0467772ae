"""``python -m kubetune_trainer`` as a controller runs it: exit codes, results, SIGTERM, divergence."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from kubetune_trainer import checkpoint
from trainer_harness import base_env, launch, read_progress, read_result, wait_for_heartbeat


def test_a_short_run_succeeds_with_metrics_and_a_final_heartbeat(tmp_path: Path) -> None:
    proc = launch(base_env(tmp_path, KUBETUNE_EPOCHS="2"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = read_result(tmp_path)
    assert result["outcome"] == "succeeded" and result["step"] == 38 and result["checkpoint_step"] == 38
    assert {"test_accuracy", "val_accuracy", "test_loss", "train_loss", "steps"} <= set(result["metrics"])
    assert result["metrics"]["test_accuracy"] > 0.8
    kinds = [record["kind"] for record in read_progress(tmp_path)]
    assert kinds.count("epoch") == 2 and kinds[-1] == "final"


def test_sigterm_checkpoints_and_exits_143_within_five_seconds(tmp_path: Path) -> None:
    env = base_env(tmp_path, KUBETUNE_EPOCHS="1000", KUBETUNE_CHECKPOINT_EVERY_STEPS="0")
    proc = launch(env)
    wait_for_heartbeat(proc, tmp_path, 60)
    time.sleep(0.3)
    sent, sent_wall = time.monotonic(), time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    exited = time.monotonic() - sent
    assert proc.returncode == 143, err
    result = read_result(tmp_path)
    assert result["outcome"] == "preempted"
    assert result["checkpoint_step"] == result["step"] == checkpoint.latest(tmp_path / "ckpt")
    marker = tmp_path / "ckpt" / f"step-{result['step']:08d}" / "COMPLETE"
    # The checkpoint (its marker is written last) within 5 s of the notice; the interpreter's exit after it is
    # only bounded, as a loaded machine can take seconds to tear torch down.
    assert marker.stat().st_mtime - sent_wall < 5.0
    assert exited < 15.0

    # The relaunch resumes from that step and finishes.
    epochs = result["step"] // 19 + 1
    relaunch = launch({**env, "KUBETUNE_EPOCHS": str(epochs), "KUBETUNE_ATTEMPT": "1"})
    _, err = relaunch.communicate(timeout=60)
    assert relaunch.returncode == 0, err
    second = [r for r in read_progress(tmp_path) if r["attempt"] == 1]
    assert second[0]["step"] == result["step"] + 1  # no work redone, none skipped
    assert second[-1]["kind"] == "final" and read_result(tmp_path)["step"] == epochs * 19


def test_divergence_fails_cleanly_with_reason_diverged(tmp_path: Path) -> None:
    proc = launch(base_env(tmp_path, KUBETUNE_LEARNING_RATE="50", KUBETUNE_EPOCHS="3"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in err
    result = read_result(tmp_path)
    assert (result["outcome"], result["reason"]) == ("failed", "Diverged")


def test_bad_configuration_exits_2_with_reason_invalid_config(tmp_path: Path) -> None:
    proc = launch(base_env(tmp_path, KUBETUNE_OPTIMISER="sgd"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "KUBETUNE_OPTIMISER" in err
    result = read_result(tmp_path)
    assert (result["outcome"], result["reason"]) == ("failed", "InvalidConfig")
    assert "KUBETUNE_OPTIMISER" in result["message"]


def test_help_explains_the_configuration(tmp_path: Path) -> None:
    proc = launch(base_env(tmp_path), "--help")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "trainer-contract" in out


def test_command_line_arguments_override_the_environment(tmp_path: Path) -> None:
    proc = launch(base_env(tmp_path, KUBETUNE_EPOCHS="50"), "--steps", "5", "--model-family", "cnn")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert read_result(tmp_path)["step"] == 5
