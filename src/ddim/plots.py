"""Every plot: matplotlib lives here and nowhere else (the history of a run, KID curves of several runs, the
sampler study), always drawn off screen into PNG files written atomically."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import numpy as np

from .files import atomic_path
from .reports import LOSS_UNITS, history_columns

matplotlib.use("Agg")  # no screen: every figure is a file
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.ticker import (FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter,  # noqa: E402
                               NullLocator)

LEGEND_WIDTH = 105  #: characters of a legend line in an 8-inch figure at 9 pt; longer labels wrap


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
    labels = [textwrap.fill(label, LEGEND_WIDTH, subsequent_indent="  ") for label in curves]
    legend_inches = 0.2 * sum(label.count("\n") + 1 for label in labels) + 0.1  # below the curves, never over one
    figure, axis = plt.subplots(figsize=(8, 4.6 + legend_inches))
    for index, (label, history) in enumerate(zip(labels, curves.values())):
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
    figure.legend(fontsize=9, loc="lower left", bbox_to_anchor=(0.01, 0.0), frameon=False)
    set_titles(figure, title or "validation KID per epoch", subtitle)
    height = 4.6 + legend_inches
    return save_figure(figure, path, top=1 - (0.6 if subtitle else 0.35) / height, bottom=legend_inches / height)

def save_figure(figure: Any, path: Path, top: float = 1.0, bottom: float = 0.0) -> Path:
    """Lay out a matplotlib figure (its panels between ``bottom`` and ``top``, leaving room for a legend below and
    titles above), write it as a PNG atomically and free it."""
    figure.tight_layout(rect=(0, bottom, 1, top))
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=100)
    finally:
        plt.close(figure)
    return Path(path)

def study_subtitle(rows: Sequence[dict[str, Any]]) -> str:
    """The measuring protocol the rows share: ``75 px Inception, N = 500 generated vs 1638 validation images, ...``."""
    first = rows[0] if rows else {}
    parts = [f"{first['kid_size']} px Inception" if first.get("kid_size") else ""]
    if first.get("num"):
        real = f" vs {first['num_real']} {first.get('reference', 'real')} images" if first.get("num_real") else ""
        parts.append(f"N = {first['num']} generated{real}")
    if first.get("subsets"):
        parts.append(f"KID over {first['subsets']} subsets of {first['subset_size']}")
    parts.append(f"seed {first['seed']}" if "seed" in first else "")
    return ", ".join(part for part in parts if part)


def plot_study(rows: Sequence[dict[str, Any]], path: Path, *, title: str | None = None,
               subtitle: str | None = None) -> Path:
    """KID (with its subset standard deviation) and FID against network evaluations, one line per sampler.

    ``title`` defaults to the rows' checkpoint, ``subtitle`` to their protocol (:func:`study_subtitle`).
    """
    first = rows[0] if rows else {}
    figure, (kid_axis, fid_axis) = plt.subplots(1, 2, figsize=(11, 4.6))
    for index, label in enumerate(dict.fromkeys(row["sampler"] for row in rows)):
        points = sorted((r for r in rows if r["sampler"] == label), key=lambda r: r["evaluations"])
        plot_kid_and_fid(kid_axis, fid_axis, [r["evaluations"] for r in points], points, label, index)
    evaluations = sorted({float(r["evaluations"]) for r in rows}) or [1.0]
    ticks = evaluation_ticks([r["evaluations"] for r in rows]) or [1.0]
    for axis, name, key in ((kid_axis, "KID", "kid"), (fid_axis, "FID", "fid")):
        axis.set_xscale("log")
        axis.set_xlim(evaluations[0] / 1.3, evaluations[-1] * 1.3)
        axis.xaxis.set_major_locator(FixedLocator(ticks))  # the measured counts, as many as stay readable
        axis.xaxis.set_minor_locator(NullLocator())
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        readable_value_scale(axis, [r[key] for r in rows])
        axis.set_xlabel("network evaluations per image")
        axis.set_ylabel(kid_label(first.get("kid_size"), first.get("num"), name))
        axis.set_title(f"{name} (lower is better)")
        axis.tick_params(labelleft=True, labelbottom=True)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    set_titles(figure, title or (f"sample quality of {first['checkpoint']}" if first.get("checkpoint")
                                 else "sample quality against network evaluations"), subtitle or study_subtitle(rows))
    return save_figure(figure, path, top=0.88)


def plot_kid_and_fid(kid_axis: Any, fid_axis: Any, x: Sequence[float], points: Sequence[dict[str, Any]], label: str,
                     index: int) -> None:
    """One line of points on both panels: KID with its subset standard deviation as a band, FID in the same colour."""
    x = np.asarray(x, dtype=float)
    kid = np.array([r["kid"] for r in points], dtype=float)
    std = np.array([r.get("kid_std", 0.0) for r in points], dtype=float)
    style = line_style(index)
    line, = kid_axis.plot(x, kid, label=label, **style)
    kid_axis.fill_between(x, kid - std, kid + std, alpha=0.12, color=line.get_color())
    fid_axis.plot(x, [r["fid"] for r in points], label=label, color=line.get_color(), **style)


def evaluation_ticks(evaluations: Sequence[int], *, min_ratio: float = 1.25) -> list[float]:
    """The evaluation counts to label on a log axis: every measured count, except one closer than ``min_ratio``
    to a count measured by more points (heun's 9 next to everyone's 10), whose labels would overlap."""
    counts = Counter(int(e) for e in evaluations)
    chosen: list[int] = []
    for value in sorted(counts, key=lambda e: (-counts[e], -e)):
        if all(max(value, other) / min(value, other) >= min_ratio for other in chosen):
            chosen.append(value)
    return [float(value) for value in sorted(chosen)]

def readable_value_scale(axis: Any, values: Sequence[float]) -> None:
    """A log y axis labelled 1-2-5 where the values are positive and span a decade or more, else linear (so
    every panel has labelled ticks)."""
    finite = [float(v) for v in values if np.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) >= 10 * min(finite):
        axis.set_yscale("log")
        axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.yaxis.set_minor_formatter(NullFormatter())

def plot_guidance(sets: dict[str, Sequence[dict[str, Any]]], path: Path, *, title: str | None = None) -> Path:
    """KID (with its subset standard deviation) and FID against the classifier-free guidance weight, one line per
    set of points (label -> rows with ``guidance``, ``kid``, ``kid_std``, ``fid``, ``num_generated``, ``num_real``,
    ``reference``); the label says what each line was measured against."""
    figure, (kid_axis, fid_axis) = plt.subplots(1, 2, figsize=(11, 4.6))
    for index, (label, rows) in enumerate(sets.items()):
        points = sorted(rows, key=lambda r: r["guidance"])
        if not points:
            continue
        first = points[0]
        name = f"{label}: {first['num_generated']:,} generated vs {first['num_real']:,} {first['reference']} images"
        plot_kid_and_fid(kid_axis, fid_axis, [r["guidance"] for r in points], points, name, index)
    for axis, name in ((kid_axis, "KID"), (fid_axis, "FID")):
        axis.set_xlabel("guidance weight (0: unconditional, 1: conditional, > 1: guided)")
        axis.set_ylabel(kid_label(next((r.get("kid_size") for rows in sets.values() for r in rows), None), None, name))
        axis.set_title(f"{name} (lower is better)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    set_titles(figure, title or "sample quality against the guidance weight", None)
    return save_figure(figure, path, top=0.93)
