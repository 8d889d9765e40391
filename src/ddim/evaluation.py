"""Evaluating a model: generated images against real ones, by KID and FID on Inception features.

Two protocols:
- the Keras example's, run after every training epoch: as many images as the validation set holds, 5 DDIM
  steps, features at 75 px, KID per batch of 64 averaged over batches (:func:`seed_kid`);
- the standard one, for comparison with other systems (``ddim evaluate``): features at 299 px
  (pool3), KID as mean +- std over random subsets, and FID; generated images are quantised to 8 bits
  as if saved to PNG; reference features are cached per data set, split and resolution.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .data import ImageSplits
from .data.dataset import default_cache_dir
from .data.generated import read_generated  # noqa: F401  (``ddim evaluate --generated`` reads through it)
from .distributed import Distributed
from .files import atomic_path
from .metrics.distances import fid_from_features, kid_per_batch, kid_subsets
from .metrics.inception import InceptionFeatures, extract_features
from .model import DiffusionModel, generate_images
from .partial import PartialFeatures
from .reports import to_uint8
from .speed import Speed

REFERENCES = ("validation", "train", "all")
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


@dataclass(frozen=True)
class EvaluationSettings:
    """What ``ddim evaluate`` measures; written into its JSON so a number can be reproduced."""

    num: int | None = None  # generated images (None: as many as the reference set holds)
    steps: int = 20
    seed: int = 0
    sampler: str = "ddim"
    sampler_options: dict[str, Any] = field(default_factory=dict)
    kid_size: int = 299
    reference: str = "validation"
    label: int | None = None  # a conditional model: the one class generated and compared with (None: all)
    guidance: float = 1.0  # a conditional model: classifier-free guidance weight
    subsets: int = 100
    subset_size: int = 1000
    batch_size: int = 256
    kid_batch_size: int = 64  # the Keras example's per-batch KID, reported beside the standard one


def generated_features(model: DiffusionModel, extractor: InceptionFeatures, *, num: int, steps: int, seed: int,
                       start: int = 0,
                       sampler: str = "ddim", sampler_options: dict[str, Any] | None = None, batch_size: int = 256,
                       quantize: bool = True, speed: Speed | None = None,
                       progress: Callable[[int], None] | None = None, labels: Sequence[int] | None = None,
                       guidance: float = 1.0, partial_dir: Path | None = None,
                       report: Callable[[str], None] | None = None) -> np.ndarray:
    """Features of images ``start`` .. ``start + num - 1`` of ``seed``, generated batch by batch (never all
    held at once) with the EMA network; ``labels[k]`` is the class of image ``start + k`` (conditional models).

    With ``partial_dir``, each finished batch's features are kept there until all are generated, so that the same
    call after an interruption generates only the missing batches (``report`` is told how many it found)."""
    device = next(model.parameters()).device
    partial = None
    if partial_dir is not None:
        from .checkpoint import tensors_sha256

        partial = PartialFeatures(partial_dir, {
            "weights_sha256": tensors_sha256(model.state_dict()), "sampler": sampler,
            "sampler_options": sampler_options or {}, "steps": steps, "seed": seed, "start": start, "num": num,
            "batch_size": batch_size, "quantize": quantize, "guidance": guidance, "device": device.type,
            "labels": None if labels is None else hashlib.sha256(str(list(labels)).encode()).hexdigest(),
            "speed": speed.describe() if speed is not None else None,
            "inception": [extractor.sha1, extractor.image_size]})
        found = partial.count()
        if found and report is not None:
            report(f"continuing an interrupted generation: {found} of {num} images done earlier ({partial.folder})")
    chunks = []
    for first in range(start, start + num, batch_size):
        indices = range(first, min(first + batch_size, start + num))
        features = partial.load(first, len(indices)) if partial is not None else None
        if features is None:
            batch_labels = None if labels is None else labels[first - start:first - start + len(indices)]
            images = generate_images(model, seed=seed, indices=indices, steps=steps,
                                     batch_size=batch_size, sampler=sampler, device=device, speed=speed,
                                     labels=batch_labels, guidance=guidance, **(sampler_options or {}))
            if quantize:  # as if saved to PNG and read back, like every image-folder evaluation
                images = to_uint8(images).float().div_(255.0)
            features = extract_features(extractor, images.to(device), batch_size=batch_size)
            if partial is not None:
                partial.save(first, features)
        chunks.append(features)
        if progress is not None:
            progress(len(indices))
    if partial is not None:
        partial.clear()
    return np.concatenate(chunks)


def evaluate_images(generated: np.ndarray, splits: ImageSplits, extractor: InceptionFeatures,
                    settings: EvaluationSettings, *, cache_dir: Path | None = None,
                    progress: Progress | None = None) -> dict[str, Any]:
    """KID (mean, std over subsets), the Keras example's per-batch KID and FID of given uint8 images vs real ones."""
    real, cache_file = reference_features(splits, settings.reference, extractor, cache_dir=cache_dir,
                                          batch_size=settings.batch_size, progress=progress)
    update = progress(f"Inception features of {len(generated)} given images", len(generated)) if progress else None
    features = extract_features(extractor, generated, batch_size=settings.batch_size, progress=update)
    return _metrics(real, features, settings, splits, extractor, cache_file)


def feature_metrics(real: np.ndarray, generated: np.ndarray, *, subsets: int, subset_size: int, seed: int,
                    kid_batch_size: int = 64) -> dict[str, float]:
    """KID (mean and std over random subsets), the per-batch KID and FID of two feature sets."""
    kid_mean, kid_std = kid_subsets(real, generated, subsets=subsets, subset_size=subset_size, seed=seed)
    return {"kid": kid_mean, "kid_std": kid_std, "kid_per_batch": kid_per_batch(real, generated, kid_batch_size),
            "fid": fid_from_features(real, generated)}


