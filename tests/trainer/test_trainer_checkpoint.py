"""Checkpoint layout: atomic commits, incomplete directories ignored, keep-N; the background writer's guarantees."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from kubetune_trainer import checkpoint


def _state(value: float) -> dict[str, object]:
    return {"model": {"w": torch.full((3,), value)}, "step": int(value)}


def test_layout_is_step_dirs_with_rank_files_and_a_complete_marker(tmp_path: Path) -> None:
    final = checkpoint.save(tmp_path, 7, {0: _state(7)}, keep=2)
    assert final == tmp_path / "step-00000007"
    assert sorted(p.name for p in final.iterdir()) == ["COMPLETE", "rank-0.pt"]
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000007"]  # no temporary left behind
    loaded = checkpoint.load(tmp_path, 7, 0)
    assert torch.equal(loaded["model"]["w"], torch.full((3,), 7.0))


def test_a_directory_without_the_marker_is_ignored(tmp_path: Path) -> None:
    checkpoint.save(tmp_path, 5, {0: _state(5)}, keep=2)
    partial = tmp_path / "step-00000009"
    partial.mkdir()
    torch.save(_state(9), partial / "rank-0.pt")
    temp = checkpoint.prepare(tmp_path, 12)
    checkpoint.write_rank(temp, 0, _state(12))
    assert checkpoint.latest(tmp_path) == 5
    assert checkpoint.complete_steps(tmp_path) == [5]


def test_only_the_newest_keep_checkpoints_survive(tmp_path: Path) -> None:
    for step in (10, 20, 30, 40):
        checkpoint.save(tmp_path, step, {0: _state(step)}, keep=2)
    assert checkpoint.complete_steps(tmp_path) == [30, 40]
    assert not (tmp_path / "step-00000010").exists()


def test_a_stale_temporary_directory_is_replaced(tmp_path: Path) -> None:
    stale = checkpoint.temp_dir(tmp_path, 3)
    stale.mkdir(parents=True)
    (stale / "rank-1.pt").write_bytes(b"garbage from a crashed attempt")
    checkpoint.save(tmp_path, 3, {0: _state(3)}, keep=1)
    assert sorted(p.name for p in (tmp_path / "step-00000003").iterdir()) == ["COMPLETE", "rank-0.pt"]


def test_one_file_per_stage(tmp_path: Path) -> None:
    checkpoint.save(tmp_path, 1, {0: _state(1), 1: _state(2)}, keep=1)
    assert float(checkpoint.load(tmp_path, 1, 1)["model"]["w"][0]) == 2.0


def test_missing_root_has_no_checkpoint(tmp_path: Path) -> None:
    assert checkpoint.latest(tmp_path / "nowhere") is None


class _GatedSave:
    """Stands in for :func:`checkpoint.save` in the writer thread: blocks until released, optionally fails."""

    def __init__(self, error: Exception | None = None) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.error = error
        self.real = checkpoint.save

    def __call__(self, root: str, step: int, states: Mapping[int, Mapping[str, Any]], keep: int) -> Path:
        self.started.set()
        assert self.release.wait(timeout=30)
        if self.error is not None:
            raise self.error
        return self.real(root, step, states, keep)


def test_background_write_counts_as_completed_only_once_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _GatedSave()
    monkeypatch.setattr(checkpoint, "save", gate)
    writer = checkpoint.BackgroundWriter()
    writer.submit(str(tmp_path), 4, {0: _state(4)}, keep=2)
    assert gate.started.wait(timeout=30)
    assert writer.completed is None and checkpoint.latest(tmp_path) is None
    gate.release.set()
    assert writer.wait() == 4
    assert writer.completed == 4 and checkpoint.latest(tmp_path) == 4
    writer.close()


def test_the_snapshot_is_taken_at_submit_so_training_may_mutate_the_originals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _GatedSave()
    monkeypatch.setattr(checkpoint, "save", gate)
    weights = torch.full((3,), 1.0)
    writer = checkpoint.BackgroundWriter()
    writer.submit(str(tmp_path), 1, {0: {"model": {"w": weights}, "pair": (weights, 2)}}, keep=2)
    weights.add_(41.0)  # the next optimizer step, while the write is still pending
    gate.release.set()
    writer.close()
    loaded = checkpoint.load(tmp_path, 1, 0)
    assert torch.equal(loaded["model"]["w"], torch.full((3,), 1.0))
    assert torch.equal(loaded["pair"][0], torch.full((3,), 1.0)) and loaded["pair"][1] == 2


def test_at_most_one_write_in_flight_the_next_submit_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = _GatedSave()
    monkeypatch.setattr(checkpoint, "save", gate)
    writer = checkpoint.BackgroundWriter()
    writer.submit(str(tmp_path), 1, {0: _state(1)}, keep=5)
    assert gate.started.wait(timeout=30)
    second = threading.Thread(target=writer.submit, args=(str(tmp_path), 2, {0: _state(2)}, 5))
    second.start()
    second.join(timeout=0.3)
    assert second.is_alive()  # blocked behind the first write, not queued beside it
    gate.release.set()
    second.join(timeout=30)
    assert not second.is_alive()
    assert writer.wait() == 2
    assert checkpoint.complete_steps(tmp_path) == [1, 2]
    writer.close()


def test_a_failed_write_is_raised_by_the_next_wait_and_never_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _GatedSave(OSError("disk full"))
    gate.release.set()
    monkeypatch.setattr(checkpoint, "save", gate)
    writer = checkpoint.BackgroundWriter()
    writer.submit(str(tmp_path), 3, {0: _state(3)}, keep=2)
    with pytest.raises(OSError, match="disk full"):
        writer.wait()
    assert writer.completed is None
    writer.submit(str(tmp_path), 4, {0: _state(4)}, keep=2)
    with pytest.raises(OSError, match="disk full"):  # ... and by the next submit's wait for its predecessor
        writer.submit(str(tmp_path), 5, {0: _state(5)}, keep=2)
    writer.close()


def test_snapshot_shares_immutable_leaves_and_copies_tensors() -> None:
    ints = tuple(range(625))
    state: dict[str, Any] = {"python": (3, ints, None), "t": torch.ones(2), "nested": [{"m": torch.zeros(1)}]}
    copied = checkpoint.snapshot(state)
    assert copied["python"][1] is ints
    assert copied["t"] is not state["t"] and torch.equal(copied["t"], state["t"])
    assert copied["nested"][0]["m"].data_ptr() != state["nested"][0]["m"].data_ptr()
