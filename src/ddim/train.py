"""The training loop: the seed's recipe, with progress, artefacts and checkpoints hung off its edges.

Reliability: checkpoints are atomic, written every ``checkpoint_every`` steps and at each epoch's
end; SIGINT/SIGTERM save one and stop cleanly; a non-finite loss stops training before it can be
saved; ``resume=True`` continues bit-identically (weights, EMA, optimiser, data order, every random
stream). Scale: under torchrun the same loop trains with DistributedDataParallel.
"""

from __future__ import annotations

import inspect
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from . import checkpoint as ckpt
from .config import RunConfig
from .data import DeviceImages, ImageSplits, TrainBatches, load_splits
from .distributed import Distributed, from_environment
from .evaluation import seed_kid
from .metrics.inception import InceptionFeatures, extract_features, load_inception
from .model import DiffusionModel
from .seeding import EVALUATION, TRAINING_NOISE, generator, mix_seed
from .speed import Speed, resolve_speed
from .steps import LOSS_NAMES, TrainStep, build_optimizer, validation_losses

# Settings that fix what a run computes: a resume may not change them (epochs, max_steps, device,
# logging and checkpoint cadence may change).
RESUME_FIXED = {"data": ("split_seed", "train_fraction", "repeats", "train_images", "validation_images"),
                "train": ("batch_size", "seed", "loss", "ema", "ema_warmup")}


class TrainingError(RuntimeError):
    """Training cannot start or go on (an unusable run folder, a diverged loss, a failed checkpoint)."""


class TrainingInterrupted(TrainingError):
    """SIGINT or SIGTERM stopped training after a checkpoint was saved."""

    def __init__(self, signal_name: str, checkpoint: Path, run_dir: Path) -> None:
        super().__init__(f"{signal_name} received: stopped after saving {checkpoint}; "
                         f"continue with: ddim train --resume {run_dir}")
        self.signal_name = signal_name
        self.exit_code = 130 if signal_name == "SIGINT" else 143


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> the GPU when there is one, else the CPU; ``cuda`` under torchrun -> this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise TrainingError(f"--device {name!r} is not a device name (try cpu, cuda or cuda:1)") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {name} was asked for, but no CUDA GPU is available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def train_speed(config: RunConfig, local_rank: int = 0) -> Speed:
    """The speed settings a run's config asks for, on its device."""
    train = config.train
    return resolve_speed(resolve_device(train.device, local_rank), train.precision, train.channels_last, train.compile)


@dataclass
class TrainState:
    """Where training stands: optimiser steps taken, the per-epoch history, the best validation KID."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_kid: float | None = None  # the lowest validation KID so far (its checkpoint is checkpoints/best)


class Callback(Protocol):
    """Hooks at the loop's edges (rank 0 only); every method is optional (see :class:`CallbackList`)."""

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


