"""Spherical interpolation between starting noises: DDIM's deterministic map makes the images move smoothly."""

from __future__ import annotations

import torch

from .model import DiffusionModel
from .samplers import initial_noise
from .runtime import Runtime


def slerp(start: torch.Tensor, end: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """Spherical linear interpolation (Shoemake 1985) between two tensors, one result per fraction.

    Gaussian noise lives near a sphere, so slerp keeps every frame's norm typical of noise where a
    straight line would pass through low-norm, out-of-distribution latents. (F,) fractions -> (F, *shape).
    """
    a, b = start.flatten().double(), end.flatten().double()
    cosine = torch.dot(a, b) / (a.norm() * b.norm())
    angle = torch.arccos(cosine.clamp(-1.0, 1.0))
    fractions = fractions.double().view(-1, 1)
    if angle.abs() < 1e-6:  # (nearly) parallel: slerp degenerates to a straight line
        mixed = (1 - fractions) * a + fractions * b
    else:
        mixed = (torch.sin((1 - fractions) * angle) * a + torch.sin(fractions * angle) * b) / torch.sin(angle)
    return mixed.to(start.dtype).view(-1, *start.shape)


@torch.no_grad()
def interpolate(model: DiffusionModel, *, seed: int, start_index: int, end_index: int, frames: int, steps: int,
                device: torch.device | str = "cpu", runtime: Runtime | None = None, label: int | None = None,
                guidance: float = 1.0) -> torch.Tensor:
    """[0, 1] images (frames, 3, S, S) from noises slerped between image ``start_index`` and ``end_index`` of ``seed``
    (of class ``label`` with ``guidance``, for a conditional model)."""
    size = model.config.image_size
    latents, _ = initial_noise(seed, [start_index, end_index], (3, size, size), device)
    path = slerp(latents[0], latents[1], torch.linspace(0, 1, frames))
    labels = None if label is None else [label] * frames
    return model.generate(path.to(device), steps=steps, sampler="ddim", runtime=runtime, labels=labels,
                          guidance=guidance).float().cpu()
