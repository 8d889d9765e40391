"""Samplers: pure functions of ``(denoiser, initial_noise, ...)`` that keep no state between calls.

Every sampler has the signature ``sampler(denoiser, initial_noise, *, steps, schedule, noise=None,
callback=None) -> images`` and walks explicit ``(t, t_next)`` pairs on the Keras example's continuous time
grid from t = 1 down to t = 0. Randomness comes from per-image generators (:class:`ImageNoise`), so
image k of seed s is the same whatever the batch it is drawn in.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .diffusion import Denoiser, Schedule
from .names import SamplerOptionError, sampler_keywords  # noqa: F401  (re-exported: the samplers' options)
from .seeding import generator

#: ``callback(step_index, noisy_images, pred_images)``, called once per step after its prediction.
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]


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


def _require_noise(noise: ImageNoise | None, sampler: str) -> ImageNoise:
    if noise is None:
        raise ValueError(f"the {sampler} sampler is stochastic: pass noise=ImageNoise(...) as its random source")
    return noise


Rates = tuple[torch.Tensor, torch.Tensor]  # (noise_rates, signal_rates), each (B, 1, 1, 1)
#: ``update(noisy_images, pred_noises, pred_images, rates, next_rates) -> next noisy images``
Update = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Rates, Rates], torch.Tensor]


def _walk(denoiser: Denoiser, initial_noise: torch.Tensor, steps: int, schedule: Schedule,
          callback: StepCallback | None, update: Update) -> torch.Tensor:
    """The loop every sampler shares: at each t, predict (eps_hat, x0_hat), then ``update`` to t_next.

    The last step only predicts: its x0_hat is the result (the Keras example's DDIM discards x at t = 0).
    """
    noisy_images = pred_images = initial_noise
    pairs = time_pairs(steps)
    for step, (t, t_next) in enumerate(pairs):
        rates = _rates(schedule, t, noisy_images)
        pred_noises, pred_images = denoiser(noisy_images, *rates)
        if callback is not None:
            callback(step, noisy_images, pred_images)
        if step < len(pairs) - 1:
            noisy_images = update(noisy_images, pred_noises, pred_images, rates, _rates(schedule, t_next, noisy_images))
    return pred_images


@torch.no_grad()
def ddim(denoiser: Denoiser, initial_noise: torch.Tensor, *, steps: int, schedule: Schedule, eta: float = 0.0,
         noise: ImageNoise | None = None, callback: StepCallback | None = None) -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12); ``eta = 0`` is the Keras example's deterministic sampler, 1 is DDPM-like.

    Each step predicts x0_hat and eps_hat at t and moves to t_next:
    x_next = s' x0_hat + sqrt(n'^2 - sigma^2) eps_hat + sigma z, with (eq. 16)
    sigma = eta * (n' / n) * sqrt(1 - s^2 / s'^2) and z fresh noise. Returns the last x0_hat.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    source = _require_noise(noise, "stochastic DDIM (eta > 0)") if eta > 0 else None

    def update(noisy_images, pred_noises, pred_images, rates, next_rates):
        (noise_rates, signal_rates), (next_noise_rates, next_signal_rates) = rates, next_rates
        if source is None:
            return next_signal_rates * pred_images + next_noise_rates * pred_noises
        sigmas = eta * next_noise_rates / noise_rates * (1 - signal_rates**2 / next_signal_rates**2).clamp_min(0).sqrt()
        sigmas = torch.minimum(sigmas, next_noise_rates)  # eta > 1 cannot take more than all the noise
        return (next_signal_rates * pred_images + (next_noise_rates**2 - sigmas**2).clamp_min(0).sqrt() * pred_noises
                + sigmas * source.draw())

    return _walk(denoiser, initial_noise, steps, schedule, callback, update)


@torch.no_grad()
def ddpm(denoiser: Denoiser, initial_noise: torch.Tensor, *, steps: int, schedule: Schedule,
         noise: ImageNoise | None = None, callback: StepCallback | None = None) -> torch.Tensor:
    """DDPM ancestral sampling (Ho et al. 2020): draw x_next from the posterior q(x_next | x_t, x0_hat).

    With a = s^2 / s'^2 the step's signal retention and beta = 1 - a (eqs. 6-7):
    mean = s' beta / n^2 * x0_hat + (s / s') n'^2 / n^2 * x_t, variance = beta n'^2 / n^2.
    Returns the last x0_hat.
    """
    source = _require_noise(noise, "DDPM")

    def update(noisy_images, pred_noises, pred_images, rates, next_rates):
        (noise_rates, signal_rates), (next_noise_rates, next_signal_rates) = rates, next_rates
        betas = 1 - signal_rates**2 / next_signal_rates**2
        means = (next_signal_rates * betas / noise_rates**2 * pred_images
                 + signal_rates / next_signal_rates * next_noise_rates**2 / noise_rates**2 * noisy_images)
        deviations = (betas * next_noise_rates**2 / noise_rates**2).clamp_min(0).sqrt()
        return means + deviations * source.draw()

    return _walk(denoiser, initial_noise, steps, schedule, callback, update)


def _log_snr_halves(rates: Rates) -> torch.Tensor:
    """lambda = log(s / n), half the log signal-to-noise ratio (DPM-Solver's time variable)."""
    noise_rates, signal_rates = rates
    return torch.log(signal_rates) - torch.log(noise_rates)


@torch.no_grad()
def dpmpp_2m(denoiser: Denoiser, initial_noise: torch.Tensor, *, steps: int, schedule: Schedule,
             noise: ImageNoise | None = None, callback: StepCallback | None = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): multistep second order in the data prediction.

    With h = lambda' - lambda: x_next = (n' / n) x_t - s' (exp(-h) - 1) D, where D = x0_hat on the
    first step and D = (1 + 1/(2r)) x0_hat - 1/(2r) x0_hat_prev with r = h_prev / h afterwards.
    One network evaluation per step; returns the last x0_hat.
    """
    del noise  # deterministic
    previous: dict[str, torch.Tensor] = {}  # the last step's x0_hat and h, within this call only

    def update(noisy_images, pred_noises, pred_images, rates, next_rates):
        h = _log_snr_halves(next_rates) - _log_snr_halves(rates)
        denoised = pred_images
        if previous:
            r = previous["h"] / h
            denoised = (1 + 1 / (2 * r)) * pred_images - 1 / (2 * r) * previous["images"]
        previous.update(images=pred_images, h=h)
        return next_rates[0] / rates[0] * noisy_images - next_rates[1] * torch.expm1(-h) * denoised

    return _walk(denoiser, initial_noise, steps, schedule, callback, update)


@torch.no_grad()
def heun(denoiser: Denoiser, initial_noise: torch.Tensor, *, steps: int, schedule: Schedule,
         noise: ImageNoise | None = None, callback: StepCallback | None = None) -> torch.Tensor:
    """Heun's second-order method on the probability-flow ODE (Karras et al. 2022, Algorithm 1).

    In the scaled variable y = x / s with sigma = n / s, dy/dsigma = eps_hat: an Euler step to
    sigma', then the average of the slopes at both ends. 2 * steps - 1 network evaluations (the last
    step only predicts x0_hat); returns the last x0_hat.
    """
    del noise  # deterministic

    def update(noisy_images, pred_noises, pred_images, rates, next_rates):
        (noise_rates, signal_rates), (next_noise_rates, next_signal_rates) = rates, next_rates
        sigma_step = next_noise_rates / next_signal_rates - noise_rates / signal_rates
        scaled = noisy_images / signal_rates
        predicted = (scaled + sigma_step * pred_noises) * next_signal_rates  # Euler
        next_pred_noises, _ = denoiser(predicted, next_noise_rates, next_signal_rates)
        return (scaled + sigma_step * (pred_noises + next_pred_noises) / 2) * next_signal_rates

    return _walk(denoiser, initial_noise, steps, schedule, callback, update)


@torch.no_grad()
def ddim_invert(denoiser: Denoiser, images: torch.Tensor, *, steps: int, schedule: Schedule,
                callback: StepCallback | None = None) -> torch.Tensor:
    """Deterministic DDIM inversion: clean (normalised) images -> the latents that :func:`ddim` maps back.

    Walks the Keras example's grid upwards: the image is placed at the last sampling time t = 1/steps with the
    network's own noise estimate there, then each DDIM step is reversed with the prediction at the
    current point, x_up = s_up x0_hat(x) + n_up eps_hat(x) (Song et al. 2021, sec. 4.3). ``steps``
    network evaluations. With a perfect predictor, ``ddim`` of the result returns the images exactly.
    """
    times = [t for t, _ in time_pairs(steps)][::-1]  # 1/steps, 2/steps, ..., 1
    noise_rates, signal_rates = _rates(schedule, times[0], images)
    pred_noises, _ = denoiser(signal_rates * images, noise_rates, signal_rates)
    noisy_images = signal_rates * images + noise_rates * pred_noises
    if callback is not None:
        callback(0, noisy_images, images)
    for step, (t, t_up) in enumerate(zip(times[:-1], times[1:]), start=1):
        noise_rates, signal_rates = _rates(schedule, t, noisy_images)
        pred_noises, pred_images = denoiser(noisy_images, noise_rates, signal_rates)
        if callback is not None:
            callback(step, noisy_images, pred_images)
        up_noise_rates, up_signal_rates = _rates(schedule, t_up, noisy_images)
        noisy_images = up_signal_rates * pred_images + up_noise_rates * pred_noises
    return noisy_images


def network_evaluations(sampler: str, steps: int) -> int:
    """How many times ``sampler`` calls the network for ``steps`` steps."""
    return 2 * steps - 1 if sampler == "heun" else steps


def steps_for_evaluations(sampler: str, evaluations: int) -> int:
    """The most steps whose network calls fit in ``evaluations`` (exactly, except heun at an even count: one less)."""
    if evaluations < 1:
        raise ValueError(f"evaluations must be at least 1, got {evaluations}")
    if sampler == "heun":
        return (evaluations + 1) // 2
    return evaluations


#: name -> sampler; all share the signature ``(denoiser, initial_noise, *, steps, schedule, noise, callback)``.
SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {"ddim": ddim, "ddpm": ddpm, "dpmpp-2m": dpmpp_2m, "heun": heun}


