"""What the training loop shows and writes besides checkpoints: the hooks, progress, sample grids, history.

A callback subclasses :class:`Callback` and overrides the hooks it needs; the others do nothing. A
method named ``on_...`` that is not a hook is an error when the class is defined, so a misspelt hook
can never be silently ignored. Callbacks run on rank 0 only.
"""

from __future__ import annotations

import datetime
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..checkpoint import TrainState
from ..config import RunConfig
from ..ema import YOUNG_SHARE, initial_share
from ..layout import RunLayout
from ..model import DiffusionModel, generate_images
from ..plots import plot_history
from ..reports import save_grid, write_history
from ..runtime import Runtime
from ..seeding import PLOT_NOISE, mix_seed


@dataclass(frozen=True)
class RunInfo:
    """What a run is about to do, given to ``on_train_start``."""

    layout: RunLayout  # the run folder's files
    config: RunConfig
    state: TrainState  # where it starts (step 0, or the resumed checkpoint's)
    runtime: Runtime  # how the network runs (for callbacks that sample)
    steps_per_epoch: int
    total_steps: int
    description: str  # e.g. "training on 6551 images (1638 for validation) from ...; run folder ...; ..."
    notices: tuple[str, ...] = ()  # things a user must hear even without progress output (skipped images)
    model: DiffusionModel | None = None  # the model as it starts (the resumed checkpoint's weights)
    validation_images: int = 0  # how many validation images the per-epoch KID compares with

    @property
    def run_dir(self) -> Path:
        """The run folder."""
        return self.layout.root


class Callback:
    """Hooks at the loop's edges; each does nothing unless overridden."""

    HOOKS = ("on_train_start", "on_epoch_start", "on_log", "on_epoch_end", "on_train_end")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = [name for name in vars(cls) if name.startswith("on_") and name not in Callback.HOOKS]
        if unknown:
            raise TypeError(f"{cls.__name__}.{unknown[0]} is not a training hook (hooks: {', '.join(Callback.HOOKS)})")

    def on_train_start(self, info: RunInfo) -> None:
        """Before the first step (also of a resumed run)."""

    def on_epoch_start(self, epoch: int, first_step: int, steps_per_epoch: int) -> None:
        """Before the steps of ``epoch`` (1-based); ``first_step`` > 0 when resuming inside it."""

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        """Every ``log_every`` steps: the mean losses since the last log."""

    def on_epoch_end(self, epoch: int, row: dict[str, float], model: DiffusionModel, state: TrainState) -> None:
        """After the epoch's evaluation and checkpoint: its history row."""

    def on_train_end(self, state: TrainState) -> None:
        """After the last step."""


