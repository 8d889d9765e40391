"""Samplers: pure functions of ``(denoiser, initial_noise, ...)`` that keep no state between calls.

Every sampler has the signature ``sampler(denoiser, initial_noise, *, steps, schedule, noise=None,
callback=None) -> images`` and walks explicit ``(t, t_next)`` pairs on the seed's continuous time
grid from t = 1 down to t = 0. Randomness comes from per-image generators (:class:`ImageNoise`), so
image k of seed s is the same whatever the batch it is drawn in.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .diffusion import Denoiser, Schedule
from .seeding import generator

#: ``callback(step_index, noisy_images, pred_images)``, called after every network evaluation.
Callback = Callable[[int, torch.Tensor, torch.Tensor], None]


class ImageNoise:
    """One CPU generator per image: ``draw()`` returns the next (B, C, H, W) standard normal draw.

    Drawing on the CPU and moving to the device makes samples identical across devices and batch sizes.
    """

    def __init__(self, seed: int, indices: Sequence[int], shape: tuple[int, int, int],
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.generators = [generator(seed, int(i)) for i in indices]
        self.shape, self.device, self.dtype = tuple(shape), torch.device(device), dtype

    def draw(self) -> torch.Tensor:
        """The next noise tensor, one image from each generator."""
        noise = torch.stack([torch.randn(self.shape, generator=g) for g in self.generators])
        return noise.to(device=self.device, dtype=self.dtype)


def initial_noise(seed: int, indices: Sequence[int], shape: tuple[int, int, int],
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, ImageNoise]:
    """Starting latents for images ``indices`` of ``seed``, and the per-image source for later draws."""
    source = ImageNoise(seed, indices, shape, device)
    return source.draw(), source


def time_pairs(steps: int) -> list[tuple[float, float]]:
    """``steps`` equal intervals ``(t, t_next)`` from t = 1 down to t = 0 (computed in float64)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    grid = np.linspace(1.0, 0.0, steps + 1, dtype=np.float64)
    return [(float(grid[i]), float(grid[i + 1])) for i in range(steps)]


def _rates(schedule: Schedule, t: float, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    times = torch.full((like.shape[0], 1, 1, 1), t, dtype=torch.float64, device=like.device)
    noise_rates, signal_rates = schedule.rates(times)
    return noise_rates.to(like.dtype), signal_rates.to(like.dtype)


@torch.no_grad()
def ddim(denoiser: Denoiser, initial_noise: torch.Tensor, *, steps: int, schedule: Schedule,
         noise: ImageNoise | None = None, callback: Callback | None = None) -> torch.Tensor:
    """Deterministic DDIM (Song et al. 2021, eq. 12 with sigma = 0), the seed's sampler.

    Each step predicts noise and image at t, then re-noises the predicted image to t_next with the
    predicted noise: x_{t_next} = s(t_next) * x0_hat + n(t_next) * eps_hat. Returns the last x0_hat.
    """
    del noise  # deterministic: no fresh noise is drawn
    noisy_images = initial_noise
    pred_images = initial_noise
    for step, (t, t_next) in enumerate(time_pairs(steps)):
        noise_rates, signal_rates = _rates(schedule, t, noisy_images)
        pred_noises, pred_images = denoiser(noisy_images, noise_rates, signal_rates)
        if callback is not None:
            callback(step, noisy_images, pred_images)
        next_noise_rates, next_signal_rates = _rates(schedule, t_next, noisy_images)
        noisy_images = next_signal_rates * pred_images + next_noise_rates * pred_noises
    return pred_images


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {"ddim": ddim}
