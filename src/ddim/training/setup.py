"""Setting up a training run: what stays fixed while it trains, built once, in the order that fails fastest.

:func:`build_setup` checks the batch against the processes, prepares and locks the run folder, loads the
Inception network and the images, and builds the model, its DistributedDataParallel wrapper, the optimiser and
the training step. What changes as training goes on (the step, the history, the generator) is
:class:`~ddim.training.progress.TrainProgress`, restored from a checkpoint by :mod:`ddim.training.resume`.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..config import RunConfig
from ..data import DataWarning, DeviceImages, ImageSplits, TrainBatches, run_splits
from ..data.dataset import content_fingerprint
from ..files import FolderLock, FolderLocked
from ..layout import RunLayout
from ..metrics.inception import InceptionFeatures, extract_features, load_inception
from ..model import DiffusionModel
from .errors import TrainingError
from .session import Session
from .step import TrainStep, build_optimizer

Progress = Callable[[str, int], Callable[[int], None]]


@dataclass(frozen=True)
class TrainingSetup:
    """What a run trains with; fixed once built (the model's and optimiser's tensors change, not which they are)."""

    config: RunConfig  # with what training recorded: the data's class names, a cosine schedule's horizon
    layout: RunLayout
    session: Session
    splits: ImageSplits
    model: DiffusionModel
    optimizer: torch.optim.Optimizer
    train_step: TrainStep
    batches: TrainBatches
    validation: DeviceImages
    kid_extractor: InceptionFeatures | None
    kid_real: np.ndarray | None  # the validation images' Inception features (rank 0, when KID is on)
    pixels_sha256: str  # of the train and validation pixels: a resume must see the same images
    lock: FolderLock | None  # rank 0's exclusive lock on the run folder, held until training ends

    @property
    def total_steps(self) -> int:
        """The run's optimiser steps: its epochs, or ``max_steps`` if fewer."""
        return run_length(self.config, self.batches.steps_per_epoch)


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


def prepare_run_dir(layout: RunLayout, resume: bool, session: Session) -> tuple[FolderLock | None, bool]:
    """Create and lock the run folder (rank 0), refusing another process's run, an existing run (unless
    resuming) and an unwritable folder; returns rank 0's lock (None on other ranks) and whether it created the
    folder."""
    distributed, run_dir = session.distributed, layout.root
    lock = None
    failure = None
    created = False
    if distributed.is_main:
        try:
            created = not run_dir.exists()
            run_dir.mkdir(parents=True, exist_ok=True)
            lock = FolderLock(run_dir).acquire()
            probe = run_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
            if not resume and layout.holds_a_run():
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
    return lock, created


def _give_up_run_dir(layout: RunLayout, lock: FolderLock | None, created: bool) -> None:
    """After a failed setup: release the lock, and remove the folder if this run created it and it holds nothing
    but the lock file (a mistyped --data must not leave an empty run folder that looks like a run)."""
    if lock is None:
        return
    if created and {path.name for path in layout.root.iterdir()} <= {lock.path.name}:
        lock.path.unlink(missing_ok=True)
        lock.release()
        layout.root.rmdir()
        return
    lock.release()


def build_setup(config: RunConfig, layout: RunLayout, session: Session, *, resume: bool = False,
                splits: ImageSplits | None = None, kid_extractor: InceptionFeatures | None = None,
                progress: Progress | None = None) -> TrainingSetup:
    """Everything a run trains with, in the order that fails fastest: settings, folder, weights files, images."""
    train = config.train
    if train.batch_size % session.distributed.world_size:
        raise TrainingError(f"--batch-size {train.batch_size} is the global batch and must be divisible by the "
                            f"{session.distributed.world_size} processes")
    lock, created = prepare_run_dir(layout, resume, session)
    try:
        return _build(config, layout, session, splits, kid_extractor, progress, lock)
    except BaseException:
        _give_up_run_dir(layout, lock, created)
        raise


def _build(config: RunConfig, layout: RunLayout, session: Session, splits: ImageSplits | None,
           kid_extractor: InceptionFeatures | None, progress: Progress | None,
           lock: FolderLock | None) -> TrainingSetup:
    train, device, distributed = config.train, session.runtime.device, session.distributed
    if train.kid_every and kid_extractor is None:  # missing Inception weights fail now, not after an epoch
        kid_extractor = load_inception(train.inception_weights, train.kid_image_size, device)
    if splits is None:
        splits = _load_images(config, session, progress)
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
    model.to(device=device, memory_format=session.runtime.memory_format())
    network: nn.Module = model.network
    if distributed.enabled:
        if _sync_batchnorm(train.batchnorm, device):
            model.network = nn.SyncBatchNorm.convert_sync_batchnorm(model.network)
        network = nn.parallel.DistributedDataParallel(
            model.network, device_ids=[device.index] if device.type == "cuda" else None, **_NO_BUFFER_SYNC)
    optimizer = build_optimizer(model, config, session.runtime)
    kid_real = None
    if train.kid_every and distributed.is_main:
        kid_real = extract_features(kid_extractor.to(device), splits.validation)
    return TrainingSetup(
        config=config, layout=layout, session=session, splits=splits, model=model, optimizer=optimizer,
        train_step=TrainStep(model, optimizer, config, session.runtime, network=network, distributed=distributed,
                             total_steps=run_length(config, batches.steps_per_epoch)),
        batches=batches, validation=DeviceImages(splits.validation, device,
                                                 splits.validation_labels if conditional else None),
        kid_extractor=kid_extractor, kid_real=kid_real,
        pixels_sha256=content_fingerprint(splits.train, splits.validation), lock=lock)


def _load_images(config: RunConfig, session: Session, progress: Progress | None) -> ImageSplits:
    """Rank 0 decodes and caches the images first; the other ranks then read its cache."""
    distributed = session.distributed
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


def describe(setup: TrainingSetup) -> str:
    """``training on N images (M for validation) from FOLDER; run folder RUN; RUNTIME on DEVICE``."""
    splits, group = setup.splits, setup.session.distributed
    processes = f" x {group.world_size} processes" if group.enabled else ""
    return (f"training on {len(splits.train)} images ({len(splits.validation)} for validation) from {splits.folder}; "
            f"run folder {setup.layout.root}; {setup.session.runtime.describe()} on {setup.session.runtime.device}"
            f"{processes}")

