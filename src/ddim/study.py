"""Quality against cost: KID and FID of each sampler at each number of network evaluations."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .data import ImageSplits
from .files import atomic_path
from .reports import save_figure
from .evaluation import Progress, feature_metrics, generated_features, reference_features
from .metrics.inception import InceptionFeatures
from .model import DiffusionModel
from .samplers import network_evaluations, steps_for_evaluations
from .speed import Speed


def sampler_label(name: str, options: dict[str, Any]) -> str:
    """``ddim``, ``ddim eta=1`` ..."""
    return name + "".join(f" {key}={value:g}" for key, value in options.items())


def run_study(model: DiffusionModel, splits: ImageSplits, extractor: InceptionFeatures, *,
              samplers: Sequence[tuple[str, dict[str, Any]]], evaluations: Sequence[int], num: int | None = None,
              seed: int = 0, reference: str = "validation", subsets: int = 50, subset_size: int = 1000,
              batch_size: int = 256, kid_batch_size: int = 64, speed: Speed | None = None,
              progress: Progress | None = None,
              report: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """One row per (sampler, evaluations) point that the sampler can hit exactly; the same seed everywhere."""
    real, _ = reference_features(splits, reference, extractor, progress=progress)
    count = num or len(real)
    rows = []
    for name, options in samplers:
        for target in evaluations:
            steps = steps_for_evaluations(name, target)
            if steps is None:
                continue
            started = time.perf_counter()
            update = progress(f"{sampler_label(name, options)}, {target} evaluations", count) if progress else None
            generated = generated_features(model, extractor, num=count, steps=steps, seed=seed, sampler=name,
                                           sampler_options=options, batch_size=batch_size, speed=speed,
                                           progress=update)
            metrics = feature_metrics(real, generated, subsets=subsets, subset_size=subset_size, seed=seed,
                                      kid_batch_size=kid_batch_size)
            row = {"sampler": sampler_label(name, options), "steps": steps,
                   "evaluations": network_evaluations(name, steps), **metrics,
                   "num": count, "seconds": time.perf_counter() - started}
            rows.append(row)
            if report is not None:
                report(f"{row['sampler']:<14} {row['evaluations']:>3} evaluations: KID {row['kid']:.4f} ± "
                       f"{row['kid_std']:.4f}  FID {row['fid']:.2f}")
    return rows


def write_study(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The study as CSV."""
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_study(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """KID (with its subset standard deviation) and FID against network evaluations, one line per sampler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (kid_axis, fid_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for label in dict.fromkeys(row["sampler"] for row in rows):
        points = sorted((r for r in rows if r["sampler"] == label), key=lambda r: r["evaluations"])
        x = np.array([r["evaluations"] for r in points])
        kid = np.array([r["kid"] for r in points])
        std = np.array([r["kid_std"] for r in points])
        kid_axis.plot(x, kid, marker="o", markersize=3, label=label)
        kid_axis.fill_between(x, kid - std, kid + std, alpha=0.15)
        fid_axis.plot(x, [r["fid"] for r in points], marker="o", markersize=3, label=label)
    for axis, name in ((kid_axis, "KID"), (fid_axis, "FID")):
        axis.set_xscale("log")
        axis.set_yscale("symlog", linthresh=1e-3) if name == "KID" else axis.set_yscale("log")
        axis.set_xlabel("network evaluations per image")
        axis.set_ylabel(name)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    return save_figure(figure, path)
