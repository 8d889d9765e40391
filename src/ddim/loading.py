"""One loader for every model a command or the API takes: a run folder, a checkpoint folder or its weights file, an
exported file, or a built-in model's name. The model comes back with its :class:`~ddim.model.ModelOrigin`."""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import load_checkpoint, resolve_checkpoint
from .export import BUILTIN_MODELS, builtin_model_path, is_exported, load_exported
from .model import DiffusionModel, ModelOrigin


def load_model(path: Path | str, device: torch.device | str = "cpu") -> DiffusionModel:
    """The model ``path`` names, on ``device``, its ``origin`` set (configuration, source, metadata).

    ``path``: a run folder (its latest checkpoint), a checkpoint folder, its weights file, a file written by
    ``ddim export``, or a built-in model's name (``pretrained``). Every failure is a
    :class:`~ddim.integrity.CheckpointError` naming the file and what is wrong with it.
    """
    if str(path) in BUILTIN_MODELS:
        file = builtin_model_path(str(path))
        model, config, metadata = load_exported(file, device)
        model.origin = ModelOrigin(config, file, metadata, builtin=str(path))
    elif is_exported(Path(path)):
        model, config, metadata = load_exported(Path(path), device)
        model.origin = ModelOrigin(config, Path(path), metadata)
    else:
        folder = resolve_checkpoint(Path(path))
        model, config, metadata = load_checkpoint(folder, device)
        model.origin = ModelOrigin(config, folder, metadata)
    return model
