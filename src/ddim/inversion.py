"""DDIM inversion of real images to noise and back, and its reconstruction error against steps."""

from __future__ import annotations

import math

import torch

from .model import DiffusionModel
from .samplers import ddim, ddim_invert
from .runtime import Runtime


@torch.no_grad()
def invert_and_reconstruct(model: DiffusionModel, images: torch.Tensor, steps: int,
                           runtime: Runtime | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """[0, 1] images -> (latents, [0, 1] reconstructions) with ``steps`` DDIM steps each way (EMA network)."""
    denoiser = model.denoiser(ema=True, runtime=runtime)
    normalized = model.normalizer.normalize(images)
    latents = ddim_invert(denoiser, normalized, steps=steps, schedule=model.schedule)
    reconstructions = ddim(denoiser, latents, steps=steps, schedule=model.schedule)
    return latents, model.normalizer.denormalize(reconstructions)


def reconstruction_error(images: torch.Tensor, reconstructions: torch.Tensor, latents: torch.Tensor,
                         steps: int) -> dict[str, float]:
    """Mean absolute and RMS error in [0, 1] pixels, PSNR, and the latents' mean and standard deviation."""
    difference = reconstructions.float() - images.float()
    mse = difference.square().mean().item()
    return {"steps": steps, "mae": difference.abs().mean().item(), "rmse": mse**0.5,
            "psnr_db": float("inf") if mse == 0 else -10.0 * math.log10(mse),
            "latent_mean": latents.mean().item(), "latent_std": latents.std().item()}
