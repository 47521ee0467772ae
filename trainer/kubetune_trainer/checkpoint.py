"""Checkpoint files on disk: the contract's layout, atomic commits, keep-N pruning, finding the newest.

Decides: ``<root>/step-<NNNNNNNN>/rank-<r>.pt`` plus a ``COMPLETE`` marker written last; a step directory is
written under ``<root>/.tmp-step-<NNNNNNNN>`` (same parent, so the rename is atomic), every file fsynced, then
renamed; directories without the marker are ignored; only the newest ``keep`` complete checkpoints survive.
A single writer may write asynchronously (:class:`BackgroundWriter`, the shape of torch.distributed.checkpoint's
``async_save``): the training thread only takes a CPU :func:`snapshot`, one long-lived writer thread serialises,
writes and commits it; at most one write is in flight (the next submit waits for it: back-pressure, never a skipped
checkpoint); a checkpoint counts as written (:attr:`BackgroundWriter.completed`) only once committed; a failed
write's error is raised on the training thread by the next :meth:`~BackgroundWriter.submit` or
:meth:`~BackgroundWriter.wait`, never dropped.
What goes *into* a rank file (model, optimizer, RNG, sampler position) is the trainer's business.

Must not import: torch.distributed (the trainer places barriers around :func:`prepare` / :func:`commit`),
mlflow, kopf, kubernetes or ``kubetune``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

COMPLETE = "COMPLETE"
_STEP_DIR = re.compile(r"^step-(\d{8,})$")
_TEMP_DIR = re.compile(r"^\.tmp-step-(\d{8,})$")


def step_dir(root: str | os.PathLike[str], step: int) -> Path:
    return Path(root) / f"step-{step:08d}"


def temp_dir(root: str | os.PathLike[str], step: int) -> Path:
    return Path(root) / f".tmp-step-{step:08d}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prepare(root: str | os.PathLike[str], step: int) -> Path:
    """Create an empty temporary directory for ``step`` (removing a stale one a crash left behind)."""
    temp = temp_dir(root, step)
    if temp.exists():
        shutil.rmtree(temp)
    temp.mkdir(parents=True)
    return temp


def write_rank(directory: Path, rank: int, state: Mapping[str, Any]) -> Path:
    """Write one rank's state into ``directory`` (via a ``.part`` file, fsynced, renamed)."""
    final = directory / f"rank-{rank}.pt"
    part = directory / f"rank-{rank}.pt.part"
    # Serialise in memory, then one write: a background writer then takes the GIL once, not once per chunk.
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    with open(part, "wb") as handle:
        handle.write(buffer.getbuffer())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(part, final)
    return final


def commit(root: str | os.PathLike[str], step: int, keep: int) -> Path:
    """Mark the temporary directory complete, rename it into place and prune old checkpoints."""
    temp = temp_dir(root, step)
    marker = temp / COMPLETE
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write(f"{step}\n")
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_dir(temp)
    final = step_dir(root, step)
    if final.exists():
        shutil.rmtree(final)
    os.rename(temp, final)
    _fsync_dir(Path(root))
    prune(root, keep)
    return final


def save(root: str | os.PathLike[str], step: int, states: Mapping[int, Mapping[str, Any]], keep: int) -> Path:
    """Single-writer checkpoint: every rank file written by this process, then committed."""
    temp = prepare(root, step)
    for rank, state in states.items():
        write_rank(temp, rank, state)
    return commit(root, step, keep)


_CONTAINERS = (torch.Tensor, dict, list, tuple)


def snapshot(state: Any) -> Any:
    """A deep copy of ``state`` whose tensors are fresh CPU copies, safe to write while training goes on.

    Only containers that can hold tensors are walked (dicts, lists, and tuples that hold a container or a tensor);
    anything else (numbers, strings, arrays, a tuple of ints such as :func:`random.getstate`'s) is immutable here or
    already a copy and is shared, not walked element by element.
    """
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {key: snapshot(value) for key, value in state.items()}
    if isinstance(state, list):
        return [snapshot(value) for value in state]
    if isinstance(state, tuple) and any(isinstance(value, _CONTAINERS) for value in state):
        return tuple(snapshot(value) for value in state)
    return state


