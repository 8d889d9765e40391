"""The training loop: the seed's recipe, with progress, artefacts and checkpoints hung off its edges."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch

from . import checkpoint as ckpt
from .config import RunConfig
from .data import DeviceImages, ImageSplits, TrainBatches, load_splits
from .evaluation import seed_kid
from .metrics.inception import InceptionFeatures, extract_features, load_inception
from .model import DiffusionModel
from .seeding import EVALUATION, TRAINING_NOISE, generator, mix_seed
from .speed import Speed, resolve_speed
from .steps import LOSS_NAMES, TrainStep, build_optimizer, validation_losses


class TrainingError(RuntimeError):
    """Training cannot start or go on (an unusable run folder, a diverged loss)."""


def resolve_device(name: str) -> torch.device:
    """``auto`` -> the GPU when there is one, else the CPU; anything else must name a usable device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise TrainingError(f"--device {name!r} is not a device name (try cpu, cuda or cuda:1)") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {name} was asked for, but no CUDA GPU is available")
    return device


def train_speed(config: RunConfig) -> Speed:
    """The speed settings a run's config asks for, on its device."""
    train = config.train
    return resolve_speed(resolve_device(train.device), train.precision, train.channels_last, train.compile)


@dataclass
class TrainState:
    """Where training stands: optimiser steps taken and the per-epoch history."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_kid: float | None = None  # the lowest validation KID so far (its checkpoint is checkpoints/best)


class Callback(Protocol):
    """Hooks at the loop's edges; every method is optional (see :class:`CallbackList`)."""

    def on_train_start(self, run_dir: Path, config: RunConfig, state: TrainState, steps_per_epoch: int) -> None: ...
    def on_epoch_start(self, epoch: int, first_step: int, steps_per_epoch: int) -> None: ...
    def on_log(self, step: int, metrics: dict[str, float]) -> None: ...
    def on_epoch_end(self, epoch: int, row: dict[str, float], model: DiffusionModel, state: TrainState) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...


class CallbackList:
    """Calls each hook on every callback that defines it."""

    def __init__(self, callbacks: Sequence[Any]) -> None:
        self.callbacks = list(callbacks)

    def __getattr__(self, name: str):
        def call(*args: Any, **kwargs: Any) -> None:
            for callback in self.callbacks:
                hook = getattr(callback, name, None)
                if hook is not None:
                    hook(*args, **kwargs)
        return call


def prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """Create the run folder, refusing to overwrite another run and failing early if it is unwritable."""
    run_dir = Path(run_dir)
    if not resume and ckpt.step_checkpoints(run_dir):
        raise TrainingError(f"run folder {run_dir} already holds a run; resume it with --resume {run_dir} "
                            "or choose another --run-dir")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise TrainingError(f"cannot write to run folder {run_dir}: {error.strerror or error}") from error


