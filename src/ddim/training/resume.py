"""Resuming a run: the newest readable checkpoint restored into the setup's model and optimiser, and the progress
it recorded, after checking that the configuration and the images continue the same computation."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from .. import checkpoint as ckpt
from ..config import ConfigError, RunConfig
from ..config.fields import field_option, shown
from ..reading import ReadError
from ..layout import CheckpointLayout, RunLayout
from .errors import TrainingError
from .progress import TrainProgress
from .setup import TrainingSetup

# Settings that fix what a run computes: a resume may not change them (epochs, max_steps, device,
# logging and checkpoint cadence may change; the learning rate and weight decay apply from the resumed step on).
RESUME_FIXED = {"data": ("split_seed", "train_fraction", "repeats", "train_images", "validation_images", "flip"),
                "train": ("batch_size", "seed", "loss", "ema", "ema_warmup", "ema_std", "class_dropout",
                          "lr_schedule", "lr_warmup_steps", "lr_decay_steps", "lr_floor")}


def saved_config(run_dir: Path) -> RunConfig:
    """The configuration a run folder records (its config.json): what resuming it continues with, from the CLI
    and the API alike (a :class:`ddim.integrity.CheckpointError` naming the folder if it holds none)."""
    saved = RunLayout(run_dir).config
    if not Path(run_dir).is_dir():
        raise ckpt.CheckpointError(f"cannot resume {run_dir}: there is no such folder")
    if not saved.exists():
        raise ckpt.CheckpointError(f"cannot resume {run_dir}: no {saved.name} there, so it is not a ddim run folder")
    try:
        return RunConfig.load(saved)
    except ReadError as error:  # the message names the file
        raise ckpt.CheckpointError(f"cannot resume {run_dir}: {error}") from error
    except (ValueError, ConfigError, TypeError) as error:
        raise ckpt.CheckpointError(f"cannot resume {run_dir}: {saved} is not a valid ddim configuration: {error}") \
            from error


def check_resume_config(saved: RunConfig, config: RunConfig, where: Path) -> None:
    """Refuse a resume whose configuration would change what the run computes."""
    if saved.model != config.model:
        changed = [k for k, v in vars(config.model).items() if getattr(saved.model, k) != v]
        raise TrainingError(f"cannot resume {where}: the model configuration differs from the checkpoint's "
                            f"(model.{changed[0]}: {getattr(saved.model, changed[0])!r} there, "
                            f"{getattr(config.model, changed[0])!r} now)")
    for section, names in RESUME_FIXED.items():
        for name in names:
            before, now = getattr(getattr(saved, section), name), getattr(getattr(config, section), name)
            if before != now:
                option = field_option(next(spec for spec in fields(getattr(config, section)) if spec.name == name))
                raise TrainingError(f"cannot resume {where}: {option} was {shown(before)}, now "
                                    f"{shown(now)}; {_why_fixed(section, name)}, so the resumed run would not "
                                    f"be the run it continues. To train with {option} {shown(now)}, start a new "
                                    f"run from this one's settings: ddim train --config {CheckpointLayout(where).config} "
                                    f"{option} {shown(now)} --run-dir NEW_FOLDER")


def _why_fixed(section: str, name: str) -> str:
    """Why a resume may not change this field, in the user's terms."""
    if section == "data" or name in ("batch_size", "seed"):
        return "it fixes which images are trained on, in what order and with what noise"
    if name.startswith("ema"):
        return "it fixes how the EMA network (the one that draws every sample) averages the weights it has seen"
    if name.startswith("lr_"):
        return "it fixes the learning-rate schedule (the peak, --lr, may change on a resume)"
    return "it fixes the training objective"


def _check_state_belongs(folder: Path, raw: dict[str, Any], metadata: dict[str, str]) -> None:
    """Refuse a training state that was not written with this checkpoint's weights (copied in from another
    checkpoint or run): resuming it would pair one run's optimiser and data order with another's weights."""
    checkpoint = CheckpointLayout(folder)
    written_with = raw.get("weights_sha256")  # absent before ddim 0.4: only the step can be compared
    if written_with is not None and written_with != metadata.get("sha256"):
        reason = "it was written with other weights"
    elif checkpoint.step is not None and raw["step"] != checkpoint.step:
        reason = f"it is the state of step {raw['step']}"
    else:
        return
    raise TrainingError(f"cannot resume {folder}: its {checkpoint.training_state.name} does not belong to its "
                        f"{checkpoint.weights.name} ({reason}); it was copied from another checkpoint or run. Put "
                        "back this checkpoint's own training state, or move this checkpoint out to resume from the "
                        "one before")


