"""The training loop: the Keras example's recipe, with progress, artefacts and checkpoints hung off its edges.

:func:`fit` builds the run (:mod:`ddim.training_run`), then steps through the epochs: the training
steps (:mod:`ddim.training_step`), the end-of-epoch evaluation, the checkpoint (:mod:`ddim.checkpoint`)
and the callbacks (:mod:`ddim.callbacks`). Reliability: checkpoints are atomic, written every
``checkpoint_every`` steps and at each epoch's end; SIGINT/SIGTERM save one and stop cleanly; a
non-finite loss stops training before it can be saved; ``resume=True`` continues bit-identically
(weights, EMA, optimiser, data order, every random stream). Scale: under torchrun the same loop trains
with DistributedDataParallel.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from . import checkpoint as ckpt
from .callbacks import Callback, Callbacks, RunInfo
from .checkpoint import TrainState
from .config import RunConfig
from .data import ImageSplits
from .ema import initial_share
from .evaluation import seed_kid
from .files import WriteError, write_text
from .metrics.inception import InceptionFeatures
from .model import DiffusionModel
from .seeding import EVALUATION, mix_seed
from .signals import StopRequests
from .training_run import Progress, TrainingError, TrainingInterrupted, TrainingRun, build_run, run_length
from .training_step import LOSS_NAMES, validation_losses

__all__ = ["fit", "TrainingError", "TrainingInterrupted", "TrainState"]


def fit(config: RunConfig, run_dir: Path, *, splits: ImageSplits | None = None,
        callbacks: Sequence[Callback] = (), resume: bool = False,
        kid_extractor: InceptionFeatures | None = None,
        progress: Progress | None = None) -> tuple[DiffusionModel, TrainState]:
    """Train as ``config`` says, writing config, history and checkpoints into ``run_dir``.

    Under torchrun this trains with DistributedDataParallel; ``batch_size`` is the global batch.
    ``progress(description, total)`` shows image decoding. Raises :class:`TrainingInterrupted` after
    saving a checkpoint when SIGINT/SIGTERM arrive.
    """
    run = build_run(config, Path(run_dir), resume=resume, splits=splits, kid_extractor=kid_extractor,
                    progress=progress)
    try:
        return _fit(run, Callbacks(callbacks if run.distributed.is_main else []))
    except WriteError as error:  # an artefact (grid, history, plot) could not be written: the checkpoint is safe
        raise TrainingError(f"{error}; training stopped, its checkpoints are intact: free some space and continue "
                            f"with ddim train --resume {run.run_dir}") from error
    finally:
        if run.lock is not None:
            run.lock.release()


def _fit(run: TrainingRun, hooks: Callbacks) -> tuple[DiffusionModel, TrainState]:
    config = run.config
    steps_per_epoch = run.batches.steps_per_epoch
    total_steps = run_length(config, steps_per_epoch)
    skipped = run.splits.skipped
    notices = [f"skipped {len(skipped)} unreadable images, e.g. {skipped[0]}"] if skipped else []
    if run.splits.upscaled:
        notices.append(f"{run.splits.upscaled} images are smaller than {config.model.image_size} px and were upscaled")
    if run.state.step:
        notices.append(f"resuming {run.run_dir} at step {run.state.step} of {total_steps}" if run.state.step < total_steps
                       else f"nothing to do: the run in {run.run_dir} is complete ({run.state.step} steps)")
    notices.extend(_ema_notice(config, total_steps))
    hooks.on_train_start(RunInfo(run.run_dir, config, run.state, run.speed, steps_per_epoch, total_steps,
                                 _describe(run), tuple(notices + run.notices), run.model, run.validation.count))
    with StopRequests() as stops:
        while run.state.step < total_steps:
            epoch = run.state.step // steps_per_epoch  # 0-based
            last = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
            seconds, steps_timed = _train_epoch(run, epoch, last, hooks, stops)
            row = _end_epoch(run, epoch, seconds, steps_timed)
            hooks.on_epoch_end(epoch + 1, row, run.model, run.state)
            if run.state.step < total_steps and _stop_requested(run, stops):
                raise TrainingInterrupted(stops.requested or "SIGTERM", _latest(run), run.run_dir)
    _check_ranks_agree(run)
    hooks.on_train_end(run.state)
    return run.model, run.state


def _ema_notice(config: RunConfig, total_steps: int) -> list[str]:
    """One line when the run is too short for its EMA (its samples would still look like noise)."""
    share = initial_share(config.train.ema, total_steps, config.train.ema_warmup, config.train.ema_std)
    if share < 0.05:  # about 3 / (1 - ema) steps: what the EMA needs to forget its start
        return []
    return [f"this run ({total_steps} steps) is too short for --ema {config.train.ema}: at its end the EMA network "
            f"still holds {share:.0%} of its initial weights, so its grids and KID look like noise; for short runs "
            "use --ema-warmup yes (or a lower --ema); grids of such epochs say so in their caption"]


def _describe(run: TrainingRun) -> str:
    splits, group = run.splits, run.distributed
    processes = f" x {group.world_size} processes" if group.enabled else ""
    return (f"training on {len(splits.train)} images ({len(splits.validation)} for validation) from {splits.folder}; "
            f"run folder {run.run_dir}; {run.speed.describe()} on {run.speed.device}{processes}")


def _stop_requested(run: TrainingRun, stops: StopRequests) -> bool:
    """Whether a signal asked to stop (on any rank: the ranks agree, so they stop at the same step)."""
    return run.distributed.any(stops.requested is not None)


def _train_epoch(run: TrainingRun, epoch: int, last: int, hooks: Callbacks,
                 stops: StopRequests) -> tuple[float, int]:
    """The steps of ``epoch`` up to index ``last``; returns (seconds, steps timed) for the epoch.

    A resumed epoch's timing includes its steps before the checkpoint it resumed from (checkpoints
    written before ddim 0.3 lack it: then only the steps after the resume are timed).

    Losses are read back once per log interval (the only host syncs), where the ranks also agree on
    stopping; a stop inside the epoch saves a checkpoint and raises :class:`TrainingInterrupted`.
    """
    train, state, distributed = run.config.train, run.state, run.distributed
    steps_per_epoch = run.batches.steps_per_epoch
    first = state.step % steps_per_epoch
    if first == 0:
        run.epoch_totals.zero_()
        run.epoch_seconds, run.epoch_timed_steps = 0.0, 0
    carried_seconds, carried_steps = run.epoch_seconds, run.epoch_timed_steps
    order, flips = run.batches.epoch_indices(epoch), run.batches.epoch_flips(epoch)
    hooks.on_epoch_start(epoch + 1, first, steps_per_epoch)
    running = torch.zeros(len(LOSS_NAMES), dtype=torch.float64, device=run.speed.device)
    since_log, started = 0, time.perf_counter()
    logged_at = started
    for index in range(first, last):
        images = run.batches.train_images(order[index], None if flips is None else flips[index])
        losses = run.train_step(images, run.noise_generator, state.step + 1, run.batches.labels(order[index]))
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
            now = time.perf_counter()
            hooks.on_log(state.step, {**dict(zip(LOSS_NAMES, values)), "lr": run.optimizer.param_groups[0]["lr"],
                                      "images_per_second": since_log * train.batch_size / max(now - logged_at, 1e-9)})
            logged_at = now
            running.zero_()
            since_log = 0
        run.epoch_seconds = carried_seconds + time.perf_counter() - started  # what a checkpoint now records
        run.epoch_timed_steps = carried_steps + index + 1 - first
        if not final and (at_log or not distributed.enabled) and _stop_requested(run, stops):
            raise TrainingInterrupted(stops.requested or "SIGTERM", _save(run), run.run_dir)
        if train.checkpoint_every and state.step % train.checkpoint_every == 0 and not final:
            _save(run)
    return run.epoch_seconds, run.epoch_timed_steps


def _end_epoch(run: TrainingRun, epoch: int, seconds: float, steps_timed: int) -> dict[str, float]:
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
                       generation_batch_size=train.eval_batch_size, speed=run.speed, distributed=distributed,
                       labels=run.validation.label_data.tolist() if run.validation.label_data is not None else None,
                       guidance=train.guidance)
        if kid is not None:
            row["val_kid"] = kid
    row["seconds"] = seconds
    row["eval_seconds"] = time.perf_counter() - evaluation_started
    row["images_per_second"] = steps_timed * train.batch_size / max(seconds, 1e-9)
    state.history = [r for r in state.history if r["epoch"] < epoch + 1]  # a partial row of this epoch is replaced
    state.history.append(row)
    improved = "val_kid" in row and (state.best_kid is None or row["val_kid"] < state.best_kid)
    if improved:
        state.best_kid = row["val_kid"]
    _save(run, best=improved)
    return row


def _check_finite(run: TrainingRun) -> None:
    if run.distributed.any(bool(run.nonfinite.item())):
        latest = ckpt.step_checkpoints(run.run_dir)
        kept = f"the last good checkpoint {latest[-1]} is in place" if latest else "no checkpoint had been written yet"
        raise TrainingError(f"the training loss became NaN or infinite by step {run.state.step}; training stopped "
                            f"and {kept}. A lower --lr (now {run.config.train.lr}) usually helps")


def _latest(run: TrainingRun) -> Path:
    checkpoints = ckpt.step_checkpoints(run.run_dir)
    return checkpoints[-1] if checkpoints else run.run_dir


def _save(run: TrainingRun, best: bool = False) -> Path:
    """Checkpoint (rank 0 writes, every rank's generator state included); never saves non-finite weights."""
    _check_finite(run)
    generator_states = run.distributed.gather(run.noise_generator.get_state().cpu())
    folder = run.run_dir / ckpt.CHECKPOINTS_DIR / ckpt.step_dir_name(run.state.step)
    failure = None
    if run.distributed.is_main:
        state = ckpt.training_state_dict(run.state, run.optimizer, generator_states, run.epoch_totals,
                                         run.data_fingerprint, run.epoch_seconds, run.epoch_timed_steps)
        try:
            ckpt.write_checkpoint(folder, run.model, run.config, state)
            if best:
                ckpt.write_checkpoint(run.run_dir / ckpt.CHECKPOINTS_DIR / ckpt.BEST_NAME, run.model, run.config, state)
            ckpt.prune_checkpoints(run.run_dir, run.config.train.keep_checkpoints)
        except (OSError, ckpt.CheckpointError) as error:
            previous = [p for p in ckpt.step_checkpoints(run.run_dir) if p != folder]
            kept = f"the previous checkpoint {previous[-1]} is intact" if previous else "no earlier checkpoint exists"
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            failure = f"could not write checkpoint {folder}: {reason}; training stopped and {kept}"
    failure = run.distributed.broadcast(failure)
    if failure:
        raise TrainingError(failure)
    return folder


def _check_ranks_agree(run: TrainingRun) -> None:
    """Under data parallelism, every rank must end with the same weights; a mismatch is an error."""
    if not run.distributed.enabled:
        return
    fingerprint = torch.stack([t.double().sum() for t in run.model.state_dict().values() if t.is_floating_point()])
    fingerprints = run.distributed.gather(fingerprint.cpu())
    if any(not torch.equal(fingerprints[0], other) for other in fingerprints[1:]):
        raise TrainingError("the data-parallel ranks ended with different weights")
    if run.distributed.is_main:
        write_text(run.run_dir / "distributed.json", json.dumps({
            "world_size": run.distributed.world_size, "backend": torch.distributed.get_backend(),
            "batchnorm": "sync" if any(isinstance(m, nn.SyncBatchNorm) for m in run.model.network.modules())
            else "local, running statistics averaged over ranks after every step",
            "weights_fingerprint_per_rank": [f.sum().item() for f in fingerprints]}, indent=2) + "\n")
