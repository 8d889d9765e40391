"""From a ``--data`` argument to preprocessed train and validation arrays, cached on disk.

A folder in the Oxford Flowers 102 layout gets the Keras example's split; any other folder of images gets a
seeded 80/20 split. The decoded, cropped and resized uint8 images are cached (keyed by the files'
names, sizes and modification times and the image size), so a second run skips decoding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import DataConfig, RunConfig
from ..files import atomic_path
from ..layout import ddim_folders_under
from ..limits import counted
from ..reading import memory_bytes, npz_arrays
from . import flowers
from .errors import DataError, DataWarning
from .images import IMAGE_EXTENSIONS, list_images, load_images

CACHE_ENVIRONMENT_VARIABLE = "DDIM_CACHE_DIR"
CACHE_FORMAT_VERSION = 3  # bump when preprocessing or the cache layout changes, so stale caches are not reused


def default_cache_dir() -> Path:
    """``$DDIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/ddim``, else ``~/.cache/ddim``."""
    if os.environ.get(CACHE_ENVIRONMENT_VARIABLE):
        return Path(os.environ[CACHE_ENVIRONMENT_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ddim"


@dataclass(frozen=True)
class ImageSplits:
    """Preprocessed uint8 images (N, S, S, 3) of both sides of the split, with where they came from."""

    train: np.ndarray
    validation: np.ndarray
    train_labels: np.ndarray | None  # class index per image (0-based, into class_names), None without classes
    validation_labels: np.ndarray | None
    folder: Path
    layout: str  # "flowers102" or "folder"
    skipped: tuple[str, ...] = ()  # unreadable files left out (only with skip_unreadable)
    upscaled: int = 0  # images of train + validation smaller than the image size, so upscaled
    class_names: tuple[str, ...] = ()  # the classes, by label (Flowers 102's names, or the folder's subfolders)
    in_runs: int = 0  # image files left out because they lie in ddim run folders inside the data folder
    runs: tuple[str, ...] = ()  # those run folders, relative to the data folder

    def upscaled_note(self) -> str:
        """How many images were smaller than the image size, so upscaled ("" if none): one wording for the
        warning and the run's notices."""
        if not self.upscaled:
            return ""
        size = self.train.shape[1]
        return (f"{self.upscaled:,} of {counted(len(self.train) + len(self.validation), 'image')} from {self.folder} "
                f"{'is' if self.upscaled == 1 else 'are'} smaller than {size}x{size} px and "
                f"{'was' if self.upscaled == 1 else 'were'} upscaled")

    def runs_note(self) -> str:
        """What was left out because it lies in run folders inside the data folder ("" if nothing)."""
        if not self.in_runs:
            return ""
        shown = ", ".join(self.runs[:3]) + (", ..." if len(self.runs) > 3 else "")
        return (f"left out {self.in_runs} images in ddim run folders inside {self.folder} ({shown}): a run's grids "
                "are not training images (keep runs outside the data folder)")

    @cached_property
    def fingerprint(self) -> str:
        """The split's pixels and labels (:func:`content_fingerprint`), the key of reference-feature caches and
        studies; derived, so a subset made with ``dataclasses.replace`` gets its own."""
        return content_fingerprint(self.train, self.validation, self.train_labels, self.validation_labels)