class StopRequests:
    """While active, SIGINT and SIGTERM only set ``requested``; the loop saves and stops at the next step.

    A second SIGINT interrupts at once (KeyboardInterrupt): the previous checkpoint is still intact.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, number: int, frame: Any) -> None:
        if self.requested == "SIGINT" and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(number).name

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def prepare_run_dir(run_dir: Path, resume: bool, distributed: Distributed = Distributed()) -> None:
    """Create the run folder (rank 0), refusing to overwrite another run and failing early if unwritable."""
    run_dir = Path(run_dir)
    if distributed.is_main:
        if not resume and (ckpt.step_checkpoints(run_dir) or (run_dir / "config.json").exists()):
            raise TrainingError(f"run folder {run_dir} already holds a run; resume it with --resume {run_dir} "
                                "or choose another --run-dir")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            probe = run_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as error:
            raise TrainingError(f"cannot write to run folder {run_dir}: {error.strerror or error}") from error
    distributed.barrier()


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


@dataclass
class _Run:
    """Everything the loop works with (built once by :func:`fit`)."""

    config: RunConfig
    run_dir: Path
    distributed: Distributed
    speed: Speed
    model: DiffusionModel
    optimizer: torch.optim.Optimizer
    step: TrainStep
    noise_generator: torch.Generator
    batches: TrainBatches
    validation: DeviceImages
    kid_extractor: InceptionFeatures | None
    kid_real: np.ndarray | None
    state: TrainState
    epoch_totals: torch.Tensor  # sums of this epoch's losses so far (checkpointed, for an exact resume)
    nonfinite: torch.Tensor  # set on the device when a loss is NaN or inf; read only at log/save points


def fit(config: RunConfig, run_dir: Path, *, splits: ImageSplits | None = None,
        callbacks: Sequence[Any] = (), resume: bool = False,
        kid_extractor: InceptionFeatures | None = None) -> tuple[DiffusionModel, TrainState]:
    """Train as ``config`` says, writing config, history and checkpoints into ``run_dir``.

    Under torchrun this trains with DistributedDataParallel; ``batch_size`` is the global batch.
    Raises :class:`TrainingInterrupted` after saving a checkpoint when SIGINT/SIGTERM arrive.
    """
    run = _build(config, Path(run_dir), splits, resume, kid_extractor)
    hooks = CallbackList(callbacks if run.distributed.is_main else [])
    steps_per_epoch = run.batches.steps_per_epoch
    total_steps = config.train.epochs * steps_per_epoch
    if config.train.max_steps is not None:
        total_steps = min(total_steps, config.train.max_steps)
    hooks.on_train_start(run.run_dir, config, run.state, steps_per_epoch)
    with StopRequests() as stops:
        while run.state.step < total_steps:
            epoch = run.state.step // steps_per_epoch  # 0-based
            last = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
            seconds, steps_done = _train_epoch(run, epoch, last, hooks, stops)
            row = _end_epoch(run, epoch, seconds, steps_done)
            hooks.on_epoch_end(epoch + 1, row, run.model, run.state)
            if run.state.step < total_steps and _stop_requested(run, stops):
                raise TrainingInterrupted(stops.requested or "SIGTERM", _latest(run), run.run_dir)
    _check_ranks_agree(run)
    hooks.on_train_end(run.state)
    return run.model, run.state


def _build(config: RunConfig, run_dir: Path, splits: ImageSplits | None, resume: bool,
           kid_extractor: InceptionFeatures | None) -> _Run:
    train = config.train
    distributed = from_environment()
    speed = train_speed(config, distributed.local_rank)
    device = speed.device
    prepare_run_dir(run_dir, resume, distributed)
    if train.kid_every and kid_extractor is None:
        kid_extractor = load_inception(train.inception_weights, train.kid_image_size, device)
    if splits is None:
        splits = load_splits(config.data, config.model.image_size)
    batches = TrainBatches(splits.train, batch_size=train.batch_size, repeats=config.data.repeats, seed=train.seed,
                           device=device, rank=distributed.rank, world_size=distributed.world_size)
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
    noise_generator = generator(train.seed, TRAINING_NOISE, distributed.rank, device=device)
    run = _Run(config=config, run_dir=run_dir, distributed=distributed, speed=speed, model=model,
               optimizer=optimizer, step=TrainStep(model, optimizer, config, speed, network=network, distributed=distributed),
               noise_generator=noise_generator, batches=batches, validation=DeviceImages(splits.validation, device),
               kid_extractor=kid_extractor, kid_real=None, state=TrainState(),
               epoch_totals=torch.zeros(len(LOSS_NAMES), dtype=torch.float64, device=device),
               nonfinite=torch.zeros((), dtype=torch.bool, device=device))
    if train.kid_every and distributed.is_main:
        run.kid_real = extract_features(kid_extractor.to(device), splits.validation)
    if resume:
        _restore(run)
    if distributed.is_main:
        _write_config(config, run_dir / "config.json")
    return run


# BatchNorm statistics are kept in step explicitly (SyncBatchNorm, or averaged after each step), so DDP's
# per-forward buffer broadcast is off; torch 2.14 renamed the option.
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters
                   else {"broadcast_buffers": False})


def _sync_batchnorm(mode: str, device: torch.device) -> bool:
    if mode == "sync" and device.type != "cuda":
        raise TrainingError("--batchnorm sync needs CUDA GPUs (PyTorch's SyncBatchNorm); use --batchnorm local")
    return mode == "sync" or (mode == "auto" and device.type == "cuda")


def _write_config(config: RunConfig, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    config.save(temporary)
    temporary.replace(path)


def _stop_requested(run: _Run, stops: StopRequests) -> bool:
    """Whether a signal asked to stop (on any rank: the ranks agree, so they stop at the same step)."""
    return run.distributed.any(stops.requested is not None)


def _train_epoch(run: _Run, epoch: int, last: int, hooks: CallbackList, stops: StopRequests) -> tuple[float, int]:
    """The steps of ``epoch`` up to index ``last``; returns (seconds, steps taken).

    Losses are read back once per log interval (the only host syncs), where the ranks also agree on
    stopping; a stop inside the epoch saves a checkpoint and raises :class:`TrainingInterrupted`.
    """
    train, state, distributed = run.config.train, run.state, run.distributed
    steps_per_epoch = run.batches.steps_per_epoch
    first = state.step % steps_per_epoch
    if first == 0:
        run.epoch_totals.zero_()
    order = run.batches.epoch_indices(epoch)
    hooks.on_epoch_start(epoch + 1, first, steps_per_epoch)
    running = torch.zeros(len(LOSS_NAMES), dtype=torch.float64, device=run.speed.device)
    since_log, started = 0, time.perf_counter()
    for index in range(first, last):
        losses = run.step(run.batches.images(order[index]), run.noise_generator, state.step + 1)
        run.nonfinite |= ~torch.isfinite(losses).all()
        running += losses.double()
        run.epoch_totals += losses.double()
        since_log += 1
        state.step += 1
        final = index == last - 1
        at_log = since_log == train.log_every or final
        if at_log:
            _check_finite(run)
            values = (distributed.sum(running.clone()) / (since_log * distributed.world_size)).tolist()
            hooks.on_log(state.step, dict(zip(LOSS_NAMES, values)))
            running.zero_()
            since_log = 0
        if not final and (at_log or not distributed.enabled) and _stop_requested(run, stops):
            raise TrainingInterrupted(stops.requested or "SIGTERM", _save(run), run.run_dir)
        if train.checkpoint_every and state.step % train.checkpoint_every == 0 and not final:
            _save(run)
    return time.perf_counter() - started, last - first


def _end_epoch(run: _Run, epoch: int, seconds: float, steps_done: int) -> dict[str, float]:
    """Validation losses, KID, history row, checkpoint (and the best one) at the end of an epoch's steps."""
    train, state, distributed = run.config.train, run.state, run.distributed
    steps_in_epoch = state.step - epoch * run.batches.steps_per_epoch
    totals = distributed.sum(run.epoch_totals.clone()) / (steps_in_epoch * distributed.world_size)
    row: dict[str, float] = {"epoch": epoch + 1, "step": state.step}
    row.update({f"train_{name}": value for name, value in zip(LOSS_NAMES, totals.tolist())})
    evaluation_started = time.perf_counter()
    row.update(validation_losses(run.model, run.validation, run.config, run.speed, distributed))
    if run.kid_extractor is not None and (epoch + 1) % train.kid_every == 0:
        kid = seed_kid(run.model, run.kid_extractor, run.kid_real, count=run.validation.count, steps=train.kid_steps,
                       seed=mix_seed(train.seed, EVALUATION), batch_size=train.kid_batch_size,
                       generation_batch_size=train.eval_batch_size, speed=run.speed, distributed=distributed)
        if kid is not None:
            row["val_kid"] = kid
    row["seconds"] = seconds
    row["eval_seconds"] = time.perf_counter() - evaluation_started
    row["images_per_second"] = steps_done * train.batch_size / max(seconds, 1e-9)
    state.history = [r for r in state.history if r["epoch"] < epoch + 1]  # a partial row of this epoch is replaced
    state.history.append(row)
    improved = "val_kid" in row and (state.best_kid is None or row["val_kid"] < state.best_kid)
    if improved:
        state.best_kid = row["val_kid"]
    _save(run, best=improved)
    return row


