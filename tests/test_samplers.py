"""Samplers (DDIM with eta, DDPM, DPM-Solver++(2M), Heun), inversion, interpolation and prediction targets, as
functions (their commands: tests/test_sampling_commands.py, tests/test_study.py)."""

from __future__ import annotations

import pytest
import torch

from ddim.config import ModelConfig
from ddim.diffusion import Schedule
from ddim.interpolation import slerp
from ddim.model import DiffusionModel, generate_images
from ddim.samplers import (
    SAMPLERS,
    ImageNoise,
    ddim,
    ddim_invert,
    ddpm,
    network_evaluations,
    steps_for_evaluations,
)

SCHEDULE = Schedule()


def oracle(clean: torch.Tensor):
    """A perfect denoiser for a single known image per slot: the true noise of x_t and the true x0."""
    def denoise(noisy_images, noise_rates, signal_rates):
        return (noisy_images - signal_rates * clean) / noise_rates, clean.expand_as(noisy_images)
    return denoise


def gaussian_denoiser(variance: float):
    """The exact posterior-mean denoiser for data ~ N(0, variance I): x0_hat = s c^2 / (s^2 c^2 + n^2) x_t."""
    def denoise(noisy_images, noise_rates, signal_rates):
        pred_images = signal_rates * variance / (signal_rates**2 * variance + noise_rates**2) * noisy_images
        return (noisy_images - signal_rates * pred_images) / noise_rates, pred_images
    return denoise


def sampler_kwargs(name: str, seed: int = 0, count: int = 4, shape=(3, 8, 8)) -> dict:
    return {"noise": ImageNoise(seed, range(count), shape)} if name in ("ddpm",) else {}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("steps", [1, 2, 5, 20, 50])
def test_every_sampler_recovers_the_clean_images_with_an_oracle(name: str, steps: int) -> None:
    generator = torch.Generator().manual_seed(steps)
    clean = torch.randn(4, 3, 8, 8, generator=generator)
    latents = torch.randn(4, 3, 8, 8, generator=generator)
    images = SAMPLERS[name](oracle(clean), latents, steps=steps, schedule=SCHEDULE, **sampler_kwargs(name))
    torch.testing.assert_close(images, clean, rtol=1e-5, atol=1e-5)


def test_stochastic_ddim_with_an_oracle_also_recovers_the_clean_images() -> None:
    clean, latents = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    images = ddim(oracle(clean), latents, steps=10, schedule=SCHEDULE, eta=0.7, noise=ImageNoise(0, range(4), (3, 8, 8)))
    torch.testing.assert_close(images, clean, rtol=1e-5, atol=1e-5)


def counting(denoiser):
    calls = []

    def wrapped(*args):
        calls.append(1)
        return denoiser(*args)
    return wrapped, calls


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_network_evaluation_counts(name: str) -> None:
    for steps in (1, 3, 10):
        denoiser, calls = counting(gaussian_denoiser(1.0))
        SAMPLERS[name](denoiser, torch.randn(4, 3, 8, 8), steps=steps, schedule=SCHEDULE, **sampler_kwargs(name))
        assert len(calls) == network_evaluations(name, steps)
        assert steps_for_evaluations(name, len(calls)) == steps
    for budget in range(1, 60):  # the most steps within any budget
        steps = steps_for_evaluations(name, budget)
        assert network_evaluations(name, steps) <= budget < network_evaluations(name, steps + 1)
    with pytest.raises(ValueError, match="at least 1"):
        steps_for_evaluations(name, 0)


def test_eta_zero_is_deterministic_and_eta_positive_is_not() -> None:
    denoiser, latents = gaussian_denoiser(1.0), torch.randn(4, 3, 8, 8)
    first = ddim(denoiser, latents, steps=8, schedule=SCHEDULE, eta=0.0)
    assert torch.equal(first, ddim(denoiser, latents, steps=8, schedule=SCHEDULE, eta=0.0))
    stochastic = [ddim(denoiser, latents, steps=8, schedule=SCHEDULE, eta=1.0, noise=ImageNoise(seed, range(4), (3, 8, 8)))
                  for seed in (1, 1, 2)]
    assert torch.equal(stochastic[0], stochastic[1])  # the same noise seed reproduces
    assert not torch.equal(stochastic[0], stochastic[2])  # another seed gives other images
    assert not torch.allclose(stochastic[0], first)
    with pytest.raises(ValueError, match="stochastic"):
        ddim(denoiser, latents, steps=8, schedule=SCHEDULE, eta=0.5)


