"""The checkpoint's card: training images seen, epochs, validation KID and the config, from the model's files.

Where the facts come from: a checkpoint folder's training state (its step, its per-epoch history with
``val_kid``, the best KID), else the run folder's ``history.csv``; an exported file's metadata (``step``,
``epoch``, ``val_kid``, ``val_kid_epoch``, ``best_kid``), and the training state of the checkpoint it was exported from when that folder is still there.
A fact no file holds is ``None`` and shows as "unknown".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checkpoint import read_training_state
from ..export import builtin_names
from ..integrity import CheckpointError, read_metadata
from ..layout import CheckpointLayout
from ..model import DiffusionModel
from ..reports import read_history

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Card:
    """What is known of how a model was trained (``None``: no file says)."""

    source: str
    step: int | None = None
    batch_size: int | None = None
    epochs: int | None = None
    planned_epochs: int | None = None
    last_kid: float | None = None
    last_kid_epoch: int | None = None
    best_kid: float | None = None
    kid_protocol: str = ""
    kid_image_size: int = 0  # the Inception input size of the per-epoch KID (75 px: the Keras example's)
    parameters: int = 0
    image_size: int = 0
    class_names: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def images_seen(self) -> int | None:
        """Training images the network has seen: optimiser steps × the global batch."""
        return None if self.step is None or self.batch_size is None else self.step * self.batch_size


@dataclass(frozen=True)
class _Progress:
    step: int | None
    history: list[dict[str, float]]
    best_kid: float | None


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _whole(value: Any) -> int | None:
    number = _finite(value)
    return None if number is None else int(number)


def _folder_progress(folder: Path) -> _Progress | None:
    """The step, history and best KID of a checkpoint folder: its training state, else its run's history."""
    checkpoint = CheckpointLayout(folder)
    try:
        state, _ = read_training_state(folder)
        return _Progress(state.step, state.history, _finite(state.best_kid))
    except CheckpointError:
        pass
    run = checkpoint.run
    if run is None or not run.history.is_file():
        return None
    try:
        history = read_history(run.history)
    except (OSError, ValueError):
        return None
    step = checkpoint.step
    if step is not None:  # the run may have gone on after this checkpoint: keep the epochs it had seen
        history = [row for row in history if _whole(row.get("step")) is None or _whole(row["step"]) <= step]
    elif history:
        step = _whole(history[-1].get("step"))
    return _Progress(step, history, None)


def _file_progress(path: Path) -> tuple[_Progress | None, int | None, int | None]:
    """An exported file's progress: (its source folder's progress, the step and epoch in its metadata)."""
    try:
        metadata = read_metadata(path)
    except CheckpointError:
        metadata = {}
    step, epoch = _whole(metadata.get("step")), _whole(metadata.get("epoch"))
    source = Path(metadata["source"]) if metadata.get("source") else None
    progress = _folder_progress(source) if source is not None and source.is_dir() else None
    if progress is not None and step is not None and progress.step != step:
        progress = None  # the folder now holds another checkpoint than the one exported
    kid, kid_epoch = _finite(metadata.get("val_kid")), _whole(metadata.get("val_kid_epoch"))
    if progress is None and kid is not None and kid_epoch is not None:  # the file's own record of its KID
        progress = _Progress(step, [{"epoch": kid_epoch, "val_kid": kid}, {"epoch": epoch, "step": step}],
                             _finite(metadata.get("best_kid")))
    return progress, step, epoch


