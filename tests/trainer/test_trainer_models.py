"""Model families: depth and width mean what they say, shapes fit every dataset, stages compose the model."""

from __future__ import annotations

import pytest
import torch
from kubetune_trainer.models import build_model, count_parameters
from torch import nn

DIGITS = {"input_shape": (1, 8, 8), "num_outputs": 10}
MNIST = {"input_shape": (1, 28, 28), "num_outputs": 10}
TOKENS = {"input_shape": (64,), "num_outputs": 10, "vocab_size": 17}


def _layers(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(module, kind) for module in model.modules())


def test_mlp_depth_is_hidden_layers_and_width_is_hidden_units() -> None:
    shallow = build_model("mlp", 1, 32, **DIGITS)  # type: ignore[arg-type]
    deep = build_model("mlp", 3, 32, **DIGITS)  # type: ignore[arg-type]
    wide = build_model("mlp", 1, 64, **DIGITS)  # type: ignore[arg-type]
    assert _layers(shallow, nn.Linear) == 2
    assert _layers(deep, nn.Linear) == 4
    assert count_parameters(shallow) == 64 * 32 + 32 + 32 * 10 + 10
    assert count_parameters(deep) == count_parameters(shallow) + 2 * (32 * 32 + 32)
    assert count_parameters(wide) == 64 * 64 + 64 + 64 * 10 + 10


def test_cnn_depth_is_conv_blocks_and_width_is_channels() -> None:
    two = build_model("cnn", 2, 8, **DIGITS)  # type: ignore[arg-type]
    three = build_model("cnn", 3, 8, **DIGITS)  # type: ignore[arg-type]
    wide = build_model("cnn", 2, 16, **DIGITS)  # type: ignore[arg-type]
    assert (_layers(two, nn.Conv2d), _layers(three, nn.Conv2d)) == (2, 3)
    assert count_parameters(three) > count_parameters(two)
    assert count_parameters(wide) > count_parameters(two)


def test_transformer_depth_is_blocks_and_width_is_embedding() -> None:
    two = build_model("transformer", 2, 32, **TOKENS)  # type: ignore[arg-type]
    four = build_model("transformer", 4, 32, **TOKENS)  # type: ignore[arg-type]
    assert len(four.blocks) - len(two.blocks) == 2
    per_block = 4 * 32 + 32 * 96 + 96 + 32 * 32 + 32 + 32 * 128 + 128 + 128 * 32 + 32
    assert count_parameters(four) - count_parameters(two) == 2 * per_block
    wide = build_model("transformer", 2, 64, **TOKENS)  # type: ignore[arg-type]
    assert wide.blocks[0].token.embedding_dim == 64  # type: ignore[union-attr]


@pytest.mark.parametrize("family", ["mlp", "cnn"])
@pytest.mark.parametrize("shape", [DIGITS, MNIST])
def test_image_models_map_a_batch_to_class_logits(family: str, shape: dict[str, object]) -> None:
    model = build_model(family, 2, 16, **shape)  # type: ignore[arg-type]
    x = torch.randn(5, *shape["input_shape"])  # type: ignore[misc]
    assert model(x).shape == (5, 10)


def test_transformer_classifies_from_the_last_position() -> None:
    model = build_model("transformer", 2, 32, **TOKENS)  # type: ignore[arg-type]
    assert model(torch.randint(17, (5, 64))).shape == (5, 10)


def test_transformer_language_model_is_causal() -> None:
    torch.manual_seed(0)
    model = build_model("transformer", 2, 32, input_shape=(16,), num_outputs=50, vocab_size=50, classify=False)
    tokens = torch.randint(50, (2, 16))
    logits = model(tokens)
    assert logits.shape == (2, 16, 50)
    changed = tokens.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 50
    # Changing the last token must not change any earlier position's prediction.
    torch.testing.assert_close(model(changed)[:, :-1], logits[:, :-1])


@pytest.mark.parametrize(
    ("family", "kwargs", "x"),
    [
        ("mlp", DIGITS, torch.randn(3, 1, 8, 8)),
        ("cnn", MNIST, torch.randn(3, 1, 28, 28)),
        ("transformer", TOKENS, torch.randint(17, (3, 64))),
    ],
)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_stages_run_in_order_are_the_model(family: str, kwargs: dict[str, object], x: torch.Tensor, n: int) -> None:
    model = build_model(family, 3, 16 if family != "transformer" else 32, **kwargs)  # type: ignore[arg-type]
    stages = model.stages(n)
    assert len(stages) == n
    assert sum(len(list(stage.children())) for stage in stages) == len(model.blocks)
    out = x
    for stage in stages:
        out = stage(out)
    torch.testing.assert_close(out, model(x))


def test_stages_balance_parameters() -> None:
    model = build_model("mlp", 4, 64, **DIGITS)  # type: ignore[arg-type]
    sizes = [count_parameters(stage) for stage in model.stages(2)]
    assert max(sizes) < 0.8 * sum(sizes)


def test_more_stages_than_blocks_is_an_error() -> None:
    model = build_model("mlp", 1, 8, **DIGITS)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot split 2 blocks into 3 stages"):
        model.stages(3)
