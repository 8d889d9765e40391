"""Quality against cost: KID and FID of each sampler at each number of network evaluations."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence


from .data import ImageSplits
from .evaluation import (Progress, conditioning_labels, feature_metrics, generated_features, reference_features,
                         reference_splits)
from .files import atomic_path
from .integrity import tensors_sha256
from .metrics.inception import InceptionFeatures
from .metrics.sample_size import kid_subset_size, kid_text, sample_size_warnings
from .model import DiffusionModel
from .reading import read_json
from .runtime import Runtime
from .samplers import network_evaluations, steps_for_evaluations


#: study.csv's leading columns, in this order; other keys of the rows follow.
STUDY_COLUMNS = ("checkpoint", "sampler", "steps", "evaluations", "kid", "kid_std", "kid_per_batch", "fid",
                 "kid_size", "num", "num_real", "reference", "subsets", "subset_size", "seed", "seconds")


def sampler_label(name: str, options: dict[str, Any]) -> str:
    """``ddim``, ``ddim eta=1`` ..."""
    return name + "".join(f" {key}={value:g}" for key, value in options.items())


def run_study(model: DiffusionModel, splits: ImageSplits, extractor: InceptionFeatures, *,
              samplers: Sequence[tuple[str, dict[str, Any]]], evaluations: Sequence[int], num: int | None = None,
              seed: int = 0, reference: str = "validation", subsets: int = 50, subset_size: int = 1000,
              batch_size: int = 256, kid_batch_size: int = 64, runtime: Runtime | None = None,
              progress: Progress | None = None, report: Callable[[str], None] | None = None,
              checkpoint: str | Path = "", label: int | None = None, guidance: float = 1.0,
              earlier: Sequence[dict[str, Any]] = (),
              on_point: Callable[[list[dict[str, Any]]], None] | None = None,
              partial_dir: Path | None = None) -> list[dict[str, Any]]:
    """One row per (sampler, evaluations) point; the same seed everywhere.

    ``earlier``: rows an earlier, perhaps interrupted, study measured in the same way (see
    :func:`earlier_points`); a point found there (same sampler and steps) is taken as it is, not measured again.
    ``on_point(rows)`` is called after each point with the rows so far (to save them: an interrupted study then
    loses at most the point it was measuring). With ``partial_dir``, the batches of that point are kept too, so
    that it continues where it stopped (see :func:`ddim.evaluation.generated_features`).

    A sampler that cannot spend exactly a requested count (heun: 2 * steps - 1) takes the most steps within it
    (heun at 10: 5 steps, 9 evaluations), and each point is measured once.

    Each row also says what was measured and how: ``checkpoint``, the Inception size (``kid_size``), the
    images generated (``num``) and real (``num_real``), the reference set, the KID subsets and the seed; a
    conditional model's rows add the class (``label``'s, or "all" in turn) and the ``guidance`` weight.
    """
    splits = reference_splits(splits, label)
    real, _ = reference_features(splits, reference, extractor, progress=progress)
    count = num or len(real)
    labels = conditioning_labels(model, splits, reference, count, label)
    condition = {} if labels is None else {
        "class": "all" if label is None else model.class_names[label], "guidance": guidance}

    def measure(label_text: str, name: str, options: dict[str, Any], steps: int) -> dict[str, Any]:
        spent = network_evaluations(name, steps)
        started = time.perf_counter()
        update = progress(f"{label_text}, {spent} evaluations", count) if progress else None
        generated = generated_features(model, extractor, num=count, steps=steps, seed=seed, sampler=name,
                                       sampler_options=options, batch_size=batch_size, runtime=runtime,
                                       progress=update, labels=labels, guidance=guidance,
                                       partial_dir=partial_dir, report=report)
        metrics = feature_metrics(real, generated, subsets=subsets, subset_size=subset_size, seed=seed,
                                  kid_batch_size=kid_batch_size)
        metrics.pop("warnings", None)  # the sizes' warnings: reported once, before the first point
        used = metrics.pop("kid_subset_size", kid_subset_size(subset_size, len(real), count))
        return {"checkpoint": str(checkpoint), "sampler": label_text, "steps": steps, "evaluations": spent, **metrics,
                "kid_size": extractor.image_size, "num": count, "num_real": len(real), "reference": reference,
                "subsets": subsets, "subset_size": used, "seed": seed,
                "seconds": time.perf_counter() - started, **condition}

    if report is not None:
        for warning in sample_size_warnings(len(real), count):
            report(f"warning: {warning}")
    rows: list[dict[str, Any]] = []
    measured = {(row["sampler"], int(row["steps"])): row for row in earlier}
    for name, options in samplers:
        label_text = sampler_label(name, options)
        for steps in sorted({steps_for_evaluations(name, target) for target in evaluations}):
            if (label_text, steps) in measured:
                row, note = {**measured[label_text, steps], "checkpoint": str(checkpoint)}, "  (measured earlier)"
            else:
                row, note = measure(label_text, name, options, steps), ""
            rows.append(row)
            if report is not None:
                report(f"{row['sampler']:<14} {row['evaluations']:>3} evaluations: KID "
                       f"{kid_text(row['kid'], row['kid_std'], 4)}  FID {row['fid']:.2f}{note}")
            if on_point is not None:
                on_point(rows)
    return rows


def study_protocol(model: DiffusionModel, splits: ImageSplits, *, num: int | None, seed: int, reference: str,
                   kid_size: int, subsets: int, subset_size: int, runtime: str, label: str | None = None,
                   guidance: float | None = None) -> dict[str, Any]:
    """What makes two studies' points comparable: the same weights (their sha256), real images (the data
    fingerprint), sample count, seed, reference set, Inception size, KID subsets, numeric settings and, for a
    conditional model, class and guidance. The batch size is left out: it does not change the images."""
    protocol = {"weights_sha256": tensors_sha256(model.state_dict()), "data_fingerprint": splits.fingerprint,
                "num": num, "seed": seed, "reference": reference, "kid_size": kid_size, "subsets": subsets,
                "subset_size": subset_size, "speed": runtime}
    if label is not None:
        protocol.update({"class": label, "guidance": guidance})
    return protocol


def earlier_points(path: Path, protocol: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The points of an earlier study written to ``path`` (a study.json) with the same ``protocol``, and one line
    saying what was found: nothing, points to reuse, or why none can be reused."""
    if not path.is_file():
        return [], ""
    try:
        earlier = read_json(path)
        points = [point for point in earlier["points"] if isinstance(point, dict)]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [], f"{path} cannot be read ({error}); measuring every point"
    measured = [point for point in points if _measured(point)]
    dropped = len(points) - len(measured)
    points = measured
    before = earlier.get("protocol") if isinstance(earlier, dict) else None
    if not isinstance(before, dict):
        return [], f"{path} does not record its settings (an older ddim wrote it); measuring every point"
    changed = [key for key in protocol if before.get(key) != protocol[key]]
    if changed:
        key = changed[0]
        what = {"weights_sha256": "other weights", "data_fingerprint": "other real images"}.get(
            key, f"{key} was {before.get(key)!r}, now {protocol[key]!r}")
        return [], f"{path} measured other settings ({what}); measuring every point again"
    note = f" ({dropped} without a valid KID and FID will be measured again)" if dropped else ""
    return points, (f"{path}: {len(points)} point{'s' if len(points) != 1 else ''} measured earlier with these "
                    f"settings{note}")


def _measured(point: dict[str, Any]) -> bool:
    """Whether an earlier point holds what a study reports: a sampler, a step count and finite KID and FID
    (a point edited to "abc" or NaN is measured again, never reused)."""
    def real(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    steps = point.get("steps")
    return (isinstance(point.get("sampler"), str) and isinstance(steps, int) and not isinstance(steps, bool)
            and steps >= 1 and real(point.get("kid")) and real(point.get("fid")))


def write_study(rows: Sequence[dict[str, Any]], path: Path, checkpoint: str | Path | None = None) -> None:
    """The study as CSV, :data:`STUDY_COLUMNS` first; ``checkpoint`` fills that column where a row lacks it."""
    columns = list(STUDY_COLUMNS)
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    if checkpoint is not None:
        rows = [{**row, "checkpoint": row.get("checkpoint") or str(checkpoint)} for row in rows]
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
