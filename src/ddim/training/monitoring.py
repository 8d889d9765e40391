"""Watching a run while it trains: TensorBoard event files and a JSON-lines log of every metric.

:class:`TensorBoardLogger` writes ``RUN_DIR/tensorboard`` (view it with ``tensorboard --logdir
RUN_DIR/tensorboard``): the step losses, learning rate and throughput at every log, the epoch's
validation losses, KID, timings and its sample grid at every epoch's end. :class:`MetricsLog` appends
the same numbers to ``RUN_DIR/metrics.jsonl``, one flushed JSON object a line, for scripts.

Resuming at step S: both continue in the same place. The event files of the interrupted session stay;
the new writer marks step S + 1 as a restart (``purge_step``), so TensorBoard drops whatever the old
session logged after its last checkpoint and the curves continue without a doubled tail. metrics.jsonl
is rewritten without its lines after step S (and without a line torn by a crash), then appended to.
"""

from __future__ import annotations

import json
import time
import weakref
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from PIL import Image

from ..checkpoint import TrainState
from ..files import WriteError, write_text
from ..model import DiffusionModel
from .callbacks import Callback, HistoryWriter, ProgressBar, RunInfo, SampleGrid
from .errors import TrainingError


class TensorBoardUnavailable(TrainingError):
    """TensorBoard logging was asked for but the ``tensorboard`` package cannot be imported."""


def summary_writer_class() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, or :class:`TensorBoardUnavailable` saying what to do."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:  # the tensorboard package (or one it needs) is missing
        raise TensorBoardUnavailable(f"TensorBoard logging needs the tensorboard package ({error}): install it "
                                     "with pip install tensorboard, or train with --no-tensorboard") from None
    return SummaryWriter


def epoch_tag(key: str, kid_size: int) -> str | None:
    """The TensorBoard tag of a history-row key: val/noise_loss, val/kid_75px, epoch/train_noise_loss, ...

    None for ``step`` (it is the x axis).
    """
    if key == "step":
        return None
    if key == "val_kid":
        return f"val/kid_{kid_size}px"
    if key.startswith("val_"):
        return f"val/{key[4:]}"
    return f"epoch/{key}"


def _wrapped(path: Path, error: OSError) -> WriteError:
    """An OSError while writing ``path`` as the :class:`WriteError` that ``fit`` reports (checkpoints intact)."""
    return WriteError(error.errno, f"cannot write {path}: {error.strerror or error}")


class TensorBoardLogger(Callback):
    """TensorBoard event files in ``RUN_DIR/<folder>``: step scalars, epoch scalars and the epoch's sample grid.

    Construction fails with :class:`TensorBoardUnavailable` (before any training) when the package is missing.
    """

    def __init__(self, images: bool = True, flush_secs: int = 30) -> None:
        self.writer_class = summary_writer_class()
        self.images, self.flush_secs = images, flush_secs
        self.writer: Any = None
        self._close: Any = None

    def on_train_start(self, info: RunInfo) -> None:
        self.on_train_end(info.state)  # a second fit with the same logger starts a new writer
        self.log_dir = info.layout.tensorboard
        self.layout = info.layout
        self.kid_size = info.config.train.kid_image_size
        # resumed: hide what followed the checkpoint, and from a checkpoint inside an epoch (a --max-steps end) also
        # the partial epoch's points at that step, which the completed epoch writes again
        purge = (info.state.step + (info.state.step % info.steps_per_epoch == 0)) if info.state.step else None
        try:
            self.writer = self.writer_class(str(self.log_dir), purge_step=purge, flush_secs=self.flush_secs)
            self._close = weakref.finalize(self, self.writer.close)  # also at interpreter exit (an interrupted run)
            config = json.dumps(info.config.to_dict(), indent=2)
            self.writer.add_text("run", f"{info.description}\n\n    " + config.replace("\n", "\n    "),
                                 global_step=info.state.step)
        except OSError as error:
            raise _wrapped(self.log_dir, error) from error

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        if self.writer is None:
            return
        try:
            for key, value in metrics.items():
                self.writer.add_scalar(f"train/{key}", value, step)
        except OSError as error:
            raise _wrapped(self.log_dir, error) from error

    def on_epoch_end(self, epoch: int, row: dict[str, float], model: DiffusionModel, state: TrainState) -> None:
        if self.writer is None:
            return
        step = int(row["step"])
        try:
            for key, value in row.items():
                tag = epoch_tag(key, self.kid_size)
                if tag is not None:
                    self.writer.add_scalar(tag, value, step)
            grid = self.layout.sample_grid(epoch)  # SampleGrid's file, when it ran before this callback
            if self.images and grid.is_file():
                self.writer.add_image(self.layout.samples.name, _read_rgb(grid), step, dataformats="HWC")
            self.writer.flush()
        except OSError as error:
            raise _wrapped(self.log_dir, error) from error

    def on_train_end(self, state: TrainState) -> None:
        if self._close is not None:
            self._close()  # flushes and closes the event file
        self.writer = self._close = None


