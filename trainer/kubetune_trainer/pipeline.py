"""Model parallelism: one pipeline stage per rank, GPipe-style microbatches over explicit send/recv.

Decides: the schedule (all microbatch forwards, then all backwards, in order), that activations and their
gradients cross ranks as float32 (so bf16 autocast works on gloo), and that the loss of microbatch ``m`` is
its mean divided by the microbatch count, so accumulated gradients equal those of the whole batch on one
process. The first stage reads the inputs, the last stage reads the targets and computes the loss.

Must not import: the dataset, checkpoint, tracking or progress modules, mlflow, kopf, kubernetes or
``kubetune``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

AutocastFactory = Callable[[], contextlib.AbstractContextManager[object]]


def boundary_shapes(stages: list[nn.Module], sample: torch.Tensor) -> list[tuple[int, ...]]:
    """Per-sample shape of every stage's output (the activation sent to the next stage)."""
    shapes = []
    with torch.no_grad():
        x = sample
        for stage in stages:
            x = stage(x)
            shapes.append(tuple(x.shape[1:]))
    return shapes


class PipelineStage:
    """This rank's stage of the pipeline. Every rank calls the same methods with the same batches."""

    def __init__(
        self,
        stage: nn.Module,
        *,
        rank: int,
        world_size: int,
        shapes: list[tuple[int, ...]],
        microbatches: int,
        device: torch.device,
        autocast: AutocastFactory,
    ) -> None:
        self.stage = stage
        self.rank = rank
        self.world_size = world_size
        self.first = rank == 0
        self.last = rank == world_size - 1
        self.in_shape = shapes[rank - 1] if rank > 0 else None
        self.out_shape = shapes[rank]
        self.microbatches = microbatches
        self.device = device
        self.autocast = autocast

    def _receive(self, rows: int, shape: tuple[int, ...], source: int) -> torch.Tensor:
        buffer = torch.empty((rows, *shape), dtype=torch.float32, device=self.device)
        dist.recv(buffer, src=source)
        return buffer

    def _forward(self, x: torch.Tensor | None, rows: int, *, grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(stage input, stage output) for one microbatch of ``rows`` samples."""
        if self.first:
            assert x is not None
            inp = x
        else:
            assert self.in_shape is not None
            inp = self._receive(rows, self.in_shape, self.rank - 1)
            if grad:
                inp.requires_grad_(True)
        with self.autocast():
            out = self.stage(inp)
        if not self.last:
            dist.send(out.detach().float().contiguous(), dst=self.rank + 1)
        return inp, out

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Forward and backward one batch (gradients accumulate); the batch loss on the last rank."""
        xs = x.chunk(self.microbatches)
        ys = y.chunk(self.microbatches)
        inputs: list[torch.Tensor] = []
        outputs: list[torch.Tensor] = []
        losses: list[torch.Tensor] = []
        for index, target in enumerate(ys):
            inp, out = self._forward(xs[index], target.shape[0], grad=True)
            inputs.append(inp)
            outputs.append(out)
            if self.last:
                with self.autocast():
                    loss = F.cross_entropy(out.flatten(0, -2).float(), target.flatten())
                losses.append(loss / len(ys))
        for index in range(len(ys)):
            if self.last:
                losses[index].backward()  # type: ignore[no-untyped-call]
            else:
                grad = self._receive(outputs[index].shape[0], self.out_shape, self.rank + 1)
                torch.autograd.backward(outputs[index], grad.to(outputs[index].dtype))
            if not self.first:
                grad_in = inputs[index].grad
                assert grad_in is not None
                dist.send(grad_in.contiguous(), dst=self.rank - 1)
        if not self.last:
            return None
        return torch.stack([loss.detach() for loss in losses]).sum()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor | None:
        """Inference through the whole pipeline; the logits on the last rank, None elsewhere."""
        _, out = self._forward(x, x.shape[0], grad=False)
        return out if self.last else None
