"""DDIM inversion of real images to noise and back, and its reconstruction error against steps."""

from __future__ import annotations

import torch

from .model import DiffusionModel
from .samplers import ddim, ddim_invert
from .speed import Speed


@torch.no_grad()
def invert_and_reconstruct(model: DiffusionModel, images: torch.Tensor, steps: int,
                           speed: Speed | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """[0, 1] images -> (latents, [0, 1] reconstructions) with ``steps`` DDIM steps each way (EMA network)."""
    denoiser = model.denoiser(ema=True, speed=speed)
    normalized = model.normalizer.normalize(images)
    latents = ddim_invert(denoiser, normalized, steps=steps, schedule=model.schedule)
    reconstructions = ddim(denoiser, latents, steps=steps, schedule=model.schedule)
    return latents, model.normalizer.denormalize(reconstructions)


def reconstruction_errors(model: DiffusionModel, images: torch.Tensor, steps_list: list[int],
                          speed: Speed | None = None) -> list[dict[str, float]]:
    """Per step count: mean absolute and RMS reconstruction error in [0, 1] pixels, PSNR, latent statistics."""
    rows = []
    for steps in steps_list:
        latents, reconstructions = invert_and_reconstruct(model, images, steps, speed)
        difference = (reconstructions.float() - images.float())
        mse = difference.square().mean().item()
        rows.append({"steps": steps, "mae": difference.abs().mean().item(), "rmse": mse**0.5,
                     "psnr_db": float("inf") if mse == 0 else -10.0 * torch.log10(torch.tensor(mse)).item(),
                     "latent_mean": latents.mean().item(), "latent_std": latents.std().item()})
    return rows