class Callbacks(Callback):
    """Calls each hook on every callback in order."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"{callback!r} is not a ddim.callbacks.Callback")
        self.callbacks = list(callbacks)

    def on_train_start(self, info: RunInfo) -> None:
        for callback in self.callbacks:
            callback.on_train_start(info)

    def on_epoch_start(self, epoch: int, first_step: int, steps_per_epoch: int) -> None:
        for callback in self.callbacks:
            callback.on_epoch_start(epoch, first_step, steps_per_epoch)

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        for callback in self.callbacks:
            callback.on_log(step, metrics)

    def on_epoch_end(self, epoch: int, row: dict[str, float], model: DiffusionModel, state: TrainState) -> None:
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, row, model, state)

    def on_train_end(self, state: TrainState) -> None:
        for callback in self.callbacks:
            callback.on_train_end(state)


def _format(metrics: dict[str, Any], keys: tuple[str, ...]) -> str:
    return " ".join(f"{key}={metrics[key]:.4f}" for key in keys if key in metrics)


LOG_STYLES = ("bar", "plain")  #: a live bar with a line per epoch, or plain lines only (for log files)


HINTS = ("cli", "api")  #: how the end-of-run summary suggests the next step: commands, or Python calls


class ProgressBar(Callback):
    """What the run is about, one bar for the whole run (its ETA included), a line per epoch, a summary.

    ``style="plain"``: no bar, no carriage returns; each epoch's line carries the time left instead (for a log
    file or a terminal that is not one). ``enabled=False``: only the notices and the summary.
    """

    def __init__(self, file: Any = None, enabled: bool = True, style: str = "bar", hints: str = "cli") -> None:
        if style not in LOG_STYLES:
            raise ValueError(f"log style must be one of {LOG_STYLES}, got {style!r}")
        if hints not in HINTS:
            raise ValueError(f"hints must be one of {HINTS}, got {hints!r}")
        self.file = file or sys.stderr
        self.enabled = enabled
        self.style = style
        self.hints = hints  # what to do next, as commands (cli) or as Python (api: ddim.fit's caller)
        self.bar: tqdm | None = None

    def on_train_start(self, info: RunInfo) -> None:
        self.info = info
        self.first_step, self.started = info.state.step, time.perf_counter()
        self.paced_from: tuple[int, float] | None = None  # (step, time) at this session's first epoch end
        self.epochs = -(-info.total_steps // info.steps_per_epoch)  # epochs this run reaches (max-steps included)
        for notice in info.notices:  # shown even with the bar off
            print(f"ddim: {notice}", file=self.file)
        if self.enabled:
            print(f"ddim: {info.description}", file=self.file)
        if info.state.step < info.total_steps and self.style == "bar":
            self.bar = tqdm(total=info.total_steps, initial=info.state.step, unit="step", file=self.file,
                            disable=not self.enabled, dynamic_ncols=True, desc=self._epoch_label(info.state.step))

    def _epoch_label(self, step: int) -> str:
        return f"epoch {min(step // self.info.steps_per_epoch + 1, self.epochs)}/{self.epochs}"

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_description(self._epoch_label(step - 1), refresh=False)
            self.bar.set_postfix(noise_loss=f"{metrics['noise_loss']:.4f}", image_loss=f"{metrics['image_loss']:.4f}")

    def on_epoch_end(self, epoch: int, row: dict[str, float], model: DiffusionModel, state: TrainState) -> None:
        train = _format(row, ("train_noise_loss", "train_image_loss"))
        val = _format(row, ("val_noise_loss", "val_image_loss", "val_kid"))
        line = (f"epoch {epoch}/{self.epochs} step {int(row['step'])}: {train} | {val} | "
                f"{row['seconds']:.1f} s, {row['images_per_second']:.0f} img/s")
        if self.enabled and self.style == "plain":
            print(f"ddim: {line}{self._time_left(epoch, row)}", file=self.file, flush=True)
        elif self.enabled:
            tqdm.write(line, file=self.file)

    def _time_left(self, epoch: int, row: dict[str, float]) -> str:
        """`` | 1:02:03 left`` (empty at the end): after this session's first epoch, from its pace since then; at the
        first, whose time includes the start (loading, compiling) and may be a resumed epoch's last few steps, from
        the epoch's training speed and evaluation time."""
        step, now = int(row["step"]), time.perf_counter()
        left = self.info.total_steps - step
        if left <= 0:
            return ""
        if self.paced_from is None or step <= self.paced_from[0]:
            self.paced_from = (step, now)
            rate = row.get("images_per_second")
            if not rate:
                return ""
            seconds = (left * self.info.config.train.batch_size / rate
                       + max(self.epochs - epoch, 0) * row.get("eval_seconds", 0.0))
        else:
            seconds = (now - self.paced_from[1]) / (step - self.paced_from[0]) * left
        return f" | {datetime.timedelta(seconds=round(seconds))} left"

    def on_train_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()
        layout, seconds = self.info.layout, time.perf_counter() - self.started
        lines = [f"done: {state.step - self.first_step} steps in {seconds / 60:.1f} min (step {state.step} of "
                 f"{self.info.total_steps})"]
        if state.best_kid is not None:
            lines.append(f"best validation KID {state.best_kid:.4f}: {layout.best.folder}")
        if self.hints == "cli":
            lines.append(f"next: ddim sample --checkpoint {layout.root} --num 64 --out {layout.final_samples()}")
            lines.append(f"      ddim evaluate --checkpoint {layout.root} --json {layout.evaluation()}")
        else:
            lines.append(f"next: model = ddim.load({str(layout.root)!r}); images = ddim.generate(model, 64)")
            lines.append("      ddim.evaluate(model)")
        for line in lines:
            print(f"ddim: {line}", file=self.file)