def resolve_data_folder(path: str, cache_dir: Path) -> Path:
    """The folder ``--data`` names; ``flowers102`` without such a folder means the cached download."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        return folder
    if folder.exists():
        raise DataError(f"--data {path} is a file, not a folder of images")
    if path == "flowers102":
        cached = cache_dir / "flowers102"
        if flowers.is_flowers_layout(cached):
            return cached
        return flowers.download_flowers102(cache_dir)
    raise DataError(f"data folder {folder} does not exist (use --data flowers102 to download Oxford Flowers 102)")


def content_fingerprint(*arrays: np.ndarray | None) -> str:
    """sha256 of arrays' shapes and bytes (None is left out): the same images give the same value wherever and
    whenever they were read from, a copied or re-extracted folder included."""
    digest = hashlib.sha256()
    for array in arrays:
        if array is not None:
            digest.update(f"{array.shape}|".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _decoding_cache_key(folder: Path, files: list[Path], image_size: int) -> str:
    """The decoding cache's key: the files' names, sizes and modification times (not read: cheap)."""
    digest = hashlib.sha1(f"v{CACHE_FORMAT_VERSION}:{image_size}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def _decode_cached(folder: Path, files: list[Path], image_size: int, cache_dir: Path, skip_unreadable: bool,
                   progress: Callable[[str, int], Callable[[int], None]] | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ``files`` decoded (from the cache when it is current); returns images, kept indices, upscaled."""
    key = _decoding_cache_key(folder, files, image_size)
    cache_file = cache_dir / "images" / f"{folder.name}-{key[:16]}-{image_size}px{'-skip' if skip_unreadable else ''}.npz"
    if cache_file.is_file():
        try:  # each array's declared size checked first: a planted cache file cannot claim all memory
            images, kept, upscaled = npz_arrays(cache_file, ("images", "kept", "upscaled"), memory_bytes() // 2)
            return images, kept, upscaled
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):  # ReadError: a ValueError
            pass  # a damaged cache is rebuilt below
    update = progress(f"decoding {len(files)} images from {folder}", len(files)) if progress else None
    images, kept, upscaled = load_images(files, image_size, skip_unreadable=skip_unreadable, progress=update)
    kept_array = np.asarray(kept, dtype=np.int64)
    try:
        with atomic_path(cache_file) as temporary:
            np.savez(temporary, images=images, kept=kept_array, upscaled=upscaled)
    except OSError:
        pass  # an unwritable cache only costs the next run the decoding time
    return images, kept_array, upscaled


