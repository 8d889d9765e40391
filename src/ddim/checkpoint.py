"""Checkpoints: a folder per checkpoint, written atomically, that alone rebuilds the model.

``checkpoints/step_000000511/`` holds
- ``model.safetensors``: the network, EMA network and normaliser weights (``network.*``, ``ema_network.*``,
  ``normalizer.*``), tagged with ``format = ddim`` in the metadata;
- ``config.json``: the run's :class:`~ddim.config.RunConfig`;
- ``training_state.pt`` (the training-state format, :func:`training_state_dict`): the optimiser state,
  the step, the history, the best validation KID, this epoch's loss sums and every rank's noise
  generator state, read back with ``weights_only=True`` and checked by :func:`read_training_state`.

A checkpoint is written into a hidden temporary folder, flushed to disk, then renamed into place, so
a crash at any moment leaves either the previous checkpoints or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from .config import ADDED_IN_VERSION_3, ConfigError, RunConfig
from .files import fsync_dir, fsync_file
from .model import DiffusionModel

FORMAT = "ddim"
FORMAT_VERSION = "1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "training_state.pt"
CHECKPOINTS_DIR = "checkpoints"
BEST_NAME = "best"
_STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointError(RuntimeError):
    """A missing, truncated, foreign or inconsistent checkpoint."""


@dataclass
class TrainState:
    """Where training stands: optimiser steps taken, the per-epoch history, the best validation KID."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_kid: float | None = None  # the lowest validation KID so far (its checkpoint is checkpoints/best)


