"""Evaluating a model: generated images against real ones, by KID and FID on Inception features.

Two protocols:
- the Keras example's, run after every training epoch: as many images as the validation set holds, 5 DDIM
  steps, features at 75 px, KID per batch of 64 averaged over batches (:func:`keras_kid`);
- the standard one, for comparison with other systems (``ddim evaluate``): features at 299 px
  (pool3), KID as mean +- std over random subsets, and FID; generated images are quantised to 8 bits
  as if saved to PNG; reference features are cached per data set, split and resolution.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..data import ImageSplits
from ..distributed import Distributed
from ..metrics.distances import fid_from_features, kid_per_batch, kid_subsets
from ..metrics.sample_size import kid_subset_size, sample_size_warnings
from ..metrics.inception import InceptionFeatures, extract_features
from ..model import DiffusionModel
from ..runtime import Runtime
from .generation import generated_features
from .references import Progress, class_subset, conditioning_labels, reference_features, reference_splits


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
    """KID (mean and std over random subsets; std None when every subset is the whole set), the subset size it
    really used, the per-batch KID, FID, and the warnings the set sizes call for."""
    kid_mean, kid_std = _kid(real, generated, subsets=subsets, subset_size=subset_size, seed=seed)
    return {"kid": kid_mean, "kid_std": kid_std, "kid_subset_size": kid_subset_size(subset_size, len(real), len(generated)),
            "kid_per_batch": kid_per_batch(real, generated, kid_batch_size),
            "fid": fid_from_features(real, generated), "warnings": sample_size_warnings(len(real), len(generated))}


def _kid(real: np.ndarray, generated: np.ndarray, **subsets: int) -> tuple[float, float | None]:
    """kid_subsets with an undefined spread as None (JSON has no NaN)."""
    kid_mean, kid_std = kid_subsets(real, generated, **subsets)
    return kid_mean, None if math.isnan(kid_std) else kid_std


def _metrics(real: np.ndarray, generated: np.ndarray, settings: EvaluationSettings, splits: ImageSplits,
             extractor: InceptionFeatures, cache_file: Path | None) -> dict[str, Any]:
    return {
        **feature_metrics(real, generated, subsets=settings.subsets, subset_size=settings.subset_size,
                          seed=settings.seed, kid_batch_size=settings.kid_batch_size),
        "num_generated": len(generated),
        "num_real": len(real),
        "settings": asdict(settings),
        "reference": {"set": settings.reference, "folder": str(splits.folder), "layout": splits.layout,
                      "fingerprint": splits.fingerprint, "features_cache": cache_file and str(cache_file)},
        "inception": {"weights": str(extractor.weights), "sha1": extractor.sha1, "image_size": extractor.image_size},
    }


def evaluate(model: DiffusionModel, splits: ImageSplits, extractor: InceptionFeatures,
             settings: EvaluationSettings, *, cache_dir: Path | None = None, runtime: Runtime | None = None,
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
                                   batch_size=settings.batch_size, runtime=runtime, progress=update, labels=labels,
                                   guidance=settings.guidance, partial_dir=partial_dir, report=report)
    return _metrics(real, generated, settings, splits, extractor, cache_file)


def evaluate_per_class(model: DiffusionModel, splits: ImageSplits, extractor: InceptionFeatures,
                       settings: EvaluationSettings, *, cache_dir: Path | None = None, runtime: Runtime | None = None,
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
                                       batch_size=settings.batch_size, runtime=runtime, progress=update,
                                       labels=[label] * num, guidance=settings.guidance)
        kid, kid_std = _kid(real, generated, subsets=settings.subsets, subset_size=settings.subset_size,
                            seed=settings.seed)
        rows.append({"class": name, "index": label, "kid": kid, "kid_std": kid_std, "num_generated": num,
                     "num_real": len(real), "kid_subset_size": kid_subset_size(settings.subset_size, len(real), num)})
    return rows


def keras_kid(model: DiffusionModel, extractor: InceptionFeatures, real_features: np.ndarray | None, *, count: int,
             steps: int, seed: int, batch_size: int = 64, generation_batch_size: int = 256, runtime: Runtime | None = None,
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
                                      batch_size=generation_batch_size, quantize=False, runtime=runtime,
                                      labels=None if labels is None else labels[start:stop], guidance=guidance)
    gathered = distributed.gather(features)
    if not distributed.is_main:
        return None
    return kid_per_batch(real_features, np.concatenate(gathered), batch_size)
