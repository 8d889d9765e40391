"""Artefacts a person looks at: image grids, individual PNGs, the history table and its plot."""

from __future__ import annotations

import csv
import math
import textwrap
from pathlib import Path
from typing import Any, Sequence

import torch
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
    from PIL import Image, ImageDraw, ImageFont

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
    from PIL import Image, ImageDraw, ImageFont

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
        save_image(image.float().cpu(), path)
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


def kid_label(size: int | None = None, num: int | None = None, name: str = "KID") -> str:
    """``KID (75 px Inception, N = 1638)``, with what is known of the protocol."""
    protocol = [f"{size} px Inception" if size else "", f"N = {num}" if num else ""]
    details = ", ".join(part for part in protocol if part)
    return f"{name} ({details})" if details else name


def line_style(index: int, name: str = "") -> dict[str, Any]:
    """Marker and dash pattern of the ``index``-th line (validation dashed with open squares), so lines that
    coincide stay distinguishable."""
    if name.startswith("train_"):
        return {"linestyle": "-", "marker": "o", "markersize": 5}
    if name.startswith("val_"):  # larger and open: a training point under it still shows
        return {"linestyle": "--", "marker": "s", "markersize": 8, "markerfacecolor": "none", "markeredgewidth": 1.5}
    markers, dashes = "osD^vPX", ("-", "--", ":", "-.")
    style = {"marker": markers[index % len(markers)], "linestyle": dashes[index % len(dashes)], "markersize": 5}
    if index % 2:  # every other line open and larger, as validation above
        style.update(markersize=8, markerfacecolor="none", markeredgewidth=1.5)
    return style


def set_titles(figure: Any, title: str | None, subtitle: str | None) -> None:
    """A figure title and a smaller second line (the protocol, the sampler), where given."""
    if title:
        figure.suptitle(title, fontsize=12, fontweight="bold", y=0.99)
    if subtitle:
        figure.text(0.5, 0.93 if title else 0.98, subtitle, ha="center", va="top", fontsize=9, color="0.3")


def plot_history(history: Sequence[dict[str, Any]], path: Path, *, title: str | None = None,
                 subtitle: str | None = None, loss: str = "mae", kid_size: int | None = None,
                 kid_num: int | None = None, kid_sampler: str | None = None) -> Path:
    """A PNG with one panel per quantity family: noise losses, image losses, and validation KID if present.

    ``title`` names the run or checkpoint; ``loss`` (mae, mse) labels the loss axes; ``kid_size``, ``kid_num``
    (images generated and compared) and ``kid_sampler`` (e.g. "ddim, 5 steps") describe the KID protocol.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    unit = f"{LOSS_UNITS.get(loss, loss)} (normalised pixels)"
    panels = [("noise loss", "noise_loss", unit), ("image loss", "image_loss", unit),
              ("validation KID" + (f" ({kid_sampler})" if kid_sampler else ""), "kid", kid_label(kid_size, kid_num))]
    panels = [panel for panel in panels if any(k.endswith(panel[1]) for row in history for k in row)]
    panels = panels or [("no epochs yet", "", unit)]
    epochs = [row.get("epoch", index + 1) for index, row in enumerate(history)] or [1]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.4), squeeze=False)
    for axis, (panel_title, key, ylabel) in zip(axes[0], panels):
        names = [name for name in history_columns(history) if key and name.endswith(key)
                 and any(name in row for row in history)]
        for index, name in enumerate(names):
            points = [(e, row[name]) for e, row in zip(epochs, history) if name in row]
            axis.plot([p[0] for p in points], [p[1] for p in points], label=name,
                      markevery=max(1, len(points) // 40), **line_style(index, name))
        axis.set_title(panel_title)
        axis.set_xlabel("epoch")
        axis.set_ylabel(ylabel)
        axis.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)  # one epoch is a visible point, not a lone dot
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axis.tick_params(labelleft=True, labelbottom=True)
        axis.grid(True, alpha=0.3)
        if names:
            axis.legend()
    set_titles(figure, title or "training history", subtitle)
    return save_figure(figure, path, top=0.88 if subtitle else 0.92)


def plot_kid_curves(curves: dict[str, Sequence[dict[str, Any]]], path: Path, *, title: str | None = None,
                    subtitle: str | None = None, max_epoch: int | None = None, kid_size: int | None = None,
                    kid_num: int | None = None, xlabel: str = "epoch") -> Path:
    """A PNG of each run's per-epoch validation KID against epochs (label -> history rows), on a log scale, the
    first curve drawn as the reference (black, thicker); ``max_epoch`` cuts every curve there."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axis = plt.subplots(figsize=(8, 5))
    for index, (label, history) in enumerate(curves.items()):
        points = [(row["epoch"], row["val_kid"]) for row in history if "val_kid" in row
                  and (max_epoch is None or row["epoch"] <= max_epoch)]
        style = ({"color": "black", "linewidth": 2.2, "marker": "o", "markersize": 4} if index == 0
                 else line_style(index))
        axis.plot([p[0] for p in points], [p[1] for p in points], label=label, **style)
    axis.set_yscale("log")
    axis.set_xlabel(xlabel)
    axis.set_ylabel(kid_label(kid_size, kid_num) + ", log scale")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=9)
    set_titles(figure, title or "validation KID per epoch", subtitle)
    return save_figure(figure, path, top=0.88 if subtitle else 0.93)


def save_figure(figure: Any, path: Path, top: float = 1.0) -> Path:
    """Lay out a matplotlib figure (its panels below ``top``, leaving room for titles), write it as a PNG
    atomically and free it."""
    import matplotlib.pyplot as plt

    figure.tight_layout(rect=(0, 0, 1, top))
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
