"""Checkpoints: a folder per checkpoint, written atomically, that alone rebuilds the model.

A checkpoint folder (its names: :class:`ddim.layout.CheckpointLayout`) holds
- the weights: the network, EMA network and normaliser (``network.*``, ``ema_network.*``, ``normalizer.*``),
  tagged with ``format = ddim``, their sha256 and the model configuration in the metadata;
- the run's :class:`~ddim.config.RunConfig`;
- the training state (:func:`training_state_dict`): the optimiser state, the step, the history, the best
  validation KID, this epoch's loss sums and every rank's noise generator state, read back with
  ``weights_only=True`` and checked by :func:`read_training_state`.

A checkpoint is written into a hidden temporary folder, flushed to disk, then renamed into place, so
a crash at any moment leaves either the previous checkpoints or the new one, never half of one.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, RunConfig, with_added_fields
from .files import fsync_dir, fsync_file
from .integrity import CheckpointError, check_dtypes, check_tensors, non_finite, read_safetensors, tensors_sha256, write_safetensors
from .layout import CheckpointLayout, RunLayout
from .model import DiffusionModel
from .reading import ReadError, parse_json, read_json
from .training_state import TrainState, load_training_state, read_training_state, training_state_dict

FORMAT = "ddim"
FORMAT_VERSION = "1"
__all__ = ["CheckpointError", "TrainState", "write_checkpoint", "prune_checkpoints", "resolve_checkpoint",
           "read_config", "load_checkpoint", "training_state_dict", "read_training_state", "load_training_state"]


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
    staging = CheckpointLayout(Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent)))
    try:
        metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "sha256": tensors_sha256(tensors),
                    "model_config": json.dumps(config.to_dict()["model"])}
        write_safetensors(tensors, staging.weights, metadata=metadata)
        staging.config.write_text(config.to_json())  # the folder as a whole is renamed into place
        if training_state is not None:  # bound to these weights: a state copied in from elsewhere is refused
            training_state = {**training_state, "weights_sha256": metadata["sha256"]}
            buffer = io.BytesIO()  # torch.save reports a full disk as a RuntimeError: serialise in memory first
            torch.save(training_state, buffer)
            staging.training_state.write_bytes(buffer.getvalue())
        for path in staging.folder.iterdir():
            fsync_file(path)
        fsync_dir(staging.folder)
        if folder.exists():  # replacing (e.g. "best"): move the old one aside first, then drop it
            old = folder.parent / f".old-{folder.name}-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            staging.folder.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.folder.rename(folder)
        fsync_dir(folder.parent)
    except BaseException:
        shutil.rmtree(staging.folder, ignore_errors=True)
        raise
    return folder


def _discard(folder: Path) -> None:
    """Remove a checkpoint folder so that no half-deleted step folder can ever be seen: rename, then delete."""
    trash = folder.parent / f".trash-{folder.name}-{os.getpid()}"
    folder.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints (the best is never touched) and crash leftovers, after
    finishing a write or replacement that a crash interrupted (:func:`recover_interrupted_writes`)."""
    run = RunLayout(Path(run_dir))
    recover_interrupted_writes(run.root)
    for old in run.step_checkpoints()[:-keep]:
        _discard(old)
    for stale in [*run.checkpoints.glob(".tmp-*"), *run.checkpoints.glob(".trash-*")]:  # a crash mid-write/delete
        shutil.rmtree(stale, ignore_errors=True)


def recover_interrupted_writes(run_dir: Path) -> None:
    """Finish what a crash interrupted while a checkpoint folder (``best``, or a step folder written again) was
    being written or replaced.

    :func:`write_checkpoint` writes the new folder completely into ``.tmp-NAME-*`` (every file synced), moves an
    existing one aside to ``.old-NAME-*``, renames the new one in, then deletes the old one. So a complete
    staging folder is always the newest NAME: it is renamed in (an existing one moved aside first, as before);
    only when there is none is a folder that was moved aside put back. An incomplete staging folder (a crash
    while it was written) is left for pruning.
    """
    run = RunLayout(Path(run_dir))
    if not run.checkpoints.is_dir():
        return
    leftovers = [*run.checkpoints.glob(".tmp-*-*"), *run.checkpoints.glob(".old-*-*")]
    for name in sorted({path.name.split("-")[1] for path in leftovers if path.is_dir()}):
        _finish_replacement(run.checkpoints / name)


