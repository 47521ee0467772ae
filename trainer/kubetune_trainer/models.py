"""The model families (MLP, CNN, GPT-style transformer), each an ordered list of blocks.

Decides: what ``depth`` and ``width`` mean per family, and how a model splits into sequential pipeline stages
(contiguous runs of blocks, balanced by parameter count). Every model is a :class:`StagedModel`: its forward
pass is exactly its blocks applied in order, so running the stages one after another is the same computation.

Must not import: the dataset, distributed or checkpoint modules, mlflow, kopf, kubernetes or ``kubetune``.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn


class StagedModel(nn.Module):
    """A model that is a sequence of blocks; ``stages(n)`` cuts it into ``n`` pipeline stages."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def stages(self, n: int) -> list[nn.Module]:
        """Split the blocks into ``n`` contiguous stages with roughly equal parameter counts."""
        blocks = list(self.blocks)
        if not 1 <= n <= len(blocks):
            raise ValueError(f"cannot split {len(blocks)} blocks into {n} stages")
        sizes = [max(1, sum(p.numel() for p in block.parameters())) for block in blocks]
        total = sum(sizes)
        cuts: list[int] = []
        running = 0
        for index, size in enumerate(sizes[:-1]):
            running += size
            remaining_cuts = n - 1 - len(cuts)
            # Cut when the running share passes the next boundary, or when every remaining block must open
            # its own stage.
            if remaining_cuts and (running >= total * (len(cuts) + 1) / n or len(blocks) - index - 1 == remaining_cuts):
                cuts.append(index + 1)
        bounds = [0, *cuts, len(blocks)]
        return [nn.Sequential(*blocks[a:b]) for a, b in itertools.pairwise(bounds)]


def _mlp(depth: int, width: int, in_features: int, num_outputs: int) -> list[nn.Module]:
    blocks: list[nn.Module] = [nn.Sequential(nn.Flatten(), nn.Linear(in_features, width), nn.ReLU())]
    blocks += [nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(depth - 1)]
    blocks.append(nn.Linear(width, num_outputs))
    return blocks


def _cnn(depth: int, width: int, input_shape: tuple[int, ...], num_outputs: int) -> list[nn.Module]:
    channels, height, _ = input_shape
    blocks: list[nn.Module] = []
    size = height
    for index in range(depth):
        layers: list[nn.Module] = [
            nn.Conv2d(channels if index == 0 else width, width, kernel_size=3, padding=1),
            nn.ReLU(),
        ]
        if size >= 4:
            layers.append(nn.MaxPool2d(2))
            size //= 2
        blocks.append(nn.Sequential(*layers))
    blocks.append(nn.Sequential(nn.Flatten(), nn.Linear(width * size * size, num_outputs)))
    return blocks


class _Embedding(nn.Module):
    def __init__(self, vocab_size: int, width: int, max_len: int) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab_size, width)
        self.position = nn.Embedding(max_len, width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        out: torch.Tensor = self.token(tokens) + self.position(positions)
        return out


class _Block(nn.Module):
    """Pre-LN transformer block: causal self-attention then an MLP, each with a residual."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(width, dim=2)
        shape = (batch, length, self.heads, width // self.heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, length, width))
        out: torch.Tensor = x + self.mlp(self.ln_2(x))
        return out


class _Head(nn.Module):
    def __init__(self, width: int, num_outputs: int, *, last_position_only: bool) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(width)
        self.out = nn.Linear(width, num_outputs)
        self.last_position_only = last_position_only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.last_position_only:
            x = x[:, -1]
        out: torch.Tensor = self.out(self.ln(x))
        return out


def attention_heads(width: int) -> int:
    """Heads of 32 or more dimensions each, at most 8; 1 for narrow models."""
    for heads in (8, 4, 2):
        if width % heads == 0 and width // heads >= 32:
            return heads
    return 1


def _transformer(
    depth: int, width: int, seq_len: int, vocab_size: int, num_outputs: int, *, classify: bool
) -> list[nn.Module]:
    heads = attention_heads(width)
    return [
        _Embedding(vocab_size, width, seq_len),
        *(_Block(width, heads) for _ in range(depth)),
        _Head(width, num_outputs, last_position_only=classify),
    ]


def build_model(
    family: str,
    depth: int,
    width: int,
    *,
    input_shape: tuple[int, ...],
    num_outputs: int,
    vocab_size: int = 0,
    classify: bool = True,
) -> StagedModel:
    """Build a model whose parameters are drawn from torch's current RNG (seed it first).

    ``input_shape`` is one sample's shape: ``(C, H, W)`` images for mlp/cnn, ``(T,)`` token ids for the
    transformer (``vocab_size`` distinct ids). ``classify`` picks the transformer's head: the last
    position's class (True) or per-position next-token logits (False).
    """
    if family == "mlp":
        in_features = 1
        for dim in input_shape:
            in_features *= dim
        return StagedModel(_mlp(depth, width, in_features, num_outputs))
    if family == "cnn":
        if len(input_shape) != 3:
            raise ValueError(f"cnn needs (C, H, W) inputs, got {input_shape}")
        return StagedModel(_cnn(depth, width, input_shape, num_outputs))
    if family == "transformer":
        if len(input_shape) != 1 or vocab_size < 1:
            raise ValueError(f"transformer needs (T,) token inputs and a vocabulary, got {input_shape}")
        return StagedModel(_transformer(depth, width, input_shape[0], vocab_size, num_outputs, classify=classify))
    raise ValueError(f"unknown model family {family!r}")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