def _check_finite(run: _Run) -> None:
    if run.distributed.any(bool(run.nonfinite.item())):
        latest = ckpt.step_checkpoints(run.run_dir)
        kept = f"the last good checkpoint {latest[-1]} is in place" if latest else "no checkpoint had been written yet"
        raise TrainingError(f"the training loss became NaN or infinite by step {run.state.step}; training stopped "
                            f"and {kept}. A lower --lr (now {run.config.train.lr}) usually helps")


def _latest(run: _Run) -> Path:
    checkpoints = ckpt.step_checkpoints(run.run_dir)
    return checkpoints[-1] if checkpoints else run.run_dir


def _training_state(run: _Run, generator_states: list[torch.Tensor]) -> dict[str, Any]:
    return {"step": run.state.step, "history": run.state.history, "best_kid": run.state.best_kid,
            "optimizer": run.optimizer.state_dict(), "noise_generators": generator_states,
            "epoch_totals": run.epoch_totals.cpu(), "world_size": run.distributed.world_size}


def _save(run: _Run, best: bool = False) -> Path:
    """Checkpoint (rank 0 writes, every rank's generator state included); never saves non-finite weights."""
    _check_finite(run)
    states = run.distributed.gather(run.noise_generator.get_state().cpu())
    folder = run.run_dir / ckpt.CHECKPOINTS_DIR / ckpt.step_dir_name(run.state.step)
    failure = None
    if run.distributed.is_main:
        try:
            ckpt.write_checkpoint(folder, run.model, run.config, _training_state(run, states))
            if best:
                ckpt.write_checkpoint(run.run_dir / ckpt.CHECKPOINTS_DIR / ckpt.BEST_NAME, run.model, run.config,
                                      _training_state(run, states))
            ckpt.prune_checkpoints(run.run_dir, run.config.train.keep_checkpoints)
        except OSError as error:
            previous = [p for p in ckpt.step_checkpoints(run.run_dir) if p != folder]
            kept = f"the previous checkpoint {previous[-1]} is intact" if previous else "no earlier checkpoint exists"
            failure = f"could not write checkpoint {folder}: {error.strerror or error}; training stopped and {kept}"
    failure = run.distributed.broadcast(failure)
    if failure:
        raise TrainingError(failure)
    return folder


