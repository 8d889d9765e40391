"""Decoding and preprocessing: centre crop to the shorter side, antialiased resize, uint8 RGB.

16-bit images are scaled to 8 bits by their real range (value / 257), never clipped to white. Images
of more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (Pillow's own warning threshold, about 89.5
megapixels) are refused as possible decompression bombs before any pixel is decoded.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..reading import memory_bytes
from .errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


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


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, scaling high-bit-depth greyscale by its range instead of clipping it.

    Modes ``I;16*`` are 16-bit: value / 257. Mode ``I`` (32-bit integers, e.g. from TIFF) carries no
    bit depth, so it is taken from the data: 8-bit if no value exceeds 255, 16-bit if none exceeds
    65535, otherwise scaled so the maximum is 255; negative values become 0. 16-bit RGB(A) files
    already arrive as 8-bit RGB(A) from Pillow (the high byte of each value). Mode ``F`` (32-bit float, e.g.
    from TIFF) is taken as [0, 1] when no value exceeds 1, else as 0..255, and clipped. An EXIF orientation
    (phone photos) is applied first, so the pixels are upright as every image viewer shows them.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if float(values.max(initial=0)) <= 1.0 else 1.0
        image = Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8))
    if image.mode == "I" or image.mode.startswith("I;16"):
        values = np.asarray(image).astype(np.float32)
        peak = float(values.max(initial=0))
        if image.mode.startswith("I;16") or 255 < peak <= 65535:
            scale = 257.0
        else:
            scale = max(peak / 255.0, 1.0)  # 8-bit values as they are; wider ones to the maximum
        image = Image.fromarray(np.clip(np.rint(values / scale), 0, 255).astype(np.uint8))
    return image.convert("RGB")


def open_checked(path: Path) -> Image.Image:
    """``Image.open(path)``, refused (DataError naming the file) above ``Image.MAX_IMAGE_PIXELS`` pixels.

    Only the header has been read at this point, so a decompression bomb is never decoded.
    """
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as error:
        raise DataError(f"cannot read image {path}: it declares too many pixels, a possible "
                        f"decompression bomb ({error})") from error
    limit = Image.MAX_IMAGE_PIXELS
    if limit and image.width * image.height > limit:
        image.close()
        raise DataError(f"cannot read image {path}: {image.width}x{image.height} is more than {limit} pixels, "
                        "a possible decompression bomb")
    return image


def read_rgb(path: Path) -> np.ndarray:
    """One whole image as uint8 (H, W, 3), or a DataError naming the file."""
    try:
        with open_checked(path) as image:
            return np.asarray(to_rgb(image), dtype=np.uint8)
    except READ_ERRORS as error:
        raise DataError(f"cannot read image {path}: {error}") from error


def decode(path: Path, image_size: int) -> tuple[np.ndarray, bool]:
    """One image as uint8 (image_size, image_size, 3) and whether it had to be upscaled."""
    try:
        with open_checked(path) as image:
            image = to_rgb(image)
            square = image.crop(center_crop_box(*image.size))  # as tf.image.crop_to_bounding_box
            resized = square.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(resized, dtype=np.uint8), square.width < image_size
    except READ_ERRORS as error:
        raise DataError(f"cannot read image {path}: {error}") from error


def load_image(path: Path, image_size: int) -> np.ndarray:
    """One image as uint8 (image_size, image_size, 3): centre crop, then bilinear antialiased resize.

    PIL's bilinear filter widens its support when it downscales, which is the triangle-filter
    antialiasing of ``tf.image.resize(..., antialias=True)`` that the Keras example uses.
    """
    return decode(path, image_size)[0]


def load_images(paths: Sequence[Path], image_size: int, *, skip_unreadable: bool = False,
                progress: Callable[[int], None] | None = None, workers: int = 4
                ) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Decode and preprocess ``paths`` in parallel; returns ``(uint8 (N, S, S, 3), kept indices, upscaled)``.

    ``upscaled`` is a bool (N,) array marking the kept images smaller than ``image_size``. An
    unreadable image raises :class:`DataError` naming the file, unless ``skip_unreadable``, in which
    case it is left out and its index is missing from the kept list.
    """
    needed = 2 * len(paths) * image_size * image_size * 3  # the decoded images, and their stacked copy
    if needed > memory_bytes():
        raise DataError(f"{len(paths):,} images at {image_size} px need {needed / 2**30:.1f} GiB to decode, more than "
                        f"this machine's {memory_bytes() / 2**30:.1f} GiB: use a smaller --image-size or fewer images "
                        "(--train-images)")

    def load_one(path: Path) -> tuple[np.ndarray, bool] | None:
        try:
            return decode(path, image_size)
        except DataError as error:
            if skip_unreadable:
                return None
            raise DataError(f"{error} (ddim train --skip-unreadable yes leaves unreadable images out and trains "
                            "on the rest)") from error
        finally:
            if progress is not None:
                progress(1)

    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL releases the GIL while decoding
        results = list(pool.map(load_one, paths))
    kept = [i for i, result in enumerate(results) if result is not None]
    upscaled = np.array([results[i][1] for i in kept], dtype=bool)
    if not kept:
        return np.zeros((0, image_size, image_size, 3), dtype=np.uint8), kept, upscaled
    return np.stack([results[i][0] for i in kept]), kept, upscaled
