"""One loader for every model a command or the API takes: a run folder, a checkpoint folder or its weights file, an
exported file, or a built-in model's name. The model comes back with its :class:`~ddim.model.ModelOrigin`."""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import load_checkpoint, resolve_checkpoint
from .config import ConfigError, RunConfig
from .export import BUILTIN_MODELS, builtin_model_path, is_exported, load_exported
from .integrity import CheckpointError
from .layout import RunLayout
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
        if folder != Path(path) and folder.parent != Path(path):  # the latest checkpoint of a run folder
            _check_belongs_to_run(Path(path), folder, config)
        model.origin = ModelOrigin(config, folder, metadata)
    return model


def _check_belongs_to_run(run_dir: Path, folder: Path, config: RunConfig) -> None:
    """Refuse a run's latest checkpoint whose model is not the run's (a step folder copied in from another run):
    sampling it as the run would silently give another model's images."""
    layout = RunLayout(run_dir)
    try:
        run_config = RunConfig.load(layout.config)
    except (OSError, ValueError, ConfigError, TypeError):
        return  # no readable run configuration to compare with: the checkpoint's own is checked at load
    if run_config.model != config.model:
        field = next(name for name, value in vars(config.model).items() if getattr(run_config.model, name) != value)
        raise CheckpointError(f"the latest checkpoint of {run_dir}, {folder.name}, is not this run's model "
                              f"(model.{field}: {getattr(config.model, field)!r} there, "
                              f"{getattr(run_config.model, field)!r} in {layout.config}); was it copied from "
                              f"another run? Move it out, or give the checkpoint folder itself with --checkpoint")