def _restore(run: _Run) -> None:
    """Load the newest readable checkpoint of the run (or start afresh if it has none)."""
    checkpoints = ckpt.step_checkpoints(run.run_dir)
    if not checkpoints:
        return  # interrupted before its first checkpoint: the run starts from the beginning
    errors = []
    for folder in reversed(checkpoints):
        try:
            saved, saved_config, _ = ckpt.load_model(folder, device=run.speed.device)
            training_state = ckpt.load_training_state(folder)
            break
        except ckpt.CheckpointError as error:
            errors.append(str(error))
    else:
        raise TrainingError(f"cannot resume {run.run_dir}: no readable checkpoint ({'; '.join(errors)})")
    check_resume_config(saved_config, run.config, folder)
    states = training_state.get("noise_generators") or [training_state["noise_generator"]]
    if len(states) != run.distributed.world_size:
        raise TrainingError(f"cannot resume {folder} exactly: it was written by {len(states)} processes, this run "
                            f"has {run.distributed.world_size}")
    with torch.no_grad():
        for target, source in zip(run.model.state_dict().values(), saved.state_dict().values()):
            target.copy_(source)
    run.optimizer.load_state_dict(training_state["optimizer"])
    run.noise_generator.set_state(states[run.distributed.rank].to(run.noise_generator.get_state().device))
    if "epoch_totals" in training_state:
        run.epoch_totals.copy_(training_state["epoch_totals"])
    run.state = TrainState(step=int(training_state["step"]), history=list(training_state["history"]),
                           best_kid=training_state.get("best_kid"))


def _check_ranks_agree(run: _Run) -> None:
    """Under data parallelism, every rank must end with the same weights; a mismatch is an error."""
    if not run.distributed.enabled:
        return
    fingerprint = torch.stack([t.double().sum() for t in run.model.state_dict().values() if t.is_floating_point()])
    fingerprints = run.distributed.gather(fingerprint.cpu())
    if any(not torch.equal(fingerprints[0], other) for other in fingerprints[1:]):
        raise TrainingError("the data-parallel ranks ended with different weights")
    if run.distributed.is_main:
        import json

        (run.run_dir / "distributed.json").write_text(json.dumps({
            "world_size": run.distributed.world_size, "backend": torch.distributed.get_backend(),
            "batchnorm": "sync" if any(isinstance(m, nn.SyncBatchNorm) for m in run.model.network.modules())
            else "local, running statistics averaged over ranks after every step",
            "weights_fingerprint_per_rank": [f.sum().item() for f in fingerprints]}, indent=2) + "\n")