def read_card(model: DiffusionModel) -> Card:
    """The card of a model (what its ``origin`` says: a model built in this process has no files to read)."""
    config = model.run_config
    source = model.origin.source if model.origin is not None else Path("")
    step = epochs = None
    if source.is_dir():
        progress = _folder_progress(source)
    elif source.is_file():
        progress, step, epochs = _file_progress(source)
    else:
        progress = None
    history = progress.history if progress else []
    if progress is not None:  # a checkpoint's own record: epochs completed before it (0 within the first)
        step = progress.step if progress.step is not None else step
        epochs = _whole(history[-1].get("epoch")) if history else 0
    measured = [(_whole(row.get("epoch")), _finite(row.get("val_kid"))) for row in history]
    measured = [(epoch, kid) for epoch, kid in measured if kid is not None]
    best = progress.best_kid if progress and progress.best_kid is not None else None
    if best is None and measured:
        best = min(kid for _, kid in measured)
    train = config.train
    return Card(source=str(source) if str(source) not in ("", ".") else UNKNOWN, step=step,
                batch_size=train.batch_size, epochs=epochs, planned_epochs=train.epochs,
                last_kid=measured[-1][1] if measured else None, last_kid_epoch=measured[-1][0] if measured else None,
                best_kid=best, kid_image_size=train.kid_image_size, kid_protocol=f"{train.kid_image_size} px Inception, images from {train.kid_steps} "
                "DDIM steps, the validation set", parameters=sum(p.numel() for p in model.ema_network.parameters()),
                image_size=model.config.image_size, class_names=model.class_names, config=config.to_dict())


def _count(value: int | None) -> str:
    return UNKNOWN if value is None else f"{value:,}"


def title(card: Card) -> str:
    """A short name: ``flowers, step 4,000`` for a run's checkpoint, the ``--checkpoint`` names of a built-in model
    (``pretrained (built in)``), the file's name for another exported model."""
    source = Path(card.source)
    run = CheckpointLayout(source).run
    if run is not None and card.step is not None:
        return f"{run.root.name}, step {card.step:,}"
    names = builtin_names(source)
    if names:
        return f"{' / '.join(names)} (built in)"
    return source.name or "model"


def summary_line(card: Card) -> str:
    """One line for the top of the page: images seen, epochs, validation KID."""
    kid = UNKNOWN if card.last_kid is None else f"{card.last_kid:.3f}"
    if card.last_kid_epoch is not None:
        kid += f" (epoch {card.last_kid_epoch})"
    protocol = f" at {card.kid_image_size} px, the per-epoch protocol" if card.kid_image_size else ""
    return (f"{_count(card.images_seen)} training images seen · {_count(card.epochs)} epochs · "
            f"per-epoch validation KID {kid}{protocol} (not the 299 px KID and FID of ddim evaluate)")


def card_markdown(card: Card) -> str:
    """The card as a Markdown table (the config is shown beside it as JSON)."""
    if card.images_seen is None:
        seen = UNKNOWN
    else:
        seen = f"{card.images_seen:,} ({card.step:,} steps of {card.batch_size})"
    epochs = _count(card.epochs) + (f" of {card.planned_epochs}" if card.epochs is not None else "")
    if card.last_kid is None:
        kid = f"{UNKNOWN} (not measured, or not recorded with this file)"
    else:
        kid = f"{card.last_kid:.4f}" + (f" after epoch {card.last_kid_epoch}" if card.last_kid_epoch else "")
        if card.best_kid is not None:
            kid += f" (best {card.best_kid:.4f})"
        kid += f"; {card.kid_protocol}"
    kind = f"conditional, {len(card.class_names)} classes" if card.class_names else "unconditional"
    model = f"{card.image_size} px, {card.parameters / 1e6:.2f} M parameters (EMA network), {kind}"
    rows = [f"| {name} | {value} |" for name, value in [("model", model), ("training images seen", seen),
                                                          ("epochs", epochs), ("validation KID", kid)]]
    return "\n".join([f"| checkpoint | `{card.source}` |", "| --- | --- |", *rows])


def card_facts(card: Card) -> dict[str, Any]:
    """The card as JSON-ready facts (``None`` where unknown)."""
    return {"source": card.source, "step": card.step, "batch_size": card.batch_size,
            "images_seen": card.images_seen, "epochs": card.epochs, "planned_epochs": card.planned_epochs,
            "validation_kid": card.last_kid, "validation_kid_epoch": card.last_kid_epoch, "best_validation_kid":
            card.best_kid, "kid_protocol": card.kid_protocol, "parameters": card.parameters,
            "class_names": list(card.class_names), "config": card.config}