def grid_classes(num_classes: int, num_images: int) -> tuple[list[int], int]:
    """A conditional run's grid: about sqrt(num_images) classes spread over the class indices, one row each;
    returns the row classes and the images per row."""
    rows = max(1, min(num_classes, round(math.sqrt(num_images))))
    return sorted({int(round(c)) for c in np.linspace(0, num_classes - 1, rows)}), math.ceil(num_images / rows)


def grid_guidance(guidance: float) -> float:
    """The guidance weight of a conditional run's per-epoch grid: the run's (``--guidance``, also its KID's), but 1
    where that is 0, whose rows, one per class, would all show the same unconditional images."""
    return guidance if guidance > 0 else 1.0


class SampleGrid(Callback):
    """After every epoch, a grid from the EMA network, always from the same starting noise (a conditional run's: a
    fixed set of classes, one labelled row each, the same noises in every row)."""

    def on_train_start(self, info: RunInfo) -> None:
        self.layout = info.layout
        self.config, self.runtime = info.config, info.runtime
        history = info.state.history
        # resumed from an epoch's end whose grid was never written (e.g. a full disk): draw it now
        if history and history[-1]["step"] == info.state.step and info.model is not None:
            epoch = int(history[-1]["epoch"])
            if not self.layout.sample_grid(epoch).exists():
                self.on_epoch_end(epoch, history[-1], info.model, info.state)

    def on_epoch_end(self, epoch: int, row: dict[str, float], model: DiffusionModel, state: TrainState) -> None:
        train = self.config.train
        device = next(model.parameters()).device
        indices, labels, columns, row_labels = list(range(train.plot_images)), None, None, None
        guidance = grid_guidance(train.guidance)
        if model.class_names:
            classes, columns = grid_classes(len(model.class_names), train.plot_images)
            indices, labels = list(range(columns)) * len(classes), [c for c in classes for _ in range(columns)]
            row_labels = [model.class_names[c] for c in classes]
        images = generate_images(model, seed=mix_seed(train.seed, PLOT_NOISE), indices=indices,
                                 steps=train.plot_steps, batch_size=train.eval_batch_size, device=device,
                                 runtime=self.runtime, labels=labels, guidance=guidance)
        share = initial_share(train.ema, int(row["step"]), train.ema_warmup, train.ema_std)
        caption = f"EMA still {share:.0%} initial weights (see --ema-warmup)" if share >= YOUNG_SHARE else None
        save_grid(images, self.layout.sample_grid(epoch), columns=columns, caption=caption, row_labels=row_labels)


class HistoryWriter(Callback):
    """The per-epoch history as CSV and its plot, rewritten after every epoch (so an interrupted run has both)."""

    def on_train_start(self, info: RunInfo) -> None:
        self.layout = info.layout
        train = info.config.train
        self.plot_options = {"title": f"training history of {info.layout.root.name}", "loss": train.loss,
                             "kid_size": train.kid_image_size, "kid_num": info.validation_images,
                             "kid_sampler": f"ddim, {train.kid_steps} steps"}
        if info.state.history:  # a resumed run rewrites what an interrupted write may have lost
            self._write(info.state)

    def _write(self, state: TrainState) -> None:
        write_history(state.history, self.layout.history)
        plot_history(state.history, self.layout.history_plot, **self.plot_options)

    def on_epoch_end(self, epoch: int, row: dict[str, float], model: DiffusionModel, state: TrainState) -> None:
        self._write(state)