def restore(setup: TrainingSetup) -> tuple[TrainProgress, list[str]]:
    """The progress of the newest readable checkpoint of the run, its weights and optimiser state loaded into the
    setup's (a fresh start if it has none); returns the progress and what the user must be told.

    A checkpoint that cannot be read is moved aside (``unreadable-step_*`` beside it, kept for inspection) and
    the fallback is said, so it can neither be taken for the newest one again nor make pruning delete the
    readable ones.
    """
    errors, notices = [], []
    if setup.session.distributed.is_main:
        ckpt.recover_interrupted_writes(setup.layout.root)  # a crash while a checkpoint was written or replaced
    progress = TrainProgress.start(setup)
    for folder in reversed(setup.layout.step_checkpoints()):
        try:
            saved, saved_config, metadata = ckpt.load_checkpoint(folder, device=setup.session.runtime.device)
            state, raw = ckpt.read_training_state(folder)
            break
        except ckpt.CheckpointError as error:
            errors.append(str(error))
            if setup.session.distributed.is_main:
                aside = _aside(folder)
                folder.rename(aside)
                notices.append(f"checkpoint {folder.name} is unreadable ({error}); moved it to {aside} "
                               "and resumed from the one before")
    else:
        if errors:
            raise TrainingError(f"cannot resume {setup.layout.root}: no readable checkpoint ({'; '.join(errors)})")
        return progress, notices  # interrupted before its first checkpoint: the run starts from the beginning
    _check_state_belongs(folder, raw, metadata)
    check_resume_config(saved_config, setup.config, folder)
    if raw.get("data_fingerprint", setup.pixels_sha256) != setup.pixels_sha256:
        raise TrainingError(f"cannot resume {folder}: the images of --data {setup.config.data.path} are not the ones "
                            "the run was trained on (their pixels differ); resume with the original --data")
    generators = raw["noise_generators"]
    distributed = setup.session.distributed
    if len(generators) != distributed.world_size:
        raise TrainingError(f"cannot resume {folder} exactly: it was written by {len(generators)} processes, this "
                            f"run has {distributed.world_size}")
    _check_optimizer_state(raw["optimizer"], setup.optimizer, folder)
    setup.model.load_state_dict(saved.state_dict(), strict=True)  # same config, so the same tensors
    setup.optimizer.load_state_dict(raw["optimizer"])
    try:
        progress.noise_generator.set_state(generators[distributed.rank].to(progress.noise_generator.get_state().device))
    except RuntimeError as error:  # e.g. a 7-byte state, or one of another device's generator
        raise TrainingError(f"cannot resume {folder}: its noise generator state is not one this device's generator "
                            f"takes ({str(error).splitlines()[0]})") from error
    if "epoch_totals" in raw:
        if raw["epoch_totals"].shape != progress.epoch_totals.shape:
            raise TrainingError(f"cannot resume {folder}: its epoch_totals hold {tuple(raw['epoch_totals'].shape)} "
                                f"sums, this run keeps {tuple(progress.epoch_totals.shape)}")
        progress.epoch_totals.copy_(raw["epoch_totals"])
    # absent before ddim 0.3: the resumed epoch's row then times only the steps after the resume
    progress.epoch_seconds = float(raw.get("epoch_seconds", 0.0))
    progress.epoch_timed_steps = int(raw.get("epoch_timed_steps", 0))
    progress.state = state
    return progress, notices


def _aside(folder: Path) -> Path:
    """A free name beside ``folder`` for an unreadable checkpoint: ``unreadable-NAME`` (``-2``, ``-3``... if taken)."""
    aside = folder.with_name(f"unreadable-{folder.name}")
    for attempt in range(2, 1000):
        if not aside.exists():
            break
        aside = folder.with_name(f"unreadable-{folder.name}-{attempt}")
    return aside


def _check_optimizer_state(saved: Any, optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Refuse an optimiser state that does not fit this model before PyTorch sees it (it would assert or crash)."""
    def refuse(why: str) -> None:
        raise TrainingError(f"cannot resume {folder}: its optimiser state {why}")

    groups, state = (saved.get("param_groups"), saved.get("state")) if isinstance(saved, dict) else (None, None)
    if not isinstance(groups, list) or not isinstance(state, dict) or \
            not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        refuse("lacks its param_groups or state")
    saved_ids = [index for group in groups for index in group["params"]]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if len(saved_ids) != len(params):
        refuse(f"holds {len(saved_ids)} tensors, this model has {len(params)}")
    for index, param in zip(saved_ids, params):
        entry = state.get(index, {})
        if not isinstance(entry, dict):
            refuse(f"entry {index} is a {type(entry).__name__}, not a dictionary")
        for key in ("exp_avg", "exp_avg_sq"):
            if key in entry and (not isinstance(entry[key], torch.Tensor) or entry[key].shape != param.shape):
                refuse(f"{key} of tensor {index} does not have this model's shape {tuple(param.shape)}")
