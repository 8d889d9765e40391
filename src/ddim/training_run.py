"""Setting up a training run: everything :func:`ddim.train.fit` works with, built once, in one place.

:func:`build_run` resolves the process group (torchrun), the device and speed levers, checks the
batch against the processes, prepares the run folder, loads the Inception network and the images,
builds the model, its DistributedDataParallel wrapper and the optimiser, and, for a resume, restores
the newest readable checkpoint after checking that the configuration continues the same computation.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from . import checkpoint as ckpt
from .config import RunConfig
from .data import DataWarning, DeviceImages, ImageSplits, TrainBatches, run_splits
from .data.dataset import content_fingerprint
from .distributed import Distributed, from_environment
from .files import FolderLock, FolderLocked
from .metrics.inception import InceptionFeatures, extract_features, load_inception
from .model import DiffusionModel
from .seeding import TRAINING_NOISE, generator
from .speed import DeviceError, Speed, resolve_device, resolve_speed
from .training_step import LOSS_NAMES, TrainStep, build_optimizer

# Settings that fix what a run computes: a resume may not change them (epochs, max_steps, device,
# logging and checkpoint cadence may change).
RESUME_FIXED = {"data": ("split_seed", "train_fraction", "repeats", "train_images", "validation_images", "flip"),
                "train": ("batch_size", "seed", "loss", "ema", "ema_warmup", "ema_std", "class_dropout",
                          "lr_schedule", "lr_warmup_steps", "lr_decay_steps", "lr_floor")}
Progress = Callable[[str, int], Callable[[int], None]]


class TrainingError(RuntimeError):
    """Training cannot start or go on (an unusable run folder, a diverged loss, a failed checkpoint)."""


class TrainingInterrupted(TrainingError):
    """SIGINT or SIGTERM stopped training after a checkpoint was saved."""

    def __init__(self, signal_name: str, checkpoint: Path, run_dir: Path) -> None:
        super().__init__(f"{signal_name} received: stopped after saving {checkpoint}; "
                         f"continue with: ddim train --resume {run_dir}")
        self.signal_name = signal_name
        self.exit_code = 130 if signal_name == "SIGINT" else 143


@dataclass
class TrainingRun:
    """Everything the loop works with."""

    config: RunConfig
    run_dir: Path
    distributed: Distributed
    speed: Speed
    splits: ImageSplits
    model: DiffusionModel
    optimizer: torch.optim.Optimizer
    train_step: TrainStep
    noise_generator: torch.Generator
    batches: TrainBatches
    validation: DeviceImages
    kid_extractor: InceptionFeatures | None
    kid_real: np.ndarray | None
    state: ckpt.TrainState
    epoch_totals: torch.Tensor  # sums of this epoch's losses so far (checkpointed, for an exact resume)
    nonfinite: torch.Tensor  # set on the device when a loss is NaN or inf; read only at log/save points
    data_fingerprint: str  # sha256 of the train and validation pixels: a resume must see the same images
    lock: FolderLock | None  # rank 0's exclusive lock on the run folder, held until fit ends
    notices: list[str]  # what setup must tell the user (a checkpoint it could not read, ...)
    epoch_seconds: float = 0.0  # how long this epoch's timed steps took, across resumes (checkpointed)
    epoch_timed_steps: int = 0  # how many of this epoch's steps that covers (all of them since ddim 0.3)


def run_length(config: RunConfig, steps_per_epoch: int) -> int:
    """The run's optimiser steps: its epochs, or ``max_steps`` if fewer."""
    total = config.train.epochs * steps_per_epoch
    return total if config.train.max_steps is None else min(total, config.train.max_steps)


def with_decay_horizon(config: RunConfig, steps_per_epoch: int) -> RunConfig:
    """A cosine schedule's config with its default horizon (the run's last step) recorded, so a resumed or extended
    run keeps the curve it started on."""
    train = config.train
    if train.lr_schedule != "cosine" or train.lr_decay_steps is not None:
        return config
    horizon = max(run_length(config, steps_per_epoch), train.lr_warmup_steps)
    return dataclasses.replace(config, train=dataclasses.replace(train, lr_decay_steps=horizon))


def train_speed(config: RunConfig, local_rank: int = 0) -> Speed:
    """The speed settings a run's config asks for, on its device."""
    train = config.train
    try:
        device = resolve_device(train.device, local_rank)
    except DeviceError as error:
        raise TrainingError(str(error)) from error
    return resolve_speed(device, train.precision, train.channels_last, train.compile)


