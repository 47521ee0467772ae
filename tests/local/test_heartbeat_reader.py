"""The local runner's heartbeat reader: the newest record, with what older records said filled in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubetune.local.processes import HeartbeatReader


def _append(path: Path, *records: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def test_a_record_without_total_or_metrics_keeps_the_last_known_before_any_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    reader = HeartbeatReader(path)
    assert reader.poll() is None  # no file yet
    _append(path, {"step": 10, "time": 1.0, "total_steps": 100, "metrics": {"train_loss": 2.0}})
    _append(path, {"step": 20, "time": 2.0})  # e.g. a user's bare report(step=20)
    beat = reader.poll()
    assert beat is not None and reader.checkpoint_step is None
    assert (beat.step, beat.total_steps, beat.metrics) == (20, 100, {"train_loss": 2.0})


def test_the_checkpoint_step_is_the_newest_named_and_a_partial_line_waits(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    reader = HeartbeatReader(path)
    _append(path, {"step": 5, "time": 1.0, "total_steps": 50, "kind": "checkpoint", "checkpoint_step": 5})
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"step": 9, "time": 2.0, "metrics": {"train_loss": 1.5}, "check')  # half written
    beat = reader.poll()
    assert beat is not None and (beat.step, beat.checkpoint_step, beat.total_steps) == (5, 5, 50)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('point_step": 5}\n')
    beat = reader.poll()
    assert beat is not None and (beat.step, beat.checkpoint_step, beat.total_steps) == (9, 5, 50)
    assert beat.metrics == {"train_loss": 1.5}