def step_dir_name(step: int) -> str:
    """The folder name of the checkpoint taken after ``step`` optimiser steps."""
    return f"step_{step:09d}"


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """A sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding NaN or infinity, or None."""
    return next((name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)


def save_file(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """A safetensors file, serialised in memory and written with a plain file write, so that a full disk is
    an ``OSError`` (safetensors' own ``save_file`` reports it as a ``SafetensorError``)."""
    Path(path).write_bytes(safetensors_bytes(tensors, metadata=metadata))


def write_checkpoint(folder: Path, model: DiffusionModel, config: RunConfig,
                     training_state: dict[str, Any] | None = None) -> Path:
    """Atomically write a checkpoint folder at ``folder`` (replacing one that is there); returns it.

    The weights' metadata carries their sha256 and the model configuration, both checked at every load.
    Non-finite weights are refused: a checkpoint is always one that can be sampled and resumed.
    """
    folder = Path(folder)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    bad = non_finite(tensors)
    if bad is not None:
        raise CheckpointError(f"refusing to write {folder}: the weights hold NaN or infinity ({bad})")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "sha256": tensors_sha256(tensors),
                    "model_config": json.dumps(config.to_dict()["model"])}
        save_file(tensors, staging / WEIGHTS_FILE, metadata=metadata)
        (staging / CONFIG_FILE).write_text(config.to_json())  # the folder as a whole is renamed into place
        if training_state is not None:
            buffer = io.BytesIO()  # torch.save reports a full disk as a RuntimeError: serialise in memory first
            torch.save(training_state, buffer)
            (staging / STATE_FILE).write_bytes(buffer.getvalue())
        for path in staging.iterdir():
            fsync_file(path)
        fsync_dir(staging)
        if folder.exists():  # replacing (e.g. "best"): move the old one aside first, then drop it
            old = folder.parent / f".old-{folder.name}-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            staging.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(folder)
        fsync_dir(folder.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def step_checkpoints(run_dir: Path) -> list[Path]:
    """The run's step checkpoints, oldest first."""
    folder = Path(run_dir) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def _discard(folder: Path) -> None:
    """Remove a checkpoint folder so that no half-deleted ``step_*`` folder can ever be seen: rename, then delete."""
    trash = folder.parent / f".trash-{folder.name}-{os.getpid()}"
    folder.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints (``best`` is never touched) and crash leftovers."""
    folder = Path(run_dir) / CHECKPOINTS_DIR
    for old in step_checkpoints(run_dir)[:-keep]:
        _discard(old)
    for stale in [*folder.glob(".tmp-*"), *folder.glob(".trash-*")]:  # left by a crash mid-write or mid-delete
        shutil.rmtree(stale, ignore_errors=True)
    best = folder / BEST_NAME
    for old_best in sorted(folder.glob(f".old-{BEST_NAME}-*")):
        if not best.exists():  # a crash between moving the old best aside and renaming the new one in
            old_best.rename(best)
        else:
            shutil.rmtree(old_best, ignore_errors=True)


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint folder from a run folder (its latest), a checkpoint folder or its weights file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_file():
        if path.name != WEIGHTS_FILE:
            raise CheckpointError(f"{path} is not a ddim checkpoint (expected a run folder, a checkpoint "
                                  f"folder, its {WEIGHTS_FILE}, an exported model or 'pretrained')")
        path = path.parent
    if (path / WEIGHTS_FILE).is_file():
        return path
    checkpoints = step_checkpoints(path)
    if not checkpoints:
        raise CheckpointError(f"no checkpoint found in {path} (expected {CHECKPOINTS_DIR}/step_*/{WEIGHTS_FILE})")
    return checkpoints[-1]


def read_config(checkpoint: Path, complete: bool = True) -> RunConfig:
    """The run configuration stored in a checkpoint folder (every field present, unless not ``complete``)."""
    config_path = Path(checkpoint) / CONFIG_FILE
    try:
        return RunConfig.from_dict(json.loads(config_path.read_text()), complete=complete)
    except FileNotFoundError as error:
        raise CheckpointError(f"checkpoint {checkpoint} has no {CONFIG_FILE}") from error
    except (json.JSONDecodeError, ConfigError, TypeError) as error:
        raise CheckpointError(f"{config_path} is not a valid ddim configuration: {error}") from error


def load_model(path: Path | str, device: torch.device | str = "cpu") -> tuple[DiffusionModel, RunConfig, Path]:
    """Rebuild the model from a checkpoint; returns model, config and the folder or file it came from.

    ``path``: a run folder (its latest checkpoint), a checkpoint folder, its ``model.safetensors``, a file
    written by ``ddim export``, or ``pretrained`` (the built-in model).
    """
    from . import export

    if str(path) == export.BUILTIN_NAME:
        path = _exported_or_error(export.builtin_model_path)
    if Path(path).is_file() and export.is_exported(Path(path)):
        model, config, _ = _exported_or_error(lambda: export.load_exported(Path(path), device))
        return model, config, Path(path)
    checkpoint = resolve_checkpoint(path)
    config = read_config(checkpoint, complete=False)  # first: does it describe these weights at all?
    weights_path = checkpoint / WEIGHTS_FILE
    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"cannot read {weights_path} (truncated or not a safetensors file): {error}") from error
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{weights_path} is not a ddim checkpoint (its metadata has no format=ddim)")
    _check_weights(weights_path, tensors, metadata, config)
    try:
        model = DiffusionModel(config.model)
    except ValueError as error:  # e.g. a conditional model without its class names
        raise CheckpointError(f"{checkpoint / CONFIG_FILE} does not describe a model ddim can build: {error}") from error
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{weights_path} does not match the model its {CONFIG_FILE} describes: "
                              f"{str(error).splitlines()[0]}") from error
    read_config(checkpoint)  # then: a missing field would silently take today's default
    return model.to(device), config, checkpoint


def _check_weights(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str], config: RunConfig) -> None:
    """The weights' checksum, finiteness and agreement with the configuration (checkpoints of ddim 0.1
    carry no checksum or model configuration in their metadata: those two checks need them)."""
    if "sha256" in metadata and tensors_sha256(tensors) != metadata["sha256"]:
        raise CheckpointError(f"{path} is damaged: its weights do not match the sha256 in its metadata")
    bad = non_finite(tensors)
    if bad is not None:
        raise CheckpointError(f"{path} holds NaN or infinite weights ({bad}); use an earlier checkpoint")
    if "model_config" in metadata:
        written = {**ADDED_IN_VERSION_3["model"], **json.loads(metadata["model_config"])}  # older writers lack these
        now = config.to_dict()["model"]
        changed = sorted(key for key in set(written) | set(now) if written.get(key) != now.get(key))
        if changed:
            raise CheckpointError(f"{path} does not match the model its {CONFIG_FILE} describes: model."
                                  f"{changed[0]} is {now.get(changed[0])!r} there, {written.get(changed[0])!r} "
                                  "when the weights were written")


def _exported_or_error(load):
    from .export import ExportError

    try:
        return load()
    except ExportError as error:
        raise CheckpointError(str(error)) from error


def training_state_dict(state: TrainState, optimizer: torch.optim.Optimizer, noise_generators: list[torch.Tensor],
                        epoch_totals: torch.Tensor, data_fingerprint: str, epoch_seconds: float = 0.0,
                        epoch_timed_steps: int = 0) -> dict[str, Any]:
    """The contents of ``training_state.pt``: everything besides the weights that an exact resume needs.

    ``epoch_seconds``: how long the current epoch's first ``epoch_timed_steps`` steps took, so that a resumed
    epoch's history row reports the whole epoch's time and images/s, not only the part after the resume.
    """
    return {"step": state.step, "history": state.history, "best_kid": state.best_kid,
            "optimizer": optimizer.state_dict(), "noise_generators": noise_generators,
            "epoch_totals": epoch_totals.detach().cpu(), "world_size": len(noise_generators),
            "data_fingerprint": data_fingerprint, "epoch_seconds": float(epoch_seconds),
            "epoch_timed_steps": int(epoch_timed_steps)}


def read_training_state(checkpoint: Path) -> tuple[TrainState, dict[str, Any]]:
    """A checkpoint's :class:`TrainState` and its raw training state, checked for the entries a resume needs."""
    raw = load_training_state(checkpoint)
    generators = raw.get("noise_generators")
    if not isinstance(raw.get("step"), int) or not isinstance(raw.get("history"), list) or \
            not isinstance(raw.get("optimizer"), dict) or not isinstance(generators, list):
        raise CheckpointError(f"{Path(checkpoint) / STATE_FILE} lacks the step, history, optimizer or "
                              "noise_generators entries a resume needs")
    return TrainState(step=raw["step"], history=list(raw["history"]), best_kid=raw.get("best_kid")), raw


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    """The optimiser state, counters, history and generator states of a checkpoint."""
    state_path = Path(checkpoint) / STATE_FILE
    try:
        return torch.load(state_path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise CheckpointError(f"checkpoint {checkpoint} has no {STATE_FILE}, so training cannot resume from it") from error
    except Exception as error:  # torch raises several types for a damaged file
        raise CheckpointError(f"cannot read {state_path} (truncated or foreign): {error}") from error
