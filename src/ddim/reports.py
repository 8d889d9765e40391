"""Artefacts a person looks at: image grids, individual PNGs, the history table and its plot."""

from __future__ import annotations

import csv
import math
import textwrap
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.transforms.functional import to_tensor
from torchvision.utils import make_grid, save_image

from .files import atomic_path


def grid_columns(count: int) -> int:
    """Columns for a near-square grid of ``count`` images."""
    return max(1, math.ceil(math.sqrt(count)))


def save_grid(images: torch.Tensor, path: Path, columns: int | None = None, caption: str | None = None,
              row_labels: Sequence[str] | None = None) -> Path:
    """Save [0, 1] images (N, 3, H, W) as one PNG grid with 2-pixel gaps, ``row_labels`` (one per row) in a column
    on the left, and ``caption`` in a strip below."""
    grid = make_grid(images.float().cpu(), nrow=columns or grid_columns(len(images)), padding=2, pad_value=1.0)
    if row_labels:
        grid = with_row_labels(grid, row_labels, images.shape[-2])
    if caption:
        grid = with_caption(grid, caption)
    with atomic_path(path) as temporary:  # never a half-written grid
        save_image(grid, temporary)
    return Path(path)


def with_row_labels(grid: torch.Tensor, labels: Sequence[str], image_height: int, width: int = 96) -> torch.Tensor:
    """A [0, 1] grid (3, H, W) with a white column of ``width`` px on its left holding each row's label, wrapped."""
    font = ImageFont.load_default()
    line_height = font.getbbox("Ag")[3] + 2
    column = Image.new("RGB", (width, grid.shape[-2]), "white")
    draw = ImageDraw.Draw(column)
    for row, label in enumerate(labels):
        lines = textwrap.wrap(label, max(4, int((width - 4) / max(font.getlength("x"), 1))))
        lines = lines[:max(1, image_height // line_height)]
        top = 2 + row * (image_height + 2) + max(0, (image_height - line_height * len(lines)) // 2)
        for index, line in enumerate(lines):
            draw.text((2, top + index * line_height), line, fill="black", font=font)
    return torch.cat([to_tensor(column), grid], dim=2)


def with_caption(grid: torch.Tensor, caption: str) -> torch.Tensor:
    """A [0, 1] image (3, H, W) with ``caption`` wrapped in black on a white strip below it."""
    font = ImageFont.load_default()
    lines = textwrap.wrap(caption, max(8, int(grid.shape[-1] / max(font.getlength("x"), 1)) - 1))
    line_height = font.getbbox("Ag")[3] + 3
    strip = Image.new("RGB", (grid.shape[-1], line_height * len(lines) + 4), "white")
    draw = ImageDraw.Draw(strip)
    for index, line in enumerate(lines):
        draw.text((2, 2 + index * line_height), line, fill="black", font=font)
    return torch.cat([grid, to_tensor(strip)], dim=1)


def save_images(images: torch.Tensor, folder: Path, start: int = 0) -> list[Path]:
    """Save [0, 1] images one PNG each, named ``image_00000.png`` upwards from ``start``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for offset, image in enumerate(images):
        path = folder / f"image_{start + offset:05d}.png"
        with atomic_path(path) as temporary:  # a full disk leaves no empty or half PNG under the real name
            save_image(image.float().cpu(), temporary)
        paths.append(path)
    return paths


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] float images -> uint8 with round-to-nearest (as PNG stores them)."""
    return images.mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)


#: history.csv's columns, always all of them and in this order (a cell is empty where an epoch has no value,
#: e.g. val_kid between KID epochs); columns not listed here follow in first-seen order.
HISTORY_COLUMNS = ("epoch", "step", "train_loss", "train_noise_loss", "train_image_loss", "val_loss", "val_noise_loss",
                   "val_image_loss", "val_kid", "seconds", "eval_seconds", "images_per_second")
LOSS_UNITS = {"mae": "mean absolute error", "mse": "mean squared error"}


def history_columns(history: Sequence[dict[str, Any]]) -> list[str]:
    """:data:`HISTORY_COLUMNS`, then any other keys of ``history`` in first-seen order."""
    columns = list(HISTORY_COLUMNS)
    for row in history:
        columns.extend(key for key in row if key not in columns)
    return columns


def write_history(history: Sequence[dict[str, Any]], path: Path) -> None:
    """Write the per-epoch history as CSV with the fixed columns of :func:`history_columns`, atomically."""
    path = Path(path)
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=history_columns(history))
        writer.writeheader()
        writer.writerows(history)


def read_history(path: Path) -> list[dict[str, float]]:
    """Read a history CSV written by :func:`write_history` (empty cells are skipped)."""
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]


def save_gif(frames: torch.Tensor, path: Path, duration_ms: int = 120) -> Path:
    """An animated GIF that loops forward and back: frames (F, N, 3, H, W) or (F, 3, H, W), [0, 1]."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if frames.dim() == 4:
        frames = frames.unsqueeze(1)
    pictures = []
    for frame in frames:
        grid = make_grid(frame.float().cpu(), nrow=len(frame), padding=2, pad_value=1.0)
        pictures.append(Image.fromarray(to_uint8(grid).permute(1, 2, 0).numpy()))
    sequence = pictures + pictures[-2:0:-1]  # ping-pong
    with atomic_path(path) as temporary:
        sequence[0].save(temporary, save_all=True, append_images=sequence[1:], duration=duration_ms, loop=0)
    return path