def _read_rgb(path: Path) -> Any:
    """A PNG as an (H, W, 3) uint8 array."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


class MetricsLog(Callback):
    """The run's metrics.jsonl: a JSON line per log (``{"kind": "step", "step", "time", losses...}``) and per epoch
    (``{"kind": "epoch", "time", **row}``), each flushed as it is written."""

    def __init__(self) -> None:
        self.handle: TextIO | None = None

    def on_train_start(self, info: RunInfo) -> None:
        self.on_train_end(info.state)
        self.path = info.layout.metrics
        kept = _lines_up_to(self.path, info.state.step) if info.state.step else []
        if info.state.step % info.steps_per_epoch:  # resumed inside an epoch: its partial record is written again
            partial = {"kind": "epoch", "step": info.state.step}
            kept = [line for line in kept if {key: json.loads(line).get(key) for key in partial} != partial]
        write_text(self.path, "".join(line + "\n" for line in kept))  # a resumed run continues from its step
        try:
            self.handle = open(self.path, "a")  # noqa: SIM115 (open for the whole run)
        except OSError as error:
            raise _wrapped(self.path, error) from error

    def _write(self, record: dict[str, Any]) -> None:
        if self.handle is None:
            return
        try:
            self.handle.write(json.dumps(record) + "\n")
            self.handle.flush()
        except OSError as error:
            raise _wrapped(self.path, error) from error

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        self._write({"kind": "step", "step": step, "time": round(time.time(), 3), **metrics})

    def on_epoch_end(self, epoch: int, row: dict[str, float], model: DiffusionModel, state: TrainState) -> None:
        self._write({"kind": "epoch", "time": round(time.time(), 3), **row})

    def on_train_end(self, state: TrainState) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _lines_up_to(path: Path, step: int) -> list[str]:
    """The complete JSON lines of ``path`` whose step is at most ``step`` (none if there is no file)."""
    if not path.is_file():
        return []
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash
        if isinstance(record, dict) and record.get("step", step + 1) <= step:
            kept.append(line)
    return kept


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def default_callbacks(progress: bool = True, tensorboard: bool = True, log_style: str = "bar",
                      hints: str = "cli") -> list[Callback]:
    """What ``ddim train`` shows and writes: progress (a bar or plain lines, see :class:`ProgressBar`, whose
    summary suggests the next step as commands or, for ``ddim.fit``, as Python), grids, history and plot,
    metrics.jsonl, TensorBoard."""
    callbacks: list[Callback] = [ProgressBar(enabled=progress, style=log_style, hints=hints), SampleGrid(),
                                 HistoryWriter(),
                                 MetricsLog()]
    if tensorboard:
        callbacks.append(TensorBoardLogger())
    return callbacks
