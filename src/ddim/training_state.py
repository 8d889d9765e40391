"""The training state of a checkpoint (``training_state.pt``): everything besides the weights that an exact
resume needs, written as plain tensors and containers, read back with ``weights_only=True`` (no pickle ever
runs), and every entry checked for its type and range before a resume uses it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .integrity import CheckpointError
from .layout import CheckpointLayout
from .reading import ReadError, regular_file_size


@dataclass
class TrainState:
    """Where training stands: optimiser steps taken, the per-epoch history, the best validation KID."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_kid: float | None = None  # the lowest validation KID so far (its checkpoint is the run's best)


def training_state_dict(state: TrainState, optimizer: torch.optim.Optimizer, noise_generators: list[torch.Tensor],
                        epoch_totals: torch.Tensor, data_fingerprint: str, epoch_seconds: float = 0.0,
                        epoch_timed_steps: int = 0) -> dict[str, Any]:
    """The contents of the training state: everything besides the weights that an exact resume needs.

    ``epoch_seconds``: how long the current epoch's first ``epoch_timed_steps`` steps took, so that a resumed
    epoch's history row reports the whole epoch's time and images/s, not only the part after the resume.
    """
    return {"step": state.step, "history": state.history, "best_kid": state.best_kid,
            "optimizer": optimizer.state_dict(), "noise_generators": noise_generators,
            "epoch_totals": epoch_totals.detach().cpu(), "world_size": len(noise_generators),
            "data_fingerprint": data_fingerprint, "epoch_seconds": float(epoch_seconds),
            "epoch_timed_steps": int(epoch_timed_steps)}


def read_training_state(folder: Path) -> tuple[TrainState, dict[str, Any]]:
    """A checkpoint's :class:`TrainState` and its raw training state, every entry a resume reads checked for its
    type and range (a :class:`CheckpointError` naming the file and the entry otherwise)."""
    checkpoint = CheckpointLayout(Path(folder))
    raw = load_training_state(folder)
    problem = training_state_problem(raw)
    if problem is not None:
        raise CheckpointError(f"{checkpoint.training_state} is damaged or foreign: {problem}")
    return TrainState(step=raw["step"], history=list(raw["history"]), best_kid=raw.get("best_kid")), raw


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def training_state_problem(raw: Any) -> str | None:
    """What is wrong with a training state's entries (None: nothing a resume would trip over)."""
    if not isinstance(raw, dict):
        return f"it holds a {type(raw).__name__}, not the dictionary ddim writes"
    missing = [key for key in ("step", "history", "optimizer", "noise_generators") if key not in raw]
    if missing:
        return f"it lacks the {', '.join(missing)} entr{'ies' if len(missing) > 1 else 'y'} a resume needs"
    if not _count(raw["step"]):
        return f"its step is {raw['step']!r}, not a count of steps"
    history = raw["history"]
    if not isinstance(history, list):
        return "its history is not a list of epochs"
    for index, row in enumerate(history):
        if not isinstance(row, dict) or not _count(row.get("epoch")) or not _count(row.get("step")) or \
                row["step"] > raw["step"]:
            return f"history row {index} has no valid epoch and step (at most step {raw['step']})"
        if not all(isinstance(key, str) and isinstance(value, (int, float, str, type(None)))
                   for key, value in row.items()):
            return f"history row {index} holds a value that is not a number"
    if not isinstance(raw["optimizer"], dict):
        return "its optimizer entry is not an optimiser state"
    generators = raw["noise_generators"]
    if not isinstance(generators, list) or not generators or not all(
            isinstance(g, torch.Tensor) and g.dtype == torch.uint8 and g.dim() == 1 for g in generators):
        return "its noise_generators are not generator states (1-D byte tensors)"
    totals = raw.get("epoch_totals")
    if totals is not None and (not isinstance(totals, torch.Tensor) or totals.dim() != 1 or
                               not totals.is_floating_point() or not torch.isfinite(totals).all()):
        return "its epoch_totals are not finite sums of this epoch's losses"
    best = raw.get("best_kid")
    if best is not None and not _real(best):
        return f"its best_kid is {best!r}, not a number"
    if "epoch_seconds" in raw and not (_real(raw["epoch_seconds"]) and raw["epoch_seconds"] >= 0):
        return f"its epoch_seconds is {raw['epoch_seconds']!r}"
    if "epoch_timed_steps" in raw and not _count(raw["epoch_timed_steps"]):
        return f"its epoch_timed_steps is {raw['epoch_timed_steps']!r}"
    for key in ("data_fingerprint", "weights_sha256"):
        if key in raw and not isinstance(raw[key], str):
            return f"its {key} is not a checksum"
    return None


def load_training_state(folder: Path) -> dict[str, Any]:
    """The optimiser state, counters, history and generator states of a checkpoint folder."""
    checkpoint = CheckpointLayout(Path(folder))
    path = checkpoint.training_state
    try:
        regular_file_size(path)  # never a pipe or a device planted under the name (torch.load would wait or fill memory)
        return torch.load(path, map_location="cpu", weights_only=True)
    except ReadError as error:
        raise CheckpointError(f"cannot read {path}: {error}") from error
    except FileNotFoundError as error:
        raise CheckpointError(f"checkpoint {checkpoint.folder} has no {path.name}, so training cannot resume "
                              "from it") from error
    except Exception as error:  # torch raises several types for a damaged file
        raise CheckpointError(f"cannot read {path} (truncated or foreign): {error}") from error
