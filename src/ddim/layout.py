"""Where a run keeps its files: every file and folder name of a run folder and of a checkpoint folder, once.

Every reader and writer asks :class:`RunLayout` or :class:`CheckpointLayout` for a path; no other module spells
one of these names::

    runs/flowers/
      config.json               every setting of the run
      history.csv, losses.png   per-epoch numbers and their plot
      metrics.jsonl             every logged number, one JSON object a line
      samples/epoch_0001.png    the per-epoch grid
      tensorboard/              TensorBoard event files
      distributed.json          the ranks' agreement after a torchrun run
      checkpoints/step_000000511/{model.safetensors, config.json, training_state.pt}
      checkpoints/best/         the checkpoint with the lowest validation KID so far
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .files import FolderLock
from .reading import ReadError, read_json

CONFIG_NAME = "config.json"
_STEP_PREFIX = "step_"
_STEP_FOLDER = re.compile(rf"^{_STEP_PREFIX}(\d+)$")


def ddim_folders_under(folder: Path) -> list[Path]:
    """The run and checkpoint folders of ddim under ``folder`` (those holding a ddim ``config.json``, or the lock of
    a run that is starting), outermost first: a data folder that holds a run must not train on the run's grids."""
    found = []
    for where, _, names in os.walk(folder):  # one walk of the data folder for both marks
        here = Path(where)
        if FolderLock.NAME in names and here != Path(folder):
            found.append(here)
        elif CONFIG_NAME in names and _is_ddim_config(here / CONFIG_NAME):
            found.append(here)
    outermost = sorted(set(found), key=lambda p: len(p.parts))
    return [p for i, p in enumerate(outermost) if not any(q in p.parents for q in outermost[:i])]


def _is_ddim_config(path: Path) -> bool:
    """Whether ``path`` is a ddim run or checkpoint configuration (not someone else's config.json)."""
    try:
        data = read_json(path, limit=2**20)
    except (OSError, ReadError):
        return False
    return isinstance(data, dict) and "model" in data and ("train" in data or "data" in data)


@dataclass(frozen=True)
class CheckpointLayout:
    """The files of one checkpoint folder."""

    folder: Path

    @property
    def weights(self) -> Path:
        """The network, EMA network and normaliser weights (safetensors)."""
        return self.folder / "model.safetensors"

    @property
    def config(self) -> Path:
        """The run's configuration, so the folder alone rebuilds the model."""
        return self.folder / CONFIG_NAME

    @property
    def training_state(self) -> Path:
        """The optimiser, counters, history and generator states of an exact resume."""
        return self.folder / "training_state.pt"

    @property
    def step(self) -> int | None:
        """The step of a ``step_*`` folder (None for ``best`` and other names)."""
        match = _STEP_FOLDER.match(self.folder.name)
        return int(match.group(1)) if match else None

    @property
    def run(self) -> "RunLayout | None":
        """The run folder this checkpoint belongs to (None for a checkpoint kept elsewhere)."""
        parent = self.folder.parent
        return RunLayout(parent.parent) if parent.name == RunLayout.CHECKPOINTS else None


@dataclass(frozen=True)
class RunLayout:
    """The files and folders of one run folder."""

    root: Path
    CHECKPOINTS = "checkpoints"

    @property
    def config(self) -> Path:
        """Every setting of the run (``RunConfig.save``)."""
        return self.root / CONFIG_NAME

    @property
    def history(self) -> Path:
        """The per-epoch history as CSV."""
        return self.root / "history.csv"

    @property
    def history_plot(self) -> Path:
        """The per-epoch history plotted."""
        return self.root / "losses.png"

    @property
    def metrics(self) -> Path:
        """Every logged number, one JSON object a line."""
        return self.root / "metrics.jsonl"

    @property
    def samples(self) -> Path:
        """The per-epoch sample grids."""
        return self.root / "samples"

    def sample_grid(self, epoch: int) -> Path:
        """The sample grid after ``epoch`` (1-based)."""
        return self.samples / f"epoch_{epoch:04d}.png"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard's event files."""
        return self.root / "tensorboard"

    @property
    def distributed_report(self) -> Path:
        """What a torchrun run's ranks agreed on at its end."""
        return self.root / "distributed.json"

    @property
    def lock(self) -> Path:
        """The lock file of the process training in this folder."""
        return self.root / FolderLock.NAME

    @property
    def checkpoints(self) -> Path:
        """The folder of the checkpoints."""
        return self.root / self.CHECKPOINTS

    @property
    def best(self) -> CheckpointLayout:
        """The checkpoint with the lowest validation KID so far."""
        return CheckpointLayout(self.checkpoints / "best")

    def step_checkpoint(self, step: int) -> CheckpointLayout:
        """The checkpoint taken after ``step`` optimiser steps."""
        return CheckpointLayout(self.checkpoints / f"{_STEP_PREFIX}{step:09d}")

    def step_checkpoints(self) -> list[Path]:
        """The step checkpoints that exist, oldest first."""
        if not self.checkpoints.is_dir():
            return []
        found = [(CheckpointLayout(path).step, path) for path in self.checkpoints.iterdir() if path.is_dir()]
        return [path for step, path in sorted((s, p) for s, p in found if s is not None)]

    def holds_a_run(self) -> bool:
        """Whether a run has started here (its configuration or a checkpoint exists)."""
        return self.config.exists() or bool(self.step_checkpoints())

    def final_samples(self) -> Path:
        """Where the end-of-run summary suggests ``ddim sample`` writes."""
        return self.root / "final"

    def evaluation(self) -> Path:
        """Where the end-of-run summary suggests ``ddim evaluate --json`` writes."""
        return self.root / "evaluate.json"