def prepare_run_dir(run_dir: Path, resume: bool, distributed: Distributed = Distributed()) -> FolderLock | None:
    """Create and lock the run folder (rank 0), refusing another process's run, an existing run (unless
    resuming) and an unwritable folder; returns rank 0's lock (None on other ranks)."""
    run_dir = Path(run_dir)
    lock = None
    failure = None
    if distributed.is_main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            lock = FolderLock(run_dir).acquire()
            probe = run_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
            if not resume and (ckpt.step_checkpoints(run_dir) or (run_dir / "config.json").exists()):
                failure = (f"run folder {run_dir} already holds a run; resume it with --resume {run_dir} "
                           "or choose another --run-dir")
        except FolderLocked as error:
            failure = f"{error}; wait for it to finish or stop it (a run folder takes one training at a time)"
        except OSError as error:
            failure = f"cannot write to run folder {run_dir}: {error.strerror or error}"
        if failure and lock is not None:
            lock.release()
    failure = distributed.broadcast(failure)
    if failure:
        raise TrainingError(failure)
    return lock


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
                raise TrainingError(f"cannot resume {where}: {section}.{name} was {before!r}, now {now!r}; "
                                    "it fixes the data order or the objective, so a resumed run could not "
                                    "continue the same computation")


def build_run(config: RunConfig, run_dir: Path, *, resume: bool = False, splits: ImageSplits | None = None,
              kid_extractor: InceptionFeatures | None = None, progress: Progress | None = None) -> TrainingRun:
    """Everything a run needs, in the order that fails fastest: settings, folder, weights files, images."""
    train = config.train
    distributed = from_environment()
    speed = train_speed(config, distributed.local_rank)
    if train.batch_size % distributed.world_size:
        raise TrainingError(f"--batch-size {train.batch_size} is the global batch and must be divisible by the "
                            f"{distributed.world_size} processes")
    lock = prepare_run_dir(run_dir, resume, distributed)
    try:
        return _build(config, run_dir, resume, splits, kid_extractor, progress, distributed, speed, lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _build(config: RunConfig, run_dir: Path, resume: bool, splits: ImageSplits | None,
           kid_extractor: InceptionFeatures | None, progress: Progress | None, distributed: Distributed,
           speed: Speed, lock: FolderLock | None) -> TrainingRun:
    train, device = config.train, speed.device
    if train.kid_every and kid_extractor is None:  # missing Inception weights fail now, not after an epoch
        kid_extractor = load_inception(train.inception_weights, train.kid_image_size, device)
    if splits is None:
        splits = _load_images(config, distributed, progress)
    config = with_classes(config, splits)
    conditional = config.model.conditional
    try:
        batches = TrainBatches(splits.train, batch_size=train.batch_size, repeats=config.data.repeats,
                               seed=train.seed, device=device, rank=distributed.rank,
                               world_size=distributed.world_size, labels=splits.train_labels if conditional else None,
                               flip=config.data.flip)
    except ValueError as error:
        raise TrainingError(f"--batch-size {train.batch_size} is too large for this data: {error}") from error
    config = with_decay_horizon(config, batches.steps_per_epoch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train.seed)  # the initial weights come from the run seed alone
        model = DiffusionModel(config.model)
    model.normalizer.adapt(splits.train)
    model.to(device=device, memory_format=speed.memory_format())
    network: nn.Module = model.network
    if distributed.enabled:
        if _sync_batchnorm(train.batchnorm, device):
            model.network = nn.SyncBatchNorm.convert_sync_batchnorm(model.network)
        network = nn.parallel.DistributedDataParallel(
            model.network, device_ids=[device.index] if device.type == "cuda" else None, **_NO_BUFFER_SYNC)
    optimizer = build_optimizer(model, config, speed)
    run = TrainingRun(
        config=config, run_dir=run_dir, distributed=distributed, speed=speed, splits=splits, model=model,
        optimizer=optimizer, train_step=TrainStep(model, optimizer, config, speed, network=network,
                                                  distributed=distributed,
                                                  total_steps=run_length(config, batches.steps_per_epoch)),
        noise_generator=generator(train.seed, TRAINING_NOISE, distributed.rank, device=device), batches=batches,
        validation=DeviceImages(splits.validation, device, splits.validation_labels if conditional else None),
        kid_extractor=kid_extractor, kid_real=None,
        state=ckpt.TrainState(), epoch_totals=torch.zeros(len(LOSS_NAMES), dtype=torch.float64, device=device),
        nonfinite=torch.zeros((), dtype=torch.bool, device=device), data_fingerprint=data_fingerprint(splits),
        lock=lock, notices=[])
    if train.kid_every and distributed.is_main:
        run.kid_real = extract_features(kid_extractor.to(device), splits.validation)
    if resume:
        _restore(run)
    if distributed.is_main:
        config.save(run_dir / "config.json")
    return run


def with_classes(config: RunConfig, splits: ImageSplits) -> RunConfig:
    """A conditional run's config with the data's class names recorded (a resumed run's must be the same)."""
    model = config.model
    if not model.conditional:
        return config
    if splits.train_labels is None or not splits.class_names:
        raise TrainingError(f"--conditional needs class labels, and {splits.folder} has none: use the Flowers 102 "
                            "layout or one subfolder per class")
    if model.class_names and model.class_names != splits.class_names:
        changed = next((f"class {i} is {a!r} there, {b!r} in the data" for i, (a, b)
                        in enumerate(zip(model.class_names, splits.class_names)) if a != b),
                       f"{len(model.class_names)} classes there, {len(splits.class_names)} in the data")
        raise TrainingError(f"the configuration's classes differ from those of {splits.folder}: {changed}")
    return dataclasses.replace(config, model=dataclasses.replace(model, class_names=splits.class_names))


def data_fingerprint(splits: ImageSplits) -> str:
    """sha256 of the train and validation pixels, wherever they were read from (a resume must see the same)."""
    return content_fingerprint(splits.train, splits.validation)


def _load_images(config: RunConfig, distributed: Distributed, progress: Progress | None) -> ImageSplits:
    """Rank 0 decodes and caches the images first; the other ranks then read its cache."""
    if not distributed.is_main:
        distributed.barrier()
    with warnings.catch_warnings():  # upscaled images are reported with the run's notices instead
        warnings.simplefilter("ignore", DataWarning)
        splits = run_splits(config, progress=progress if distributed.is_main else None)
    if distributed.is_main:
        distributed.barrier()
    return splits


# BatchNorm statistics are kept in step explicitly (SyncBatchNorm, or averaged after each step), so DDP's
# per-forward buffer broadcast is off; torch 2.14 renamed the option.
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters
                   else {"broadcast_buffers": False})


