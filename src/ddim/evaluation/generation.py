"""Inception features of generated images, batch by batch, never all held at once; with a partial folder, every
finished batch is kept so that an interrupted generation continues where it stopped."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..integrity import tensors_sha256
from ..metrics.inception import InceptionFeatures, extract_features
from ..model import DiffusionModel, generate_images
from ..reports import to_uint8
from ..runtime import Runtime
from .partial import PartialFeatures


def generated_features(model: DiffusionModel, extractor: InceptionFeatures, *, num: int, steps: int, seed: int,
                       start: int = 0,
                       sampler: str = "ddim", sampler_options: dict[str, Any] | None = None, batch_size: int = 256,
                       quantize: bool = True, runtime: Runtime | None = None,
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
        partial = PartialFeatures(partial_dir, {
            "weights_sha256": tensors_sha256(model.state_dict()), "sampler": sampler,
            "sampler_options": sampler_options or {}, "steps": steps, "seed": seed, "start": start, "num": num,
            "batch_size": batch_size, "quantize": quantize, "guidance": guidance, "device": device.type,
            "labels": None if labels is None else hashlib.sha256(str(list(labels)).encode()).hexdigest(),
            "speed": runtime.describe() if runtime is not None else None,
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
                                     batch_size=batch_size, sampler=sampler, device=device, runtime=runtime,
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