def test_ddpm_equals_ddim_with_eta_one_given_the_same_noise() -> None:
    """DDIM's eta = 1 is DDPM's posterior (Song et al. 2021, sec. 4.1): same noise, same images."""
    denoiser, latents = gaussian_denoiser(0.8), torch.randn(4, 3, 8, 8)
    a = ddpm(denoiser, latents, steps=12, schedule=SCHEDULE, noise=ImageNoise(5, range(4), (3, 8, 8)))
    b = ddim(denoiser, latents, steps=12, schedule=SCHEDULE, eta=1.0, noise=ImageNoise(5, range(4), (3, 8, 8)))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_higher_order_samplers_converge_faster_on_exact_gaussian_data() -> None:
    """With the exact denoiser for Gaussian data the probability-flow ODE has a closed form; the
    second-order solvers' error at few evaluations is below DDIM's (first order)."""
    variance, latents = 0.5, torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    denoiser = gaussian_denoiser(variance)
    reference = ddim(denoiser, latents, steps=2000, schedule=SCHEDULE)
    errors = {name: (SAMPLERS[name](denoiser, latents, steps=steps_for_evaluations(name, 9), schedule=SCHEDULE)
                     - reference).abs().mean().item() for name in ("ddim", "dpmpp-2m", "heun")}
    assert errors["dpmpp-2m"] < errors["ddim"] and errors["heun"] < errors["ddim"]


def test_inversion_with_an_oracle_is_exact() -> None:
    clean = torch.randn(4, 3, 8, 8)
    for steps in (1, 4, 25):
        latents = ddim_invert(oracle(clean), clean, steps=steps, schedule=SCHEDULE)
        torch.testing.assert_close(ddim(oracle(clean), latents, steps=steps, schedule=SCHEDULE), clean,
                                   rtol=1e-5, atol=1e-5)


def test_inversion_error_shrinks_with_more_steps() -> None:
    denoiser = gaussian_denoiser(0.5)
    clean = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 0.5**0.5
    errors = [(ddim(denoiser, ddim_invert(denoiser, clean, steps=s, schedule=SCHEDULE), steps=s, schedule=SCHEDULE)
               - clean).abs().mean().item() for s in (2, 10, 50)]
    assert errors[0] > errors[1] > errors[2]


def test_slerp_keeps_the_endpoints_and_the_norm() -> None:
    a, b = torch.randn(3, 16, 16), torch.randn(3, 16, 16)
    path = slerp(a, b, torch.linspace(0, 1, 7))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    norms = path.flatten(1).norm(dim=1)
    assert (norms.min() / norms.max()) > 0.9  # a straight line would dip to ~0.7 halfway
    assert torch.allclose(slerp(a, a, torch.tensor([0.5]))[0], a)


@pytest.mark.parametrize("target", ["noise", "velocity", "signal"])
def test_every_prediction_target_samples_with_every_sampler_and_batch_size_does_not_matter(target: str) -> None:
    torch.manual_seed(0)
    model = DiffusionModel(ModelConfig(image_size=8, widths=(4, 8), block_depth=1, prediction=target))
    torch.nn.init.normal_(model.ema_network.output_conv.weight, std=0.05)
    for name in SAMPLERS:
        options = {"eta": 0.5} if name == "ddim" else {}
        whole = generate_images(model, seed=4, indices=range(6), steps=3, batch_size=6, sampler=name, **options)
        split = generate_images(model, seed=4, indices=range(6), steps=3, batch_size=4, sampler=name, **options)
        assert whole.shape == (6, 3, 8, 8) and torch.isfinite(whole).all(), name
        torch.testing.assert_close(whole, split, rtol=1e-5, atol=1e-6)




def test_the_command_lines_sampler_names_are_the_samplers() -> None:
    """``--sampler`` offers :data:`ddim.names.SAMPLER_NAMES` (light, for --help): exactly the samplers there are."""
    from ddim.names import SAMPLER_NAMES

    assert tuple(SAMPLERS) == SAMPLER_NAMES