def _metrics(real: np.ndarray, generated: np.ndarray, settings: EvaluationSettings, splits: ImageSplits,
             extractor: InceptionFeatures, cache_file: Path | None) -> dict[str, Any]:
    return {
        **feature_metrics(real, generated, subsets=settings.subsets, subset_size=settings.subset_size,
                          seed=settings.seed, kid_batch_size=settings.kid_batch_size),
        "num_generated": len(generated),
        "num_real": len(real),
        "kid_subset_size": min(settings.subset_size, len(real), len(generated)),
        "settings": asdict(settings),
        "reference": {"set": settings.reference, "folder": str(splits.folder), "layout": splits.layout,
                      "fingerprint": splits.fingerprint, "features_cache": cache_file and str(cache_file)},
        "inception": {"weights": str(extractor.weights), "sha1": extractor.sha1, "image_size": extractor.image_size},
    }


def evaluate(model: DiffusionModel, splits: ImageSplits, extractor: InceptionFeatures,
             settings: EvaluationSettings, *, cache_dir: Path | None = None, speed: Speed | None = None,
             progress: Progress | None = None, partial_dir: Path | None = None,
             report: Callable[[str], None] | None = None) -> dict[str, Any]:
    """KID (mean, std over subsets), the Keras example's per-batch KID, and FID of generated vs real images.

    ``partial_dir``: where finished batches are kept until the generation is complete, so that the same evaluation
    after an interruption continues where it stopped (see :func:`generated_features`).

    A conditional model generates ``settings.label``'s class against that class's real images, or, without a
    label, the reference images' classes in turn (:func:`generation_labels`).
    """
    splits = reference_splits(splits, settings.label)
    real, cache_file = reference_features(splits, settings.reference, extractor, cache_dir=cache_dir,
                                          batch_size=settings.batch_size, progress=progress)
    num = settings.num or len(real)
    labels = conditioning_labels(model, splits, settings.reference, num, settings.label)
    update = progress(f"generating {num} images ({settings.sampler}, {settings.steps} steps)", num) if progress else None
    generated = generated_features(model, extractor, num=num, steps=settings.steps, seed=settings.seed,
                                   sampler=settings.sampler, sampler_options=settings.sampler_options,
                                   batch_size=settings.batch_size, speed=speed, progress=update, labels=labels,
                                   guidance=settings.guidance, partial_dir=partial_dir, report=report)
    return _metrics(real, generated, settings, splits, extractor, cache_file)


def evaluate_per_class(model: DiffusionModel, splits: ImageSplits, extractor: InceptionFeatures,
                       settings: EvaluationSettings, *, cache_dir: Path | None = None, speed: Speed | None = None,
                       progress: Progress | None = None) -> list[dict[str, Any]]:
    """KID (mean, std over subsets) of every class of a conditional model against that class's real images (as
    many generated as the class's reference holds, unless ``settings.num``). No FID: a class has far too few
    images for its 2048 x 2048 covariance."""
    rows = []
    for label, name in enumerate(model.class_names):
        subset = class_subset(splits, label)
        real, _ = reference_features(subset, settings.reference, extractor, cache_dir=cache_dir,
                                     batch_size=settings.batch_size)
        num = settings.num or len(real)
        if len(real) < 2 or num < 2:
            rows.append({"class": name, "index": label, "kid": None, "kid_std": None, "num_generated": num,
                         "num_real": len(real)})
            continue
        update = progress(f"class {label} ({name}): generating {num} images", num) if progress else None
        generated = generated_features(model, extractor, num=num, steps=settings.steps, seed=settings.seed,
                                       sampler=settings.sampler, sampler_options=settings.sampler_options,
                                       batch_size=settings.batch_size, speed=speed, progress=update,
                                       labels=[label] * num, guidance=settings.guidance)
        kid, kid_std = kid_subsets(real, generated, subsets=settings.subsets, subset_size=settings.subset_size,
                                   seed=settings.seed)
        rows.append({"class": name, "index": label, "kid": kid, "kid_std": kid_std, "num_generated": num,
                     "num_real": len(real)})
    return rows


def seed_kid(model: DiffusionModel, extractor: InceptionFeatures, real_features: np.ndarray | None, *, count: int,
             steps: int, seed: int, batch_size: int = 64, generation_batch_size: int = 256, speed: Speed | None = None,
             distributed: Distributed = Distributed(), labels: Sequence[int] | None = None,
             guidance: float = 1.0) -> float | None:
    """The Keras example's per-epoch KID: ``count`` images generated from the same noise every call, features of the
    float images, one unbiased estimate per batch of ``batch_size`` against ``real_features``, averaged.

    Under data parallelism each rank generates its share and rank 0 (which alone needs
    ``real_features``) computes the result; other ranks get None. Touches no training state: the EMA
    network is always in eval mode, the noise comes from per-image generators of its own, and nothing
    is written to any module. A conditional model draws image k as class ``labels[k]`` with ``guidance``.
    """
    share = -(-count // distributed.world_size)
    start, stop = distributed.rank * share, min(count, (distributed.rank + 1) * share)
    features = np.zeros((0, 2048), np.float32)
    if stop > start:
        features = generated_features(model, extractor, num=stop - start, start=start, steps=steps, seed=seed,
                                      batch_size=generation_batch_size, quantize=False, speed=speed,
                                      labels=None if labels is None else labels[start:stop], guidance=guidance)
    gathered = distributed.gather(features)
    if not distributed.is_main:
        return None
    return kid_per_batch(real_features, np.concatenate(gathered), batch_size)
