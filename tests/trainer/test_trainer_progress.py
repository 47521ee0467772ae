"""Heartbeats and results: the contract's JSON, the rate limit, the sink registry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubetune_trainer
import pytest
from kubetune.core import Heartbeat
from kubetune_trainer import progress
from kubetune_trainer.progress import FileSink, NullSink, Reporter, open_sink, register_sink, write_result

HEARTBEAT_KEYS = {
    "kind", "job", "rank", "attempt", "step", "total_steps", "epoch", "samples_per_s", "steps_per_s", "metrics", "time",
}  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ListSink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def emit(self, record: Mapping[str, Any]) -> None:
        self.records.append(dict(record))

    def close(self) -> None:
        pass


def test_heartbeats_are_rate_limited_but_epoch_checkpoint_final_always_go_out() -> None:
    clock, sink = Clock(), ListSink()
    reporter = Reporter(sink, interval=2.0, clock=clock)
    assert reporter.report(1)
    clock.now += 1.0
    assert not reporter.report(2)
    for kind in ("epoch", "checkpoint", "final"):
        assert reporter.report(3, kind=kind)
    clock.now += 1.5
    assert not reporter.report(4)
    clock.now += 0.6
    assert reporter.report(5)
    assert [r["step"] for r in sink.records] == [1, 3, 3, 3, 5]


def test_samples_per_second_is_measured_over_the_window() -> None:
    clock, sink = Clock(), ListSink()
    reporter = Reporter(sink, interval=2.0, clock=clock)
    reporter.report(1, samples=64)
    clock.now += 4.0
    reporter.report(101, samples=64 + 800)
    assert sink.records[0]["samples_per_s"] is None and sink.records[0]["steps_per_s"] is None
    assert sink.records[1]["samples_per_s"] == pytest.approx(200.0)
    # Steps over the same window: a run resumed at step 1 is credited only with the steps it made since.
    assert sink.records[1]["steps_per_s"] == pytest.approx(25.0)


def test_file_sink_appends_json_lines_in_the_contract_shape(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "progress.jsonl"
    reporter = Reporter(open_sink(f"file:{path}"), job="j", rank=1, attempt=2, interval=0)
    reporter.report(10, {"train_loss": 0.5}, total_steps=100, epoch=0, samples=640)
    reporter.report(20, {"train_loss": 0.25}, total_steps=100, epoch=1, kind="epoch")
    lines = path.read_text().splitlines()  # flushed without closing
    records = [json.loads(line) for line in lines]
    assert [set(r) for r in records] == [HEARTBEAT_KEYS, HEARTBEAT_KEYS | {"last_epoch"}]
    # Once an epoch has ended, every record repeats its metrics (a coalescing channel keeps only the newest).
    assert records[1]["last_epoch"] == {"epoch": 1, "metrics": {"train_loss": 0.25}}
    reporter.report(25, {}, total_steps=100, epoch=1, kind="checkpoint")
    assert json.loads(path.read_text().splitlines()[-1])["last_epoch"] == {"epoch": 1, "metrics": {"train_loss": 0.25}}
    assert records[0]["job"] == "j" and records[0]["rank"] == 1 and records[0]["attempt"] == 2
    assert records[1]["kind"] == "epoch" and records[1]["metrics"] == {"train_loss": 0.25}
    reporter.close()


def test_every_record_after_a_checkpoint_names_it_so_that_a_coalescing_channel_keeps_it() -> None:
    """The pod annotation keeps only the newest record: a heartbeat after a checkpoint must still carry its step,
    which the operator's parser reads as the worker's last checkpoint."""
    clock, sink = Clock(), ListSink()
    reporter = Reporter(sink, interval=0, clock=clock)
    reporter.report(5, samples=320)
    assert "checkpoint_step" not in sink.records[-1]
    reporter.report(10, kind="checkpoint")
    reporter.report(12, samples=768)
    reporter.report(15, kind="epoch", epoch=1)
    assert [r.get("checkpoint_step") for r in sink.records] == [None, 10, 10, 10]
    reporter.report(8, kind="checkpoint")  # an older step never replaces a newer one
    reporter.report(20, kind="checkpoint")
    reporter.report(21, samples=1344)
    assert [r["checkpoint_step"] for r in sink.records[-3:]] == [10, 20, 20]
    assert Heartbeat.from_dict(sink.records[-1]).checkpoint_step == 20


def test_sink_registry_builds_by_scheme() -> None:
    assert isinstance(open_sink("none"), NullSink)
    assert isinstance(open_sink(""), NullSink)
    made: list[str] = []

    def factory(target: str) -> NullSink:
        made.append(target)
        return NullSink()

    register_sink("test-scheme", factory)
    open_sink("test-scheme:pod/annotation")
    assert made == ["pod/annotation"]
    with pytest.raises(ValueError, match="unknown sink scheme"):
        open_sink("carrier-pigeon:home")


def test_k8s_scheme_builds_the_pod_annotation_sink_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubetune_trainer import k8s_progress

    monkeypatch.setenv("POD_NAME", "job-w0-a0")
    monkeypatch.setenv("POD_NAMESPACE", "team")
    monkeypatch.setattr(k8s_progress, "_core_api", lambda: object())
    sink = open_sink("k8s:")
    assert isinstance(sink, k8s_progress.PodAnnotationSink) and sink.pod == "job-w0-a0"
    sink.close()


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="kind"):
        Reporter(NullSink()).report(1, kind="party")


def test_public_report_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.jsonl"
    monkeypatch.setenv("KUBETUNE_PROGRESS", f"file:{path}")
    monkeypatch.setenv("KUBETUNE_JOB", "user-script")
    monkeypatch.setenv("RANK", "0")
    progress.set_reporter(None)
    try:
        assert kubetune_trainer.report(5, {"loss": 1.0}, total_steps=10)
        assert not kubetune_trainer.report(6, {"loss": 0.9})  # within the 2 s default interval
    finally:
        progress.set_reporter(None)
    record = json.loads(path.read_text().splitlines()[0])
    assert record["job"] == "user-script" and record["step"] == 5 and record["metrics"] == {"loss": 1.0}


def test_result_file_shape_and_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    write_result("failed", step=3, reason="Diverged", message="x" * 10_000, checkpoint_step=2, path=str(path))
    text = path.read_text()
    assert len(text.encode()) < 4096
    result = json.loads(text)
    assert set(result) == {"outcome", "step", "metrics", "checkpoint_step", "reason", "message"}
    assert (result["outcome"], result["reason"], result["checkpoint_step"]) == ("failed", "Diverged", 2)


def test_result_goes_to_the_configured_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.json"
    monkeypatch.setenv("KUBETUNE_RESULT_FILE", str(path))
    kubetune_trainer.write_result("succeeded", step=9, metrics={"test_accuracy": 0.97})
    assert json.loads(path.read_text())["metrics"] == {"test_accuracy": 0.97}


def test_file_sink_is_the_file_scheme(tmp_path: Path) -> None:
    assert isinstance(open_sink(f"file:{tmp_path / 'x'}"), FileSink)