class BackgroundWriter:
    """Single-writer checkpoints written by one long-lived background thread, so the step loop only pays the snapshot.

    :meth:`submit` takes a :func:`snapshot` of the live state on the caller's thread (so training may mutate the
    originals as soon as it returns) and hands it to the writer thread, which runs :func:`save` on it. At most one
    write is in flight: :meth:`submit` first waits for the previous one (waiting rather than skipping keeps the
    checkpoint cadence the configuration asks for and bounds the memory to one snapshot; with a sane interval the
    previous write has long finished). :attr:`completed` is the newest step whose write committed (a plain
    attribute, cheap to read every step). A failed write is raised on the caller's thread by the next
    :meth:`submit` or :meth:`wait`.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._job: tuple[str, int, Mapping[int, Mapping[str, Any]], int] | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.completed: int | None = None

    def submit(self, root: str, step: int, states: Mapping[int, Mapping[str, Any]], keep: int) -> None:
        """Snapshot ``states`` and queue them as checkpoint ``step``; returns once the snapshot is taken."""
        self.wait()
        copied = {rank: snapshot(dict(state)) for rank, state in states.items()}
        with self._condition:
            if self._closed:
                raise RuntimeError("the checkpoint writer is closed")
            self._job = (root, step, copied, keep)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="checkpoint-writer", daemon=True)
                self._thread.start()
            self._condition.notify_all()

    def _loop(self) -> None:
        while True:
            with self._condition:
                while self._job is None and not self._closed:
                    self._condition.wait()
                if self._job is None:
                    return
                root, step, states, keep = self._job
            error: BaseException | None = None
            try:
                save(root, step, states, keep)
            except BaseException as raised:  # handed to the training thread by submit() / wait()
                error = raised
            with self._condition:
                if error is None:
                    self.completed = step
                else:
                    self._error = error
                self._job = None
                self._condition.notify_all()

    def wait(self) -> int | None:
        """Block until no write is in flight; raise a failed write's error; return :attr:`completed`."""
        with self._condition:
            while self._job is not None:
                self._condition.wait()
            error, self._error = self._error, None
        if error is not None:
            raise error
        return self.completed

    def close(self) -> None:
        """Wait for the write in flight (raising its error, if any) and end the writer thread."""
        try:
            self.wait()
        finally:
            with self._condition:
                self._closed = True
                self._condition.notify_all()
            if self._thread is not None:
                self._thread.join()
                self._thread = None


def complete_steps(root: str | os.PathLike[str]) -> list[int]:
    """Steps that have a complete checkpoint, oldest first."""
    base = Path(root)
    if not base.is_dir():
        return []
    steps = []
    for entry in base.iterdir():
        match = _STEP_DIR.match(entry.name)
        if match and (entry / COMPLETE).is_file():
            steps.append(int(match.group(1)))
    return sorted(steps)


def latest(root: str | os.PathLike[str]) -> int | None:
    """The newest complete checkpoint's step, or None."""
    steps = complete_steps(root)
    return steps[-1] if steps else None


def load(root: str | os.PathLike[str], step: int, rank: int, map_location: str | torch.device = "cpu") -> Any:
    """One rank file of a complete checkpoint (our own files: full unpickling of RNG states is intended)."""
    path = step_dir(root, step) / f"rank-{rank}.pt"
    return torch.load(path, map_location=map_location, weights_only=False)


def prune(root: str | os.PathLike[str], keep: int) -> None:
    """Delete all but the newest ``keep`` complete checkpoints."""
    steps = complete_steps(root)
    for step in steps[: max(0, len(steps) - keep)]:
        shutil.rmtree(step_dir(root, step), ignore_errors=True)
    # Temporary directories older than the newest checkpoint were abandoned by a crashed writer.
    for entry in Path(root).iterdir():
        match = _TEMP_DIR.match(entry.name)
        if match and steps and int(match.group(1)) < steps[-1]:
            shutil.rmtree(entry, ignore_errors=True)
