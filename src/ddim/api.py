"""The Python API: load a model, generate images, train, evaluate, through the commands' own code.

    import ddim
    model = ddim.load("pretrained")
    images = ddim.generate(model, 16, steps=20, seed=0)
    ddim.save_grid(images, "flowers.png")
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from .checkpoint import TrainState
from .classes import ClassRequest, labels_for, require_conditional, resolve_classes
from .config import SECTIONS, RunConfig
from .data import run_splits
from .evaluation import EvaluationSettings, evaluate as evaluate_model
from .export import BUILTIN_NAME
from .interpolation import interpolate as interpolate_noises
from .limits import (MAX_BATCH, MAX_FRAMES, MAX_GUIDANCE, MAX_IMAGES, MAX_SAMPLING_STEPS, MAX_SEED, real_number,
                     whole_number)
from .loading import load_model
from .metrics.inception import load_inception
from .model import DiffusionModel, generate_images
from .runtime import resolve_device, resolve_runtime
from .samplers import StepCallback, sampler_keywords
from .training import Callback, default_callbacks, fit as train_fit
from .training.resume import saved_config

__all__ = ["load", "generate", "interpolate", "fit", "evaluate"]


def load(path: str | Path = BUILTIN_NAME, device: str = "auto") -> DiffusionModel:
    """A model from a run folder (its latest checkpoint), a checkpoint folder or file, an exported file, or
    ``"pretrained"`` (the built-in Flowers 102 model); where it came from is ``model.origin`` and its
    :class:`RunConfig` ``model.run_config``. ``device``: auto (a GPU if there is one, as the commands), cpu,
    cuda, cuda:1, mps."""
    return load_model(path, device=resolve_device(device))


def generate(model: DiffusionModel, num: int = 16, *, steps: int = 20, sampler: str = "ddim", seed: int = 0,
             batch_size: int = 256, classes: ClassRequest | Sequence[ClassRequest] | None = None,
             guidance: float = 1.0, callback: StepCallback | None = None, **sampler_options: Any) -> torch.Tensor:
    """``num`` images (num, 3, S, S) in [0, 1] on the CPU; image k of ``seed`` is the same whatever the batch.

    ``sampler``: ddim (``eta=`` for stochastic DDIM), ddpm, dpmpp-2m or heun, as ``ddim sample --sampler``.
    A conditional model draws ``classes`` (one name or index for every image, or one per image; names
    case-insensitive; none: the classes in turn) with classifier-free ``guidance`` (0: unconditional, 1:
    conditional, >1: stronger). ``callback(step, noisy_images, predicted_images)`` is called after each sampling
    step (of each batch).
    """
    num = whole_number(num, "num", 1, MAX_IMAGES)
    batch_size = whole_number(batch_size, "batch_size", 1, MAX_BATCH)
    steps, seed, guidance, options = _sampling(steps, seed, guidance, sampler, sampler_options)
    device = next(model.parameters()).device
    labels = labels_for(model.class_names, classes, num, _source(model))
    return generate_images(model, seed=seed, indices=range(num), steps=steps, batch_size=batch_size,
                           sampler=sampler, device=device, runtime=resolve_runtime(device), labels=labels,
                           guidance=guidance, callback=callback, **options)


def _sampling(steps: Any, seed: Any, guidance: Any, sampler: Any = "ddim",
              options: dict[str, Any] | None = None) -> tuple[int, int, float, dict[str, float]]:
    """The sampling values every API call shares, checked against :mod:`ddim.limits` (a LimitError, a ValueError,
    names the value) and the sampler's keyword options (``eta`` only, ddim only)."""
    options = dict(options or {})
    eta = options.pop("eta", 0.0)
    if options:
        raise TypeError(f"unknown sampler option {', '.join(map(repr, options))}: the samplers take eta= (ddim only)")
    return (whole_number(steps, "steps", 1, MAX_SAMPLING_STEPS), whole_number(seed, "seed", 0, MAX_SEED),
            real_number(guidance, "guidance", 0.0, MAX_GUIDANCE), sampler_keywords(sampler, eta))


def _source(model: DiffusionModel) -> str:
    """How messages name the model: where it was loaded from, if it was."""
    return model.origin.describe() if model.origin is not None else "this model"