def _finish_replacement(target: Path) -> None:
    """:func:`recover_interrupted_writes` for the checkpoint folder ``target``."""
    parent = target.parent
    staged = [folder for folder in parent.glob(f".tmp-{target.name}-*") if _complete(folder)]
    olds = sorted(parent.glob(f".old-{target.name}-*"), key=lambda folder: folder.stat().st_mtime)
    if staged:
        newest = max(staged, key=lambda folder: folder.stat().st_mtime)
        if target.exists():
            aside = parent / f".old-{target.name}-{os.getpid()}"
            shutil.rmtree(aside, ignore_errors=True)
            target.rename(aside)
            olds.append(aside)
        newest.rename(target)
        fsync_dir(parent)
    elif not target.exists() and olds:
        olds.pop().rename(target)
        fsync_dir(parent)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


def _complete(folder: Path) -> bool:
    """Whether a staged checkpoint folder was written to its end: its weights match their checksum and its
    configuration and training state are there."""
    checkpoint = CheckpointLayout(folder)
    if not (checkpoint.config.is_file() and checkpoint.training_state.is_file()):
        return False
    try:
        tensors, metadata = read_safetensors(checkpoint.weights)
        check_tensors(checkpoint.weights, tensors, metadata, required=True)
        read_json(checkpoint.config)
    except (CheckpointError, OSError, ValueError):
        return False
    return True


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint folder from a run folder (its latest), a checkpoint folder or its weights file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_file():
        if path.name != CheckpointLayout(path.parent).weights.name:
            raise CheckpointError(f"{path} is not a ddim checkpoint (expected a run folder, a checkpoint "
                                  f"folder, its {CheckpointLayout(path.parent).weights.name}, an exported model or "
                                  "a built-in model's name)")
        path = path.parent
    if CheckpointLayout(path).weights.is_file():
        return path
    checkpoints = RunLayout(path).step_checkpoints()
    if not checkpoints:
        example = RunLayout(path).step_checkpoint(511)
        raise CheckpointError(f"no checkpoint found in {path} (expected folders such as "
                              f"{example.weights.relative_to(path)})")
    return checkpoints[-1]


def read_config(folder: Path, complete: bool = True) -> RunConfig:
    """The run configuration stored in a checkpoint folder (every field present, unless not ``complete``)."""
    checkpoint = CheckpointLayout(Path(folder))
    try:
        return RunConfig.from_dict(read_json(checkpoint.config), complete=complete)
    except FileNotFoundError as error:
        raise CheckpointError(f"checkpoint {checkpoint.folder} has no {checkpoint.config.name}") from error
    except ReadError as error:  # a folder, a pipe, a device, not UTF-8 JSON: the message names the file
        raise CheckpointError(str(error)) from error
    except (ValueError, ConfigError, TypeError) as error:
        raise CheckpointError(f"{checkpoint.config} is not a valid ddim configuration: {error}") from error


def load_checkpoint(folder: Path, device: torch.device | str = "cpu") -> tuple[DiffusionModel, RunConfig, dict[str, str]]:
    """Rebuild the model of a checkpoint folder (checksum, finiteness and configuration checked); returns the model,
    its run configuration and the weights' metadata."""
    checkpoint = CheckpointLayout(Path(folder))
    config = read_config(folder, complete=False)  # first: does it describe these weights at all?
    tensors, metadata = read_safetensors(checkpoint.weights)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{checkpoint.weights} is not a ddim checkpoint (its metadata has no format=ddim)")
    check_tensors(checkpoint.weights, tensors, metadata, required=False)  # ddim 0.1 wrote no checksum
    if "model_config" in metadata:  # absent before ddim 0.2
        try:
            written = with_added_fields("model", parse_json(metadata["model_config"], f"{checkpoint.weights}'s metadata"))
        except (ValueError, TypeError) as error:
            raise CheckpointError(f"{checkpoint.weights}: its metadata's model_config is damaged ({error})") from error
        now = config.to_dict()["model"]
        changed = sorted(key for key in set(written) | set(now) if written.get(key) != now.get(key))
        if changed:
            raise CheckpointError(f"{checkpoint.weights} does not match the model its {checkpoint.config.name} "
                                  f"describes: model.{changed[0]} is {now.get(changed[0])!r} there, "
                                  f"{written.get(changed[0])!r} when the weights were written")
    try:
        model = DiffusionModel(config.model)
    except ValueError as error:  # e.g. a conditional model without its class names
        raise CheckpointError(f"{checkpoint.config} does not describe a model ddim can build: {error}") from error
    check_dtypes(checkpoint.weights, tensors, model.state_dict())
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{checkpoint.weights} does not match the model its {checkpoint.config.name} "
                              f"describes: {str(error).splitlines()[0]}") from error
    read_config(folder)  # then: a missing field would silently take today's default
    return model.to(device), config, metadata
