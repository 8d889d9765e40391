"""The diffusion math as pure functions: schedule, forward noising, prediction targets, losses.

Notation (DDIM, Song et al. 2021; the Keras example's names in brackets): a clean image x0 [images], Gaussian
noise eps [noises], signal rate sqrt(alpha_t) [signal_rates] and noise rate sqrt(1 - alpha_t)
[noise_rates], with signal_rate**2 + noise_rate**2 = 1. The noisy image is (DDIM eq. 4)

    x_t = signal_rate * x0 + noise_rate * eps.

Time is continuous, t in [0, 1]; the schedule interpolates the *angle* linearly (the cosine schedule
of Nichol & Dhariwal 2021, truncated so that the signal rate runs from ``max_signal_rate`` at t = 0
to ``min_signal_rate`` at t = 1).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F

#: ``denoiser(noisy_images, noise_rates, signal_rates) -> (pred_noises, pred_images)``; rates are
#: broadcastable to the images, shape (B, 1, 1, 1).
Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def diffusion_schedule(
    diffusion_times: torch.Tensor, min_signal_rate: float = 0.02, max_signal_rate: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise and signal rates at continuous times t in [0, 1]; returns ``(noise_rates, signal_rates)``.

    angle(t) = acos(max_signal_rate) + t * (acos(min_signal_rate) - acos(max_signal_rate));
    signal_rate = cos(angle), noise_rate = sin(angle).
    """
    start_angle = math.acos(max_signal_rate)
    end_angle = math.acos(min_signal_rate)
    diffusion_angles = start_angle + diffusion_times * (end_angle - start_angle)
    return torch.sin(diffusion_angles), torch.cos(diffusion_angles)


@dataclass(frozen=True)
class Schedule:
    """The Keras example's truncated cosine schedule; ``rates(t)`` returns ``(noise_rates, signal_rates)``."""

    min_signal_rate: float = 0.02
    max_signal_rate: float = 0.95

    def rates(self, diffusion_times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise and signal rates at times t in [0, 1]."""
        return diffusion_schedule(diffusion_times, self.min_signal_rate, self.max_signal_rate)


def add_noise(
    images: torch.Tensor, noises: torch.Tensor, noise_rates: torch.Tensor, signal_rates: torch.Tensor
) -> torch.Tensor:
    """Forward process q(x_t | x0) (DDIM eq. 4): x_t = signal_rate * x0 + noise_rate * eps."""
    return signal_rates * images + noise_rates * noises


def prediction_target(
    target: str, images: torch.Tensor, noises: torch.Tensor, noise_rates: torch.Tensor,
    signal_rates: torch.Tensor,
) -> torch.Tensor:
    """What a network trained for ``target`` should output for these images and noises.

    noise: eps; signal: x0; velocity: v = signal_rate * eps - noise_rate * x0 (Salimans & Ho 2022).
    """
    if target == "noise":
        return noises
    if target == "signal":
        return images
    if target == "velocity":
        return signal_rates * noises - noise_rates * images
    raise ValueError(f"unknown prediction target {target!r}; expected noise, velocity or signal")


def split_prediction(
    target: str, network_output: torch.Tensor, noisy_images: torch.Tensor, noise_rates: torch.Tensor,
    signal_rates: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a network output for ``target`` into ``(pred_noises, pred_images)`` at x_t.

    Uses signal_rate**2 + noise_rate**2 = 1: from v, x0 = s * x_t - n * v and eps = n * x_t + s * v.
    """
    if target == "noise":
        pred_noises = network_output
        pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates  # DDIM eq. 9
    elif target == "signal":
        pred_images = network_output
        pred_noises = (noisy_images - signal_rates * pred_images) / noise_rates
    elif target == "velocity":
        pred_images = signal_rates * noisy_images - noise_rates * network_output
        pred_noises = noise_rates * noisy_images + signal_rates * network_output
    else:
        raise ValueError(f"unknown prediction target {target!r}; expected noise, velocity or signal")
    return pred_noises, pred_images


def regression_loss(kind: str, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (``mae``, the Keras example's) or mean squared error (``mse``)."""
    if kind == "mae":
        return F.l1_loss(prediction, target)
    if kind == "mse":
        return F.mse_loss(prediction, target)
    raise ValueError(f"unknown loss {kind!r}; expected mae or mse")


def guided(conditional: torch.Tensor, unconditional: torch.Tensor, weight: float) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022): ``unconditional + weight * (conditional - unconditional)``;
    weight 1 is the conditional prediction, 0 the unconditional one."""
    return unconditional + weight * (conditional - unconditional)


def network_passes(guidance: float) -> int:
    """Network evaluations per image and step of a conditional sampler at ``guidance``: 2 for a weight other than 0
    and 1 (the conditional and the unconditional prediction, combined by :func:`guided`), else 1."""
    return 1 if guidance in (0.0, 1.0) else 2


def make_denoiser(
    network: Callable[..., torch.Tensor], target: str = "noise",
    context: Callable[[], ContextManager] = contextlib.nullcontext,
    memory_format: torch.memory_format = torch.contiguous_format,
    labels: torch.Tensor | None = None, guidance: float = 1.0,
) -> Denoiser:
    """Wrap ``network(noisy_images, noise_variances[, labels])`` as a :data:`Denoiser` for ``target`` outputs.

    The network runs inside ``context()`` (e.g. bf16 autocast) on ``memory_format`` inputs; its output
    is returned to the sampler as fp32, so the sampler's arithmetic is always fp32. ``labels`` (B,) asks a
    conditional network for those classes; with ``guidance`` other than 0 or 1 the conditional and unconditional
    predictions come from one forward pass over the doubled batch and are combined by :func:`guided` (linear,
    so combining network outputs is combining noises and images, whatever the prediction target).
    """
    if labels is not None and guidance == 0.0:
        labels = torch.full_like(labels, -1)  # unconditional: the "no class" label

    def run(noisy_images: torch.Tensor, noise_variances: torch.Tensor) -> torch.Tensor:
        with context():
            inputs = noisy_images.contiguous(memory_format=memory_format)
            if labels is None:
                return network(inputs, noise_variances)
            if network_passes(guidance) == 1:
                return network(inputs, noise_variances, labels)
            both = network(torch.cat([inputs, inputs]), torch.cat([noise_variances, noise_variances]),
                           torch.cat([labels, torch.full_like(labels, -1)]))
        conditional, unconditional = both.float().chunk(2)
        return guided(conditional, unconditional, guidance)

    def denoise(
        noisy_images: torch.Tensor, noise_rates: torch.Tensor, signal_rates: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        network_output = run(noisy_images, noise_rates**2).to(noisy_images.dtype)
        return split_prediction(target, network_output, noisy_images, noise_rates, signal_rates)

    return denoise
