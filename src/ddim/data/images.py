"""Decoding and preprocessing: centre crop to the shorter side, antialiased resize, uint8 RGB."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def list_images(folder: Path) -> list[Path]:
    """All image files under ``folder`` (recursively, hidden entries skipped), in sorted order."""
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def center_crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The centred square of side min(width, height), as a PIL box (left, top, right, bottom)."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def load_image(path: Path, image_size: int) -> np.ndarray:
    """One image as uint8 (image_size, image_size, 3): centre crop, then bilinear antialiased resize.

    PIL's bilinear filter widens its support when it downscales, which is the triangle-filter
    antialiasing of ``tf.image.resize(..., antialias=True)`` that the seed uses.
    """
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            square = image.crop(center_crop_box(*image.size))  # as tf.image.crop_to_bounding_box
            resized = square.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(resized, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"cannot read image {path}: {error}") from error


def load_images(paths: Sequence[Path], image_size: int, *, skip_unreadable: bool = False,
                progress: Callable[[int], None] | None = None, workers: int = 4
                ) -> tuple[np.ndarray, list[int]]:
    """Decode and preprocess ``paths`` in parallel; returns ``(uint8 (N, S, S, 3), kept indices)``.

    An unreadable image raises :class:`DataError` naming the file, unless ``skip_unreadable``, in
    which case it is left out and its index is missing from the kept list.
    """
    def load_one(path: Path) -> np.ndarray | None:
        try:
            return load_image(path, image_size)
        except DataError:
            if skip_unreadable:
                return None
            raise
        finally:
            if progress is not None:
                progress(1)

    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL releases the GIL while decoding
        results = list(pool.map(load_one, paths))
    kept = [i for i, image in enumerate(results) if image is not None]
    if not kept:
        return np.zeros((0, image_size, image_size, 3), dtype=np.uint8), kept
    return np.stack([results[i] for i in kept]), kept
