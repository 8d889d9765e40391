"""The train set resident on the device as uint8, shuffled and batched there.

An epoch is the Keras example's: the train set repeated ``repeats`` times, shuffled, cut into batches of
``batch_size`` with the last partial batch dropped (6,551 x 5 // 64 = 511 steps). The order of epoch
e depends only on (seed, e), so a resumed run sees exactly the batches it would have seen. Under
data parallelism each rank takes its own slice of every global batch. With ``flip``, each image of an epoch is
flipped left-right with probability 1/2, drawn from (seed, epoch) like the order, so a resume sees the same flips.
"""

from __future__ import annotations

import numpy as np
import torch

from ..seeding import AUGMENTATION, DATA_ORDER, generator


class DeviceImages:
    """uint8 images (and their class labels, if any) held on ``device``; ``images(indices)`` gives [0, 1] float
    batches, ``labels(indices)`` their labels (None without labels)."""

    def __init__(self, images: np.ndarray, device: torch.device | str = "cpu", labels: np.ndarray | None = None) -> None:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 images (N, H, W, 3), got {images.dtype} {images.shape}")
        if labels is not None and labels.shape != (images.shape[0],):
            raise ValueError(f"expected one label per image ({images.shape[0]}), got shape {labels.shape}")
        self.count = images.shape[0]
        self.device = torch.device(device)
        # (N, H, W, 3) -> (N, 3, H, W), kept as uint8: a quarter of float32's memory
        self.data = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(self.device)
        self.label_data = None if labels is None else torch.as_tensor(labels, dtype=torch.long).to(self.device)

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        """[0, 1] float32 images (B, 3, H, W) for a batch of indices."""
        return self.data[indices].float().div_(255.0)

    def labels(self, indices: torch.Tensor) -> torch.Tensor | None:
        """The class labels (B,) of a batch of indices, or None for images without labels."""
        return None if self.label_data is None else self.label_data[indices]


class TrainBatches(DeviceImages):
    """Epochs of shuffled index batches over the train images held on ``device``."""

    def __init__(self, images: np.ndarray, *, batch_size: int, repeats: int, seed: int,
                 device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1,
                 labels: np.ndarray | None = None, flip: bool = False) -> None:
        super().__init__(images, device, labels)
        self.flip = flip
        if batch_size % world_size != 0:
            raise ValueError(f"batch size {batch_size} is not divisible by the {world_size} processes")
        self.batch_size, self.repeats, self.seed = batch_size, repeats, seed
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = (self.count * repeats) // batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"{self.count} images x {repeats} repeats do not fill one batch of {batch_size}")

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        """This rank's image indices for every step of ``epoch``: (steps_per_epoch, batch_size / world_size)."""
        order = torch.randperm(self.count * self.repeats, generator=generator(self.seed, DATA_ORDER, epoch))
        order = (order % self.count)[: self.steps_per_epoch * self.batch_size]
        order = order.view(self.steps_per_epoch, self.batch_size)  # (steps, global batch)
        return self._local(order)

    def epoch_flips(self, epoch: int) -> torch.Tensor | None:
        """This rank's flips for every step of ``epoch`` (bool, shaped like :meth:`epoch_indices`), or None
        without ``flip``."""
        if not self.flip:
            return None
        draws = torch.rand(self.steps_per_epoch, self.batch_size, generator=generator(self.seed, AUGMENTATION, epoch))
        return self._local(draws < 0.5)

    def _local(self, per_step: torch.Tensor) -> torch.Tensor:
        """This rank's columns of a (steps, global batch) tensor, on the device."""
        local = self.batch_size // self.world_size
        return per_step[:, self.rank * local:(self.rank + 1) * local].to(self.device)

    def train_images(self, indices: torch.Tensor, flips: torch.Tensor | None) -> torch.Tensor:
        """[0, 1] images (B, 3, H, W) of a step's indices, those marked in ``flips`` mirrored left-right."""
        images = self.images(indices)
        if flips is None:
            return images
        return torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
