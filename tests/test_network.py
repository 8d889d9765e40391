"""The seed's U-Net: parameter count, Keras layer semantics, embedding, shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ddim.config import ModelConfig
from ddim.network import UNet, count_parameters, sinusoidal_embedding


def test_default_network_has_the_keras_examples_parameter_count() -> None:
    assert count_parameters(UNet()) == 1_950_627


def test_batchnorm_follows_keras_semantics() -> None:
    norms = [m for m in UNet().modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 3 * 2 + 2 + 3 * 2  # one per residual block
    for norm in norms:
        assert not norm.affine  # Keras center=False, scale=False
        assert norm.momentum == pytest.approx(0.01)  # Keras momentum 0.99
        assert norm.eps == pytest.approx(1e-3)


def test_structure_follows_the_seed() -> None:
    network = UNet()
    assert network.input_conv.out_channels == 32 and network.input_conv.kernel_size == (1, 1)
    assert [len(b.blocks) for b in network.down_blocks] == [2, 2, 2]
    assert [b.blocks[0].conv2.out_channels for b in network.down_blocks] == [32, 64, 96]
    assert [b.conv2.out_channels for b in network.middle_blocks] == [128, 128]
    assert [b.blocks[0].conv2.out_channels for b in network.up_blocks] == [96, 64, 32]
    # the first down block sees the 1x1 conv's 32 channels plus the 32-channel embedding
    assert network.down_blocks[0].blocks[0].conv1.in_channels == 64
    # up blocks see the upsampled features concatenated with the matching skip
    assert network.up_blocks[0].blocks[0].conv1.in_channels == 128 + 96
    for conv in (m for m in network.modules() if isinstance(m, nn.Conv2d)):
        assert torch.all(conv.bias == 0)  # Keras zero biases


def test_output_layer_is_zero_initialised_so_the_first_prediction_is_zero() -> None:
    network = UNet(ModelConfig(widths=(8, 16), block_depth=1, image_size=16))
    output = network(torch.randn(2, 3, 16, 16), torch.rand(2, 1, 1, 1))
    assert output.shape == (2, 3, 16, 16)
    assert torch.count_nonzero(output) == 0


def test_embedding_matches_the_keras_examples_formula() -> None:
    variances = torch.tensor([0.0, 0.1, 0.5, 0.99]).view(4, 1, 1, 1)
    embedding = sinusoidal_embedding(variances, 32, 1.0, 1000.0)
    assert embedding.shape == (4, 32, 1, 1)
    frequencies = np.exp(np.linspace(math.log(1.0), math.log(1000.0), 16))
    for row, x in enumerate([0.0, 0.1, 0.5, 0.99]):
        expected = np.concatenate([np.sin(2 * np.pi * frequencies * x), np.cos(2 * np.pi * frequencies * x)])
        # float32 phases reach 2*pi*1000, where one float32 step is ~5e-4 rad (Keras computes in float32 too)
        np.testing.assert_allclose(embedding[row, :, 0, 0].numpy(), expected, atol=1e-3)


def test_narrow_configurations_build_and_keep_the_image_shape() -> None:
    config = ModelConfig(image_size=32, widths=(8, 16, 24), block_depth=1)
    network = UNet(config)
    torch.nn.init.normal_(network.output_conv.weight)
    output = network(torch.randn(3, 3, 32, 32), torch.rand(3, 1, 1, 1))
    assert output.shape == (3, 3, 32, 32) and torch.isfinite(output).all()