def folder_classes(folder: Path, files: list[Path]) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names and a label per file for a folder with one subfolder per class (torchvision's ImageFolder
    convention: the classes are the subfolders holding images, sorted by name)."""
    top = [path.relative_to(folder).parts for path in files]
    loose = [files[i] for i, parts in enumerate(top) if len(parts) == 1]
    if loose:
        raise DataError(f"{folder} holds {len(loose)} images outside class subfolders (e.g. {loose[0].name}); "
                        "class-conditional training needs one subfolder per class (ImageFolder convention)")
    names = tuple(sorted({parts[0] for parts in top}))
    if len(names) < 2:
        raise DataError(f"{folder} has {len(names)} class subfolder ({', '.join(names)}); class-conditional training "
                        "needs at least two classes, one subfolder each")
    index = {name: i for i, name in enumerate(names)}
    return names, np.asarray([index[parts[0]] for parts in top], dtype=np.int64)


def stratified_split(labels: np.ndarray, names: tuple[str, ...], seed: int, fraction: float,
                     folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Rows of each class shuffled with ``seed`` and cut at ``fraction`` (at least one on each side), so every
    class is on both sides; each side is then shuffled, so its first N images mix the classes."""
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for label, name in enumerate(names):
        rows = rng.permutation(np.flatnonzero(labels == label))
        if rows.size < 2:
            raise DataError(f"class {name!r} in {folder} has {rows.size} readable image; every class needs at least "
                            "two, one for training and one for validation")
        cut = min(max(int(round(rows.size * fraction)), 1), rows.size - 1)
        train.append(rows[:cut])
        validation.append(rows[cut:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(validation))


def run_splits(config: RunConfig, *, data: str | None = None, cache_dir: str | None = None,
               progress: Callable[[str, int], Callable[[int], None]] | None = None) -> ImageSplits:
    """The images of a run, as its training saw them: its data settings (the split, ``skip_unreadable``), image size
    and classes (a conditional run's folder is split class by class), optionally from another ``data`` folder or
    ``cache_dir``. Every command that reads a checkpoint's images comes through here."""
    overrides = {key: value for key, value in (("path", data), ("cache_dir", cache_dir)) if value is not None}
    return load_splits(dataclasses.replace(config.data, **overrides), config.model.image_size,
                       classes=config.model.conditional, progress=progress)


def load_splits(config: DataConfig, image_size: int, *, classes: bool = False,
                progress: Callable[[str, int], Callable[[int], None]] | None = None) -> ImageSplits:
    """Resolve, decode (or read from cache) and split the images that ``config.path`` names.

    Images smaller than ``image_size`` are upscaled; their number is in ``upscaled`` and said once
    as a :class:`DataWarning`. Unreadable images stop with their name, or are left out and counted with
    ``config.skip_unreadable``. ``classes``: a plain folder must have one subfolder per class, and is split
    class by class (Flowers 102 always carries its labels, and its split keeps every class on both sides).
    """
    skip_unreadable = config.skip_unreadable
    cache_dir = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
    folder = resolve_data_folder(config.path, cache_dir)
    if flowers.is_flowers_layout(folder):
        index = flowers.read_index(folder)
        files = [flowers.image_path(folder, i) for i in range(1, index.labels.size + 1)]
        images, kept, upscaled = _decode_cached(folder, files, image_size, cache_dir, skip_unreadable, progress)
        train_ids, validation_ids = flowers.keras_split(index, config.split_seed, config.train_fraction)
        position = np.full(len(files) + 1, -1, dtype=np.int64)  # 1-based id -> row in ``images``
        position[kept + 1] = np.arange(kept.size)
        train_ids = train_ids[position[train_ids] >= 0]
        validation_ids = validation_ids[position[validation_ids] >= 0]
        train_rows, validation_rows = position[train_ids], position[validation_ids]
        names = flowers.class_names()
        if classes and (index.labels.min() < 1 or index.labels.max() > len(names)):
            raise DataError(f"{folder / 'imagelabels.mat'}: labels must be 1..{len(names)} (the Flowers 102 classes), "
                            f"found {index.labels.min()}..{index.labels.max()}")
        train_labels, validation_labels = index.labels[train_ids - 1] - 1, index.labels[validation_ids - 1] - 1
        layout, in_runs, runs = "flowers102", 0, []
    else:
        files = list_images(folder)
        runs = ddim_folders_under(folder)
        in_run = [any(run in path.parents for run in runs) for path in files] if runs else [False] * len(files)
        in_runs = sum(in_run)
        files = [path for path, inside in zip(files, in_run) if not inside]  # a run's grids: never data
        if not files:
            raise DataError(f"no images found in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)} files, "
                            "or the Oxford Flowers 102 layout jpg/ + imagelabels.mat + setid.mat)")
        images, kept, upscaled = _decode_cached(folder, files, image_size, cache_dir, skip_unreadable, progress)
        names, train_labels, validation_labels = (), None, None
        if classes:
            names, labels = folder_classes(folder, files)
            labels = labels[kept]
            train_rows, validation_rows = stratified_split(labels, names, config.split_seed, config.train_fraction,
                                                           folder)
            train_labels, validation_labels = labels[train_rows], labels[validation_rows]
        else:
            order = np.random.default_rng(config.split_seed).permutation(kept.size)
            cut = int(round(kept.size * config.train_fraction))
            train_rows, validation_rows = np.sort(order[:cut]), np.sort(order[cut:])
        layout = "folder"
    if config.train_images is not None:
        train_rows = train_rows[: config.train_images]
        train_labels = None if train_labels is None else train_labels[: config.train_images]
    if config.validation_images is not None:
        validation_rows = validation_rows[: config.validation_images]
        validation_labels = None if validation_labels is None else validation_labels[: config.validation_images]
    if len(train_rows) == 0 or len(validation_rows) == 0:
        raise DataError(f"{folder} has too few readable images ({len(train_rows) + len(validation_rows)}) to split "
                        f"{config.train_fraction:.0%} / {1 - config.train_fraction:.0%}: both sides need one")
    skipped = tuple(str(files[i]) for i in sorted(set(range(len(files))) - set(kept.tolist())))
    small = int(upscaled[train_rows].sum() + upscaled[validation_rows].sum())
    splits = ImageSplits(train=images[train_rows], validation=images[validation_rows], train_labels=train_labels,
                         validation_labels=validation_labels, folder=folder, layout=layout, skipped=skipped,
                         upscaled=small, class_names=names, in_runs=in_runs,
                         runs=tuple(str(run.relative_to(folder)) for run in runs))
    for note in (splits.runs_note(), splits.upscaled_note()):
        if note:
            warnings.warn(note, DataWarning, stacklevel=2)
    return splits