def interpolate(model: DiffusionModel, *, seed: int = 0, start: int = 0, end: int = 1, frames: int = 9,
                steps: int = 20, classes: ClassRequest | None = None, guidance: float = 1.0) -> torch.Tensor:
    """``frames`` images (frames, 3, S, S) in [0, 1] on the CPU along the spherical path between the starting
    noises of images ``start`` and ``end`` of ``seed`` (deterministic DDIM), as ``ddim interpolate`` draws them;
    a conditional model draws class ``classes`` (none: image ``start``'s class in turn) with ``guidance``."""
    frames = whole_number(frames, "frames", 2, MAX_FRAMES)
    start = whole_number(start, "start", 0, MAX_IMAGES - 1)
    end = whole_number(end, "end", 0, MAX_IMAGES - 1)
    steps, seed, guidance, _ = _sampling(steps, seed, guidance)
    labels = labels_for(model.class_names, classes, start + 1, _source(model))
    device = next(model.parameters()).device
    return interpolate_noises(model, seed=seed, start_index=start, end_index=end, frames=frames, steps=steps,
                              device=device, runtime=resolve_runtime(device), label=None if labels is None else labels[-1],
                              guidance=guidance)


def config_with(base: RunConfig | None = None, **values: Any) -> RunConfig:
    """``base`` (or the defaults) with fields replaced by name, in whichever section holds them:
    ``config_with(epochs=1, data="flowers102", widths=(16, 32))`` (``data`` is the data folder)."""
    base = base or RunConfig()
    changes: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for key, value in values.items():
        key = "path" if key == "data" else key
        if key == "path" and isinstance(value, os.PathLike):
            value = os.fspath(value)  # a pathlib.Path names the data folder as well as its text
        owner = [name for name, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
        if not owner:
            raise TypeError(f"{key!r} is not a configuration field")
        changes[owner[0]][key] = value
    return dataclasses.replace(base, **{name: dataclasses.replace(getattr(base, name), **fields)
                                        for name, fields in changes.items() if fields})


def fit(run_dir: str | Path, config: RunConfig | None = None, *, resume: bool = False, progress: bool = True,
        tensorboard: bool = True, callbacks: Sequence[Callback] = (), **values: Any) -> tuple[DiffusionModel, TrainState]:
    """Train (or resume) a run with the artefacts of ``ddim train``: grids, history, plots, TensorBoard,
    checkpoints. ``values`` override fields of ``config``, e.g. ``fit("runs/a", data="flowers102", epochs=5)``.

    ``resume=True`` continues the run in ``run_dir`` (which must hold one) from its latest checkpoint, with its own
    saved configuration unless ``config`` is given; ``values`` change what a resume may change (``epochs=60``).
    """
    if resume and config is None:
        config = saved_config(Path(run_dir))
    config = config_with(config, **values)
    return train_fit(config, Path(run_dir), resume=resume,
                     callbacks=[*default_callbacks(progress=progress, tensorboard=tensorboard, hints="api"),
                                *callbacks])


def evaluate(model: DiffusionModel, data: str | Path | None = None, *, num: int | None = None, steps: int = 20,
             sampler: str = "ddim", seed: int = 0, kid_size: int = 299, reference: str = "validation",
             inception_weights: str | Path | None = None, classes: ClassRequest | None = None, guidance: float = 1.0,
             **sampler_options: Any) -> dict[str, Any]:
    """KID (mean, std over subsets) and FID of generated vs real images, as ``ddim evaluate`` reports them.

    ``data``: the real images (default: the data the model was trained on, same split). A conditional model draws
    class ``classes`` against that class's real images (none: each generated image takes a real one's class in
    turn, so the classes follow the real set's mix) with classifier-free ``guidance``.
    """
    num = None if num is None else whole_number(num, "num", 1, MAX_IMAGES)
    steps, seed, guidance, sampler_options = _sampling(steps, seed, guidance, sampler, sampler_options)
    if (classes is not None or guidance != 1.0) and not model.class_names:
        require_conditional(model.class_names, _source(model))
    label = None if classes is None else resolve_classes(model.class_names, [classes], _source(model))[0]
    device = next(model.parameters()).device
    splits = run_splits(model.run_config, data=None if data is None else str(data))
    settings = EvaluationSettings(num=num, steps=steps, seed=seed, sampler=sampler, sampler_options=sampler_options,
                                  kid_size=kid_size, reference=reference, label=label, guidance=guidance)
    extractor = load_inception(inception_weights, kid_size, device)
    return evaluate_model(model, splits, extractor, settings, runtime=resolve_runtime(device))
