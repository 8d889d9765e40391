"""The training loop: the Keras example's recipe, with progress, artefacts and checkpoints hung off its edges.

:func:`fit` opens the session (process group, device), builds the setup (:mod:`~ddim.training.setup`), restores
the progress of a resumed run (:mod:`~ddim.training.resume`), then steps through the epochs: the training steps
(:mod:`~ddim.training.step`), the end-of-epoch evaluation, the checkpoint (:mod:`ddim.checkpoint`) and the
callbacks. Reliability: checkpoints are atomic, written every ``checkpoint_every`` steps and at each epoch's end;
SIGINT/SIGTERM save one and stop cleanly; a non-finite loss stops training before it can be saved;
``resume=True`` continues bit-identically (weights, EMA, optimiser, data order, every random stream). Scale: under
torchrun the same loop trains with DistributedDataParallel.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .. import checkpoint as ckpt
from ..checkpoint import TrainState
from ..config import RunConfig
from ..data import ImageSplits
from ..ema import YOUNG_SHARE, initial_share
from ..evaluation import keras_kid
from ..files import WriteError, write_text
from ..layout import RunLayout
from ..metrics.inception import InceptionFeatures
from ..model import DiffusionModel
from ..seeding import EVALUATION, mix_seed
from ..signals import StopRequests
from .callbacks import Callback, Callbacks, RunInfo
from .errors import TrainingError, TrainingInterrupted
from .progress import TrainProgress
from .resume import restore
from .session import training_session
from .setup import Progress, TrainingSetup, build_setup, describe
from .step import LOSS_NAMES, validation_losses


def fit(config: RunConfig, run_dir: Path, *, splits: ImageSplits | None = None,
        callbacks: Sequence[Callback] = (), resume: bool = False,
        kid_extractor: InceptionFeatures | None = None,
        progress: Progress | None = None) -> tuple[DiffusionModel, TrainState]:
    """Train as ``config`` says, writing config, history and checkpoints into ``run_dir``.

    Under torchrun this trains with DistributedDataParallel; ``batch_size`` is the global batch.
    ``progress(description, total)`` shows image decoding. Raises :class:`TrainingInterrupted` after
    saving a checkpoint when SIGINT/SIGTERM arrive.
    """
    layout = RunLayout(Path(run_dir))
    if resume and not layout.config.exists():
        raise TrainingError(f"cannot resume {layout.root}: it holds no {layout.config.name}, so it is not a ddim run "
                            "folder (to start a new run there, train without resume)")
    with training_session(config) as session:
        setup = build_setup(config, layout, session, resume=resume, splits=splits, kid_extractor=kid_extractor,
                            progress=progress)
        try:
            run, notices = restore(setup) if resume else (TrainProgress.start(setup), [])
            if session.distributed.is_main:
                setup.config.save(layout.config)
            return _fit(setup, run, notices, Callbacks(callbacks if session.distributed.is_main else []))
        except WriteError as error:  # an artefact (grid, history, plot) could not be written: the checkpoint is safe
            raise TrainingError(f"{error}; training stopped, its checkpoints are intact: free some space and "
                                f"continue with ddim train --resume {layout.root}") from error
        finally:
            if setup.lock is not None:
                setup.lock.release()


def _fit(setup: TrainingSetup, run: TrainProgress, notices: list[str],
         hooks: Callbacks) -> tuple[DiffusionModel, TrainState]:
    config, layout = setup.config, setup.layout
    steps_per_epoch, total_steps = setup.batches.steps_per_epoch, setup.total_steps
    skipped = setup.splits.skipped
    said = [f"skipped {len(skipped)} unreadable images, e.g. {skipped[0]}"] if skipped else []
    if setup.splits.in_runs:
        said.append(setup.splits.runs_note())
    if setup.splits.upscaled:
        said.append(setup.splits.upscaled_note())
    if run.state.step:
        said.append(f"resuming {layout.root} at step {run.state.step} of {total_steps}" if run.state.step < total_steps
                    else f"nothing to do: the run in {layout.root} is complete ({run.state.step} steps); to train "
                    f"it further, resume it with a larger length: ddim train --resume {layout.root} "
                    + (f"--max-steps {2 * run.state.step}" if config.train.max_steps is not None else
                       f"--epochs {config.train.epochs + 10}"))
    said.extend(_ema_notice(config, total_steps))
    hooks.on_train_start(RunInfo(layout, config, run.state, setup.session.runtime, steps_per_epoch, total_steps,
                                 describe(setup), tuple(said + notices), setup.model, setup.validation.count))
    with StopRequests() as stops:
        while run.state.step < total_steps:
            epoch = run.state.step // steps_per_epoch  # 0-based
            last = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
            seconds, steps_timed = _train_epoch(setup, run, epoch, last, hooks, stops)
            row = _end_epoch(setup, run, epoch, seconds, steps_timed)
            hooks.on_epoch_end(epoch + 1, row, setup.model, run.state)
            if run.state.step < total_steps and _stop_requested(setup, stops):
                raise TrainingInterrupted(stops.requested or "SIGTERM", _latest(layout), layout.root)
    _check_ranks_agree(setup)
    hooks.on_train_end(run.state)
    return setup.model, run.state


def _ema_notice(config: RunConfig, total_steps: int) -> list[str]:
    """One line when the run is too short for its EMA (its samples would still look like noise)."""
    train = config.train
    share = initial_share(train.ema, total_steps, train.ema_warmup, train.ema_std)
    if share < YOUNG_SHARE:
        return []
    return [f"this run ({total_steps} steps) is too short for --ema {train.ema}: at its end the EMA network "
            f"still holds {share:.0%} of its initial weights, so its grids and KID look like noise; for short runs "
            "use --ema-std 0.1 (EDM2's power EMA, as in --recipe improved) or --ema-warmup yes, from the start "
            "(a resume keeps the run's EMA); grids of such epochs say so in their caption"]


def _stop_requested(setup: TrainingSetup, stops: StopRequests) -> bool:
    """Whether a signal asked to stop (on any rank: the ranks agree, so they stop at the same step)."""
    return setup.session.distributed.any(stops.requested is not None)


def _train_epoch(setup: TrainingSetup, run: TrainProgress, epoch: int, last: int, hooks: Callbacks,
                 stops: StopRequests) -> tuple[float, int]:
    """The steps of ``epoch`` up to index ``last``; returns (seconds, steps timed) for the epoch.

    A resumed epoch's timing includes its steps before the checkpoint it resumed from (checkpoints
    written before ddim 0.3 lack it: then only the steps after the resume are timed).

    Losses are read back once per log interval (the only host syncs), where the ranks also agree on
    stopping; a stop inside the epoch saves a checkpoint and raises :class:`TrainingInterrupted`.
    """
    train, state, distributed = setup.config.train, run.state, setup.session.distributed
    steps_per_epoch = setup.batches.steps_per_epoch
    first = state.step % steps_per_epoch
    if first == 0:
        run.epoch_totals.zero_()
        run.epoch_seconds, run.epoch_timed_steps = 0.0, 0
    carried_seconds, carried_steps = run.epoch_seconds, run.epoch_timed_steps
    order, flips = setup.batches.epoch_indices(epoch), setup.batches.epoch_flips(epoch)
    hooks.on_epoch_start(epoch + 1, first, steps_per_epoch)
    running = torch.zeros(len(LOSS_NAMES), dtype=torch.float64, device=setup.session.runtime.device)
    since_log, started = 0, time.perf_counter()
    logged_at = started
    for index in range(first, last):
        images = setup.batches.train_images(order[index], None if flips is None else flips[index])
        losses = setup.train_step(images, run.noise_generator, state.step + 1, setup.batches.labels(order[index]))
        run.nonfinite |= ~torch.isfinite(losses).all()
        running += losses.double()
        run.epoch_totals += losses.double()
        since_log += 1
        state.step += 1
        final = index == last - 1
        at_log = since_log == train.log_every or final
        if at_log:
            _check_finite(setup, run)
            values = (distributed.sum(running.clone()) / (since_log * distributed.world_size)).tolist()
            now = time.perf_counter()
            hooks.on_log(state.step, {**dict(zip(LOSS_NAMES, values)), "lr": setup.optimizer.param_groups[0]["lr"],
                                      "images_per_second": since_log * train.batch_size / max(now - logged_at, 1e-9)})
            logged_at = now
            running.zero_()
            since_log = 0
        run.epoch_seconds = carried_seconds + time.perf_counter() - started  # what a checkpoint now records
        run.epoch_timed_steps = carried_steps + index + 1 - first
        if not final and (at_log or not distributed.enabled) and _stop_requested(setup, stops):
            raise TrainingInterrupted(stops.requested or "SIGTERM", _save(setup, run), setup.layout.root)
        if train.checkpoint_every and state.step % train.checkpoint_every == 0 and not final:
            _save(setup, run)
    return run.epoch_seconds, run.epoch_timed_steps


def _end_epoch(setup: TrainingSetup, run: TrainProgress, epoch: int, seconds: float,
               steps_timed: int) -> dict[str, float]:
    """Validation losses, KID, history row, checkpoint (and the best one) at the end of an epoch's steps."""
    train, state, distributed = setup.config.train, run.state, setup.session.distributed
    steps_in_epoch = state.step - epoch * setup.batches.steps_per_epoch
    totals = distributed.sum(run.epoch_totals.clone()) / (steps_in_epoch * distributed.world_size)
    row: dict[str, float] = {"epoch": epoch + 1, "step": state.step}
    row.update({f"train_{name}": value for name, value in zip(LOSS_NAMES, totals.tolist())})
    evaluation_started = time.perf_counter()
    row.update(validation_losses(setup.model, setup.validation, setup.config, setup.session.runtime, distributed))
    if setup.kid_extractor is not None and (epoch + 1) % train.kid_every == 0:
        labels = setup.validation.label_data
        kid = keras_kid(setup.model, setup.kid_extractor, setup.kid_real, count=setup.validation.count,
                        steps=train.kid_steps, seed=mix_seed(train.seed, EVALUATION), batch_size=train.kid_batch_size,
                        generation_batch_size=train.eval_batch_size, runtime=setup.session.runtime,
                        distributed=distributed, labels=labels.tolist() if labels is not None else None,
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
    _save(setup, run, best=improved)
    return row


def _check_finite(setup: TrainingSetup, run: TrainProgress) -> None:
    if setup.session.distributed.any(bool(run.nonfinite.item())):
        latest = setup.layout.step_checkpoints()
        kept = f"the last good checkpoint {latest[-1]} is in place" if latest else "no checkpoint had been written yet"
        raise TrainingError(f"the training loss became NaN or infinite by step {run.state.step}; training stopped "
                            f"and {kept}. A lower --lr (now {setup.config.train.lr}) usually helps")


def _latest(layout: RunLayout) -> Path:
    checkpoints = layout.step_checkpoints()
    return checkpoints[-1] if checkpoints else layout.root


def _save(setup: TrainingSetup, run: TrainProgress, best: bool = False) -> Path:
    """Checkpoint (rank 0 writes, every rank's generator state included); never saves non-finite weights."""
    _check_finite(setup, run)
    distributed, layout = setup.session.distributed, setup.layout
    generator_states = distributed.gather(run.noise_generator.get_state().cpu())
    folder = layout.step_checkpoint(run.state.step).folder
    failure = None
    if distributed.is_main:
        state = ckpt.training_state_dict(run.state, setup.optimizer, generator_states, run.epoch_totals,
                                         setup.pixels_sha256, run.epoch_seconds, run.epoch_timed_steps)
        try:
            ckpt.write_checkpoint(folder, setup.model, setup.config, state)
            if best:
                ckpt.write_checkpoint(layout.best.folder, setup.model, setup.config, state)
            ckpt.prune_checkpoints(layout.root, setup.config.train.keep_checkpoints)
        except (OSError, ckpt.CheckpointError) as error:
            previous = [p for p in layout.step_checkpoints() if p != folder]
            kept = f"the previous checkpoint {previous[-1]} is intact" if previous else "no earlier checkpoint exists"
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            failure = f"could not write checkpoint {folder}: {reason}; training stopped and {kept}"
    failure = distributed.broadcast(failure)
    if failure:
        raise TrainingError(failure)
    return folder


def _check_ranks_agree(setup: TrainingSetup) -> None:
    """Under data parallelism, every rank must end with the same weights; a mismatch is an error."""
    distributed = setup.session.distributed
    if not distributed.enabled:
        return
    sums = torch.stack([t.double().sum() for t in setup.model.state_dict().values() if t.is_floating_point()])
    per_rank = distributed.gather(sums.cpu())
    if any(not torch.equal(per_rank[0], other) for other in per_rank[1:]):
        raise TrainingError("the data-parallel ranks ended with different weights")
    if distributed.is_main:
        write_text(setup.layout.distributed_report, json.dumps({
            "world_size": distributed.world_size, "backend": torch.distributed.get_backend(),
            "batchnorm": "sync" if any(isinstance(m, nn.SyncBatchNorm) for m in setup.model.network.modules())
            else "local, running statistics averaged over ranks after every step",
            "weights_fingerprint_per_rank": [f.sum().item() for f in per_rank]}, indent=2) + "\n")
