"""``ddim evaluate --generated`` inputs: folders of image files and .npz files holding uint8 ``images``.

A folder's files named ``grid*.png`` are left out: they are the overview grids ``ddim sample`` writes beside
its images (``grid.png``), not samples, so ``ddim sample --out DIR`` then ``ddim evaluate --generated DIR``
evaluates exactly the samples.
"""

from __future__ import annotations

import fnmatch
import zipfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from ..reading import ReadError, memory_bytes, npz_arrays, regular_file_size
from .errors import DataError
from .images import list_images, read_rgb

MIN_IMAGES = 2  # KID and FID need at least two images
GRID_PATTERN = "grid*.png"  # sample grids (``ddim sample`` writes grid.png beside the images): never samples
NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def _describe(images: np.ndarray) -> str:
    return f"{images.dtype} array of shape {images.shape}"


def is_grid(path: Path) -> bool:
    """Whether ``path`` is named like a sample grid (``grid*.png``, any case), which is not a sample."""
    return fnmatch.fnmatch(path.name.lower(), GRID_PATTERN)


def read_folder(folder: Path) -> np.ndarray:
    """The images of ``folder`` as uint8 (N, H, W, 3), grids (``grid*.png``) left out; a DataError names a
    corrupt file or a size mismatch."""
    files = [path for path in list_images(folder) if not is_grid(path)]
    if not files:
        hint = ""
        if (folder / "samples.npz").is_file():
            hint = f"; it holds samples.npz: give --generated {folder / 'samples.npz'}"
        raise DataError(f"no images found in {folder} (sample grids, named {GRID_PATTERN}, are left out){hint}")
    images = []
    for path in files:
        image = read_rgb(path)
        if images and image.shape != images[0].shape:
            raise DataError(f"{folder} holds images of different sizes: {files[0].name} is "
                            f"{images[0].shape[1]}x{images[0].shape[0]}, {path.name} is {image.shape[1]}x{image.shape[0]}")
        images.append(image)
    return np.stack(images)


def read_npz(path: Path) -> np.ndarray:
    """The ``images`` array of an .npz file, never unpickling anything, its declared size checked before it is
    read (at most half of this machine's memory); a DataError names the file."""
    try:
        regular_file_size(path)
        with open(path, "rb") as handle:
            if handle.read(6) == b"\x93NUMPY":
                raise DataError(f"{path} holds a single array, not an .npz archive with an 'images' entry")
        (images,) = npz_arrays(path, ("images",), max_bytes=memory_bytes() // 2)
        return images
    except KeyError:
        with np.load(path, allow_pickle=False) as archive:
            names = ", ".join(archive.files) or "none"
        raise DataError(f"{path} holds no 'images' array (it has {names})") from None
    except (ReadError, *NPZ_ERRORS) as error:
        raise DataError(f"cannot read {path} as an .npz file of uint8 'images': {error}") from error


def read_generated(paths: Sequence[Path]) -> np.ndarray:
    """uint8 images (N, S, S, 3), N >= 2, from folders of image files and/or .npz files holding ``images``."""
    parts: list[tuple[Path, np.ndarray]] = []
    for path in map(Path, paths):
        if path.is_dir():
            images = read_folder(path)
        elif path.suffix.lower() == ".npz" and path.is_file():
            images = read_npz(path)
        elif not path.exists():
            raise DataError(f"{path} does not exist")
        else:
            raise DataError(f"{path} is neither a folder of images nor an .npz file")
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
            raise DataError(f"{path}: generated images must be square uint8 (N, H, W, 3), got a {_describe(images)}")
        if not len(images):
            raise DataError(f"{path} holds no images")
        if parts and images.shape[1:] != parts[0][1].shape[1:]:
            raise DataError(f"{path} holds {images.shape[1]}x{images.shape[2]} images but {parts[0][0]} holds "
                            f"{parts[0][1].shape[1]}x{parts[0][1].shape[2]} ones; all must have one size")
        parts.append((path, images))
    count = sum(len(images) for _, images in parts)
    if count < MIN_IMAGES:
        raise DataError(f"{' + '.join(str(path) for path, _ in parts) or 'no input'} holds {count} image(s); "
                        f"KID and FID need at least {MIN_IMAGES}")
    return np.concatenate([images for _, images in parts])