def _sync_batchnorm(mode: str, device: torch.device) -> bool:
    if mode == "sync" and device.type != "cuda":
        raise TrainingError("--batchnorm sync needs CUDA GPUs (PyTorch's SyncBatchNorm); use --batchnorm local")
    return mode == "sync" or (mode == "auto" and device.type == "cuda")


def _restore(run: TrainingRun) -> None:
    """Load the newest readable checkpoint of the run (or start afresh if it has none).

    A checkpoint that cannot be read is moved aside (``checkpoints/unreadable-step_*``, kept for
    inspection) and the fallback is said, so it can neither be taken for the newest one again nor
    make pruning delete the readable ones.
    """
    errors = []
    for folder in reversed(ckpt.step_checkpoints(run.run_dir)):
        try:
            saved, saved_config, _ = ckpt.load_model(folder, device=run.speed.device)
            state, raw = ckpt.read_training_state(folder)
            break
        except ckpt.CheckpointError as error:
            errors.append(str(error))
            if run.distributed.is_main:
                aside = folder.with_name(f"unreadable-{folder.name}")
                for attempt in range(2, 1000):
                    if not aside.exists():
                        break
                    aside = folder.with_name(f"unreadable-{folder.name}-{attempt}")
                folder.rename(aside)
                run.notices.append(f"checkpoint {folder.name} is unreadable ({error}); moved it to {aside} "
                                   "and resumed from the one before")
    else:
        if errors:
            raise TrainingError(f"cannot resume {run.run_dir}: no readable checkpoint ({'; '.join(errors)})")
        return  # interrupted before its first checkpoint: the run starts from the beginning
    check_resume_config(saved_config, run.config, folder)
    if raw.get("data_fingerprint", run.data_fingerprint) != run.data_fingerprint:
        raise TrainingError(f"cannot resume {folder}: the images of --data {run.config.data.path} are not the ones "
                            "the run was trained on (their pixels differ); resume with the original --data")
    generators = raw["noise_generators"]
    if len(generators) != run.distributed.world_size:
        raise TrainingError(f"cannot resume {folder} exactly: it was written by {len(generators)} processes, this "
                            f"run has {run.distributed.world_size}")
    _check_optimizer_state(raw["optimizer"], run.optimizer, folder)
    run.model.load_state_dict(saved.state_dict(), strict=True)  # same config, so the same tensors
    run.optimizer.load_state_dict(raw["optimizer"])
    run.noise_generator.set_state(generators[run.distributed.rank].to(run.noise_generator.get_state().device))
    if "epoch_totals" in raw:
        run.epoch_totals.copy_(raw["epoch_totals"])
    # absent before ddim 0.3: the resumed epoch's row then times only the steps after the resume
    run.epoch_seconds, run.epoch_timed_steps = float(raw.get("epoch_seconds", 0.0)), int(raw.get("epoch_timed_steps", 0))
    run.state = state


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
