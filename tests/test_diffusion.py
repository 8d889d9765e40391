"""The diffusion math: schedule, prediction targets, DDIM's determinism and callback, EMA, normaliser (the
samplers against an oracle: tests/test_samplers.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddim.config import ModelConfig
from ddim.diffusion import (
    Schedule,
    add_noise,
    diffusion_schedule,
    prediction_target,
    split_prediction,
)
from ddim.ema import update_ema
from ddim.network import UNet
from ddim.normalizer import Normalizer
from ddim.samplers import ddim, initial_noise, time_pairs


def test_schedule_rates_are_on_the_unit_circle_with_the_keras_examples_endpoints() -> None:
    times = torch.linspace(0, 1, 101, dtype=torch.float64)
    noise_rates, signal_rates = diffusion_schedule(times, 0.02, 0.95)
    torch.testing.assert_close(signal_rates**2 + noise_rates**2, torch.ones_like(times))
    assert signal_rates[0].item() == pytest.approx(0.95)
    assert signal_rates[-1].item() == pytest.approx(0.02)
    assert torch.all(signal_rates[1:] < signal_rates[:-1])  # signal decreases with time
    # the angle is linear in time
    angles = torch.atan2(noise_rates, signal_rates)
    torch.testing.assert_close(angles, math.acos(0.95) + times * (math.acos(0.02) - math.acos(0.95)))


@pytest.mark.parametrize("target", ["noise", "velocity", "signal"])
def test_each_prediction_target_round_trips(target: str) -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(4, 3, 8, 8, generator=generator, dtype=torch.float64)
    noises = torch.randn(4, 3, 8, 8, generator=generator, dtype=torch.float64)
    noise_rates, signal_rates = Schedule().rates(torch.rand(4, 1, 1, 1, generator=generator, dtype=torch.float64))
    noisy = add_noise(images, noises, noise_rates, signal_rates)
    output = prediction_target(target, images, noises, noise_rates, signal_rates)
    pred_noises, pred_images = split_prediction(target, output, noisy, noise_rates, signal_rates)
    torch.testing.assert_close(pred_noises, noises)
    torch.testing.assert_close(pred_images, images)


def test_ddim_is_deterministic_and_calls_back_every_step() -> None:
    network = UNet(ModelConfig(image_size=8, widths=(4, 8), block_depth=1)).eval()
    torch.nn.init.normal_(network.output_conv.weight, std=0.1)
    from ddim.diffusion import make_denoiser

    latents = torch.randn(2, 3, 8, 8)
    seen = []
    first = ddim(make_denoiser(network), latents, steps=4, schedule=Schedule(), callback=lambda i, x, x0: seen.append(i))
    second = ddim(make_denoiser(network), latents, steps=4, schedule=Schedule())
    assert seen == [0, 1, 2, 3]
    assert torch.equal(first, second)


def test_time_pairs_walk_equal_steps_from_one_to_zero() -> None:
    pairs = time_pairs(4)
    assert pairs == [(1.0, 0.75), (0.75, 0.5), (0.5, 0.25), (0.25, 0.0)]
    with pytest.raises(ValueError):
        time_pairs(0)


def test_per_image_noise_does_not_depend_on_the_batch() -> None:
    whole, _ = initial_noise(7, range(10), (3, 4, 4))
    part, _ = initial_noise(7, [3, 4, 5], (3, 4, 4))
    other_seed, _ = initial_noise(8, [3], (3, 4, 4))
    torch.testing.assert_close(whole[3:6], part, rtol=0, atol=0)
    assert not torch.equal(other_seed[0], whole[3])


def test_ema_follows_the_keras_examples_rule_over_weights_and_batchnorm_statistics() -> None:
    config = ModelConfig(image_size=8, widths=(4, 8), block_depth=1)
    network, ema_network = UNet(config), UNet(config)
    network.train()(torch.randn(4, 3, 8, 8), torch.rand(4, 1, 1, 1))  # moves BatchNorm statistics
    with torch.no_grad():
        for p in network.parameters():
            p.add_(torch.randn_like(p))
    before = {k: v.clone() for k, v in ema_network.state_dict().items()}
    update_ema(ema_network, network, 0.999)
    after, current = ema_network.state_dict(), network.state_dict()
    checked = 0
    for name, value in after.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.999 * before[name] + 0.001 * current[name])
            checked += "running_" in name
        else:
            assert torch.equal(value, current[name])
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in network.modules())
    assert norms == 3 and checked == 2 * norms  # running mean and variance of every BatchNorm were averaged


def test_normaliser_adapts_per_channel_and_denormalise_inverts_normalise() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 8, 8, 3), dtype=np.uint8)
    images[..., 1] //= 2  # give the channels different statistics
    normalizer = Normalizer().adapt(images)
    values = images.astype(np.float64) / 255.0
    np.testing.assert_allclose(normalizer.mean.numpy(), values.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(normalizer.variance.numpy(), values.var(axis=(0, 1, 2)), rtol=1e-6)
    batch = torch.from_numpy(values).permute(0, 3, 1, 2).float()
    normalized = normalizer.normalize(batch)
    assert normalized.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert (normalized.std(dim=(0, 2, 3), unbiased=False) - 1).abs().max() < 1e-4
    torch.testing.assert_close(normalizer.denormalize(normalized), batch, rtol=0, atol=1e-6)
    assert normalizer.denormalize(torch.full((1, 3, 2, 2), 100.0)).max() == 1.0  # clipped like the seed


def test_ema_warmup_follows_its_formula_and_is_off_by_default() -> None:
    from ddim.config import TrainConfig
    from ddim.ema import ema_decay

    assert TrainConfig().ema_warmup is False
    assert ema_decay(0.999, 1, warmup=False) == 0.999
    assert ema_decay(0.999, 1, warmup=True) == pytest.approx(2 / 11)
    assert ema_decay(0.999, 100, warmup=True) == pytest.approx(101 / 110)
    assert ema_decay(0.999, 100_000, warmup=True) == 0.999  # capped at the configured decay
    steps = [ema_decay(0.999, s, warmup=True) for s in range(1, 3000)]
    assert all(a <= b for a, b in zip(steps, steps[1:]))


def test_ema_warmup_makes_a_short_runs_ema_close_to_the_network() -> None:
    import copy

    from ddim.ema import ema_decay

    config = ModelConfig(image_size=8, widths=(4, 8), block_depth=1)
    distances = {}
    for warmup in (False, True):
        torch.manual_seed(0)
        network = UNet(config)
        ema_network = copy.deepcopy(network)
        for step in range(1, 201):
            with torch.no_grad():
                for p in network.parameters():
                    p.add_(0.01)  # a steadily moving network
            update_ema(ema_network, network, ema_decay(0.999, step, warmup))
        distances[warmup] = sum((a - b).abs().sum().item() for a, b in zip(network.parameters(), ema_network.parameters()))
    assert distances[True] < 0.2 * distances[False]
