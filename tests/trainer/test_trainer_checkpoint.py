"""Checkpoint layout: atomic commits, incomplete directories ignored, keep-N."""

from __future__ import annotations

from pathlib import Path

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
