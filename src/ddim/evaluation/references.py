"""The real images generated ones are compared with: reference sets, their classes, and their Inception features,
cached per data set, split, resolution and Inception network."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from ..data import ImageSplits
from ..data.dataset import default_cache_dir
from ..files import atomic_path
from ..metrics.inception import InceptionFeatures, extract_features
from ..model import DiffusionModel
from ..names import REFERENCES

Progress = Callable[[str, int], Callable[[int], None]]


def real_images(splits: ImageSplits, reference: str) -> np.ndarray:
    """The real uint8 images of a reference set: ``validation``, ``train`` or ``all`` (both)."""
    if reference == "validation":
        return splits.validation
    if reference == "train":
        return splits.train
    if reference == "all":
        return np.concatenate([splits.train, splits.validation])
    raise ValueError(f"unknown reference set {reference!r}; choose from {', '.join(REFERENCES)}")


def reference_labels(splits: ImageSplits, reference: str) -> np.ndarray | None:
    """The class labels of a reference set's images (None for data without labels)."""
    if splits.train_labels is None or splits.validation_labels is None:
        return None
    return {"validation": splits.validation_labels, "train": splits.train_labels,
            "all": np.concatenate([splits.train_labels, splits.validation_labels])}[reference]


def class_subset(splits: ImageSplits, label: int) -> ImageSplits:
    """Only the images of class ``label``, on both sides of the split (their own feature-cache key)."""
    if splits.train_labels is None or splits.validation_labels is None:
        raise ValueError(f"{splits.folder} has no class labels")
    train, validation = splits.train_labels == label, splits.validation_labels == label
    return dataclasses.replace(splits, train=splits.train[train], validation=splits.validation[validation],
                               train_labels=splits.train_labels[train],
                               validation_labels=splits.validation_labels[validation])


def generation_labels(splits: ImageSplits, reference: str, num: int) -> list[int]:
    """A class per generated image for a conditional model asked for no class: the reference images' labels in
    turn, so the generated classes follow the real ones (exactly when ``num`` is the reference's size)."""
    labels = reference_labels(splits, reference)
    if labels is None or len(labels) == 0:
        raise ValueError(f"{splits.folder} has no class labels to draw a conditional model's classes from")
    return [int(labels[i % len(labels)]) for i in range(num)]


def reference_splits(splits: ImageSplits, label: int | None) -> ImageSplits:
    """The real images generated images of class ``label`` are compared with (all of them for None)."""
    return splits if label is None else class_subset(splits, label)


def conditioning_labels(model: DiffusionModel, splits: ImageSplits, reference: str, num: int,
                        label: int | None) -> list[int] | None:
    """The class of each of ``num`` generated images: ``label`` for all, else the reference's classes in turn
    (:func:`generation_labels`); None for an unconditional model."""
    if not model.class_names:
        return None
    return [label] * num if label is not None else generation_labels(splits, reference, num)


def cache_folder(cache_dir: Path | str | None = None) -> Path:
    """``cache_dir``, else the default cache (``$DDIM_CACHE_DIR`` or ``~/.cache/ddim``)."""
    return Path(cache_dir) if cache_dir else default_cache_dir()


def partial_folder(cache_dir: Path | str | None = None) -> Path:
    """Where unfinished generations keep their finished batches (``partial_dir`` of :func:`generated_features`)."""
    return cache_folder(cache_dir) / "partial"


def reference_features(splits: ImageSplits, reference: str, extractor: InceptionFeatures, *,
                       cache_dir: Path | None = None, batch_size: int = 200,
                       progress: Progress | None = None) -> tuple[np.ndarray, Path | None]:
    """Inception features of the real reference images, read from / written to the feature cache."""
    images = real_images(splits, reference)
    folder = cache_folder(cache_dir)
    name = f"{splits.fingerprint[:16]}-{reference}-{len(images)}-{extractor.image_size}px-{extractor.sha1[:12]}.npy"
    cache_file = folder / "features" / name
    if cache_file.is_file():
        try:
            cached = np.load(cache_file)
            if cached.shape == (len(images), 2048):
                return cached, cache_file
        except (OSError, ValueError):
            pass  # a damaged cache file is rebuilt below
    update = progress(f"Inception features of {len(images)} real {reference} images", len(images)) if progress else None
    features = extract_features(extractor, images, batch_size=batch_size, progress=update)
    try:
        with atomic_path(cache_file) as temporary, open(temporary, "wb") as handle:
            np.save(handle, features)
    except OSError:
        return features, None  # an unwritable cache only costs the next evaluation the extraction
    return features, cache_file
