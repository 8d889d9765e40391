"""Artefacts a person looks at: image grids, individual PNGs, the history table and its plot."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import torch
from torchvision.utils import make_grid, save_image

from .files import atomic_path


def grid_columns(count: int) -> int:
    """Columns for a near-square grid of ``count`` images."""
    return max(1, math.ceil(math.sqrt(count)))


def save_grid(images: torch.Tensor, path: Path, columns: int | None = None) -> Path:
    """Save [0, 1] images (N, 3, H, W) as one PNG grid with 2-pixel gaps."""
    with atomic_path(path) as temporary:  # never a half-written grid
        save_image(images.float().cpu(), temporary, nrow=columns or grid_columns(len(images)), padding=2,
                   pad_value=1.0)
    return Path(path)


def save_images(images: torch.Tensor, folder: Path, start: int = 0) -> list[Path]:
    """Save [0, 1] images one PNG each, named ``image_00000.png`` upwards from ``start``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for offset, image in enumerate(images):
        path = folder / f"image_{start + offset:05d}.png"
        save_image(image.float().cpu(), path)
        paths.append(path)
    return paths


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] float images -> uint8 with round-to-nearest (as PNG stores them)."""
    return images.mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)


def write_history(history: Sequence[dict[str, Any]], path: Path) -> None:
    """Write the per-epoch history as CSV (columns in first-seen order), atomically."""
    path = Path(path)
    columns: list[str] = []
    for row in history:
        columns.extend(key for key in row if key not in columns)
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def read_history(path: Path) -> list[dict[str, float]]:
    """Read a history CSV written by :func:`write_history` (empty cells are skipped)."""
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]


def plot_history(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """A PNG with one panel per quantity family: noise losses, image losses, and KID if present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    panels = [("noise loss", "noise_loss"), ("image loss", "image_loss"), ("KID", "kid")]
    panels = [(title, key) for title, key in panels if any(k.endswith(key) for row in history for k in row)]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, (title, key) in zip(axes[0], panels):
        names = sorted({k for row in history for k in row if k.endswith(key)})
        for name in names:
            points = [(e, row[name]) for e, row in zip(epochs, history) if name in row]
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=name)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.grid(True, alpha=0.3)
        axis.legend()
    return save_figure(figure, path)


def save_figure(figure: Any, path: Path) -> Path:
    """Lay out a matplotlib figure, write it as a PNG atomically and free it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=100)
    finally:
        plt.close(figure)
    return Path(path)


def save_gif(frames: torch.Tensor, path: Path, duration_ms: int = 120) -> Path:
    """An animated GIF that loops forward and back: frames (F, N, 3, H, W) or (F, 3, H, W), [0, 1]."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if frames.dim() == 4:
        frames = frames.unsqueeze(1)
    pictures = []
    for frame in frames:
        grid = make_grid(frame.float().cpu(), nrow=len(frame), padding=2, pad_value=1.0)
        pictures.append(Image.fromarray(to_uint8(grid).permute(1, 2, 0).numpy()))
    sequence = pictures + pictures[-2:0:-1]  # ping-pong
    sequence[0].save(path, save_all=True, append_images=sequence[1:], duration=duration_ms, loop=0)
    return path
