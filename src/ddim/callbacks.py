"""What the training loop shows and writes besides checkpoints: progress, sample grids, history."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .config import RunConfig
from .model import DiffusionModel, generate_images
from .reports import plot_history, save_grid, write_history
from .seeding import PLOT_NOISE, mix_seed
from .speed import Speed
from .train import TrainState

HISTORY_FILE = "history.csv"
PLOT_FILE = "losses.png"
SAMPLES_DIR = "samples"


def _format(metrics: dict[str, Any], keys: tuple[str, ...]) -> str:
    return " ".join(f"{key}={metrics[key]:.4f}" for key in keys if key in metrics)


class ProgressBar:
    """A tqdm bar per epoch with the running losses, and a one-line summary when the epoch ends."""

    def __init__(self, file: Any = None, enabled: bool = True) -> None:
        self.file = file or sys.stderr
        self.enabled = enabled
        self.bar: tqdm | None = None
        self.epochs = 0

    def on_train_start(self, run_dir: Path, config: RunConfig, state: TrainState, steps_per_epoch: int) -> None:
        self.epochs = config.train.epochs
        self.steps_per_epoch = steps_per_epoch

    def on_epoch_start(self, epoch: int, first_step: int, steps_per_epoch: int) -> None:
        self.bar = tqdm(total=steps_per_epoch, initial=first_step, desc=f"epoch {epoch}/{self.epochs}",
                        unit="step", file=self.file, disable=not self.enabled, leave=False, dynamic_ncols=True)

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update((step - 1) % self.steps_per_epoch + 1 - self.bar.n)
            self.bar.set_postfix(noise_loss=f"{metrics['noise_loss']:.4f}", image_loss=f"{metrics['image_loss']:.4f}")

    def on_epoch_end(self, epoch: int, row: dict[str, float], model: DiffusionModel, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()
        train = _format(row, ("train_noise_loss", "train_image_loss"))
        val = _format(row, ("val_noise_loss", "val_image_loss", "val_kid"))
        line = (f"epoch {epoch}/{self.epochs} step {int(row['step'])}: {train} | {val} | "
                f"{row['seconds']:.1f} s, {row['images_per_second']:.0f} img/s")
        if self.enabled:
            tqdm.write(line, file=self.file)


class SampleGrid:
    """After every epoch, a grid from the EMA network, always from the same starting noise."""

    def __init__(self, run_dir: Path, config: RunConfig, speed: Speed | None = None) -> None:
        self.folder = Path(run_dir) / SAMPLES_DIR
        self.config = config
        self.speed = speed

    def on_epoch_end(self, epoch: int, row: dict[str, float], model: DiffusionModel, state: TrainState) -> None:
        train = self.config.train
        device = next(model.parameters()).device
        images = generate_images(model, seed=mix_seed(train.seed, PLOT_NOISE), indices=range(train.plot_images),
                                 steps=train.plot_steps, batch_size=train.eval_batch_size, device=device,
                                 speed=self.speed)
        save_grid(images, self.folder / f"epoch_{epoch:04d}.png")


class HistoryWriter:
    """The per-epoch history as CSV and its plot, rewritten after every epoch (so an interrupted run has both)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def on_epoch_end(self, epoch: int, row: dict[str, float], model: DiffusionModel, state: TrainState) -> None:
        write_history(state.history, self.run_dir / HISTORY_FILE)
        plot_history(state.history, self.run_dir / PLOT_FILE)
