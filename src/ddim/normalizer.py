"""Per-channel standardisation of images, adapted on the train set (Keras ``Normalization``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): the floor on the standard deviation


class Normalizer(nn.Module):
    """``normalize(x) = (x - mean) / std`` per channel; ``denormalize`` inverts it and clips to [0, 1]."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("variance", torch.ones(channels))

    @torch.no_grad()
    def adapt(self, images: np.ndarray | torch.Tensor) -> "Normalizer":
        """Set mean and variance from uint8 images (N, H, W, C) in [0, 255], as [0, 1] values.

        Accumulates in float64 one channel at a time, so a whole data set needs no float copy.
        """
        array = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        if array.ndim != 4 or array.shape[-1] != self.mean.numel():
            raise ValueError(f"adapt expects images of shape (N, H, W, {self.mean.numel()}), got {array.shape}")
        if array.shape[0] == 0:
            raise ValueError("adapt needs at least one image")
        means, variances = [], []
        for channel in range(array.shape[-1]):
            values = array[..., channel].astype(np.float64) / 255.0
            means.append(values.mean())
            variances.append(values.var())
        self.mean.copy_(torch.tensor(means, dtype=self.mean.dtype))
        self.variance.copy_(torch.tensor(variances, dtype=self.variance.dtype))
        return self

    def _stats(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1)  # channels-first images (B, C, H, W)
        mean = self.mean.to(images.dtype).view(shape)
        std = self.variance.to(images.dtype).sqrt().view(shape)
        return mean, std

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images (B, C, H, W) -> standardised images."""
        mean, std = self._stats(images)
        return (images - mean) / std.clamp_min(KERAS_EPSILON)

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Standardised images -> [0, 1] images: mean + x * std, clipped (the Keras example's ``denormalize``)."""
        mean, std = self._stats(images)
        return (mean + images * std).clamp(0.0, 1.0)