def fit(config: RunConfig, run_dir: Path, *, splits: ImageSplits | None = None,
        callbacks: Sequence[Any] = (), resume: bool = False,
        kid_extractor: InceptionFeatures | None = None) -> tuple[DiffusionModel, TrainState]:
    """Train as ``config`` says, writing config, history and checkpoints into ``run_dir``."""
    run_dir = Path(run_dir)
    train_config = config.train
    device = resolve_device(train_config.device)
    prepare_run_dir(run_dir, resume)
    if train_config.kid_every and kid_extractor is None:
        kid_extractor = load_inception(train_config.inception_weights, train_config.kid_image_size, device)
    if splits is None:
        splits = load_splits(config.data, config.model.image_size)
    batches = TrainBatches(splits.train, batch_size=train_config.batch_size, repeats=config.data.repeats,
                           seed=train_config.seed, device=device)
    validation = DeviceImages(splits.validation, device)
    kid_real = extract_features(kid_extractor.to(device), splits.validation) if train_config.kid_every else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(train_config.seed)  # the initial weights come from the run seed alone
        model = DiffusionModel(config.model)
    model.normalizer.adapt(splits.train)
    speed = train_speed(config)
    model.to(device=device, memory_format=speed.memory_format())
    optimizer = build_optimizer(model, config, speed)
    train_step = TrainStep(model, optimizer, config, speed)
    noise_generator = generator(train_config.seed, TRAINING_NOISE, device=device)
    state = TrainState()
    if resume:
        state = _restore(run_dir, config, model, optimizer, noise_generator)
    config.save(run_dir / "config.json")

    steps_per_epoch = batches.steps_per_epoch
    total_steps = train_config.epochs * steps_per_epoch
    if train_config.max_steps is not None:
        total_steps = min(total_steps, train_config.max_steps)
    hooks = CallbackList(callbacks)
    hooks.on_train_start(run_dir, config, state, steps_per_epoch)

    while state.step < total_steps:
        epoch = state.step // steps_per_epoch  # 0-based
        first = state.step % steps_per_epoch
        last = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
        order = batches.epoch_indices(epoch)
        hooks.on_epoch_start(epoch + 1, first, steps_per_epoch)
        running = torch.zeros(len(LOSS_NAMES), device=device)
        epoch_totals = torch.zeros(len(LOSS_NAMES), dtype=torch.float64, device=device)
        since_log, started = 0, time.perf_counter()
        for index in range(first, last):
            losses = train_step(batches.images(order[index]), noise_generator)
            running += losses
            epoch_totals += losses.double()
            since_log += 1
            state.step += 1
            if since_log == train_config.log_every or index == last - 1:
                values = (running / since_log).tolist()  # the loop's only host sync
                hooks.on_log(state.step, dict(zip(LOSS_NAMES, values)))
                running.zero_()
                since_log = 0
            if train_config.checkpoint_every and state.step % train_config.checkpoint_every == 0 and index < last - 1:
                _save(run_dir, config, model, optimizer, noise_generator, state)
        seconds = time.perf_counter() - started
        row: dict[str, float] = {"epoch": epoch + 1, "step": state.step}
        row.update({f"train_{name}": v for name, v in zip(LOSS_NAMES, (epoch_totals / (last - first)).tolist())})
        evaluation_started = time.perf_counter()
        row.update(validation_losses(model, validation, config, speed))
        if kid_real is not None and (epoch + 1) % train_config.kid_every == 0:
            row["val_kid"] = seed_kid(model, kid_extractor, kid_real, steps=train_config.kid_steps,
                                      seed=mix_seed(train_config.seed, EVALUATION),
                                      batch_size=train_config.kid_batch_size,
                                      generation_batch_size=train_config.eval_batch_size, speed=speed)
        row["seconds"] = seconds
        row["eval_seconds"] = time.perf_counter() - evaluation_started
        row["images_per_second"] = (last - first) * train_config.batch_size / max(seconds, 1e-9)
        state.history.append(row)
        improved = "val_kid" in row and (state.best_kid is None or row["val_kid"] < state.best_kid)
        if improved:
            state.best_kid = row["val_kid"]
        _save(run_dir, config, model, optimizer, noise_generator, state)
        if improved:
            ckpt.write_checkpoint(run_dir / ckpt.CHECKPOINTS_DIR / ckpt.BEST_NAME, model, config,
                                  _training_state(optimizer, noise_generator, state))
        hooks.on_epoch_end(epoch + 1, row, model, state)
    hooks.on_train_end(state)
    return model, state


def _training_state(optimizer: torch.optim.Optimizer, noise_generator: torch.Generator,
                    state: TrainState) -> dict[str, Any]:
    return {"step": state.step, "history": state.history, "best_kid": state.best_kid,
            "optimizer": optimizer.state_dict(), "noise_generator": noise_generator.get_state()}


def _save(run_dir: Path, config: RunConfig, model: DiffusionModel, optimizer: torch.optim.Optimizer,
          noise_generator: torch.Generator, state: TrainState) -> Path:
    folder = run_dir / ckpt.CHECKPOINTS_DIR / ckpt.step_dir_name(state.step)
    path = ckpt.write_checkpoint(folder, model, config, _training_state(optimizer, noise_generator, state))
    ckpt.prune_checkpoints(run_dir, config.train.keep_checkpoints)
    return path


def _restore(run_dir: Path, config: RunConfig, model: DiffusionModel, optimizer: torch.optim.Optimizer,
             noise_generator: torch.Generator) -> TrainState:
    checkpoints = ckpt.step_checkpoints(run_dir)
    if not checkpoints:
        raise TrainingError(f"--resume {run_dir}: no checkpoint to resume from in {run_dir / ckpt.CHECKPOINTS_DIR}")
    saved, saved_config, folder = ckpt.load_model(checkpoints[-1], device=next(model.parameters()).device)
    if saved_config.model != config.model:
        raise TrainingError(f"--resume {run_dir}: the model configuration differs from the checkpoint's "
                            f"({folder / ckpt.CONFIG_FILE})")
    model.load_state_dict(saved.state_dict())
    training_state = ckpt.load_training_state(folder)
    optimizer.load_state_dict(training_state["optimizer"])
    noise_generator.set_state(training_state["noise_generator"])
    return TrainState(step=int(training_state["step"]), history=list(training_state["history"]),
                      best_kid=training_state.get("best_kid"))
