"""The README Results section's first part: the class-conditional run of the improved recipe (the built-in
``pretrained`` model), from docs/results/conditional/ (scripts/conditional_results.py) beside the Keras example's
run (docs/results/). Used by scripts/results_section.py; every number is read from those files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KERAS_FINAL_EPOCH = 50
EPOCHS_SHOWN = (5, 10, 12, 25, 50)
RUN_COMMAND = "ddim train --data flowers102 --recipe improved --conditional --guidance 0 --run-dir runs/conditional"


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def per_epoch_kid(results: dict[str, Any]) -> dict[int, float]:
    """Epoch -> per-epoch validation KID (75 px) of a results.json."""
    return {int(row["epoch"]): float(row["val_kid_75px"]) for row in results["per_epoch"]
            if row.get("val_kid_75px") is not None}


def first_epoch_at_or_below(kid: dict[int, float], level: float) -> int | None:
    """The first epoch whose per-epoch KID is at most ``level`` (None if none is)."""
    return next((epoch for epoch in sorted(kid) if kid[epoch] <= level), None)


def goal(text: str, value: float | None, limit: float, shown: str = "{:.2f}", amount: str = "{:.2f}") -> str:
    """One goal line: the measured ``value`` (formatted with ``shown``), met or missed by how much (``amount``)."""
    if value is None:
        return f"- {text} (goal ≤ {limit:g}): not reached"
    verdict = "**met**" if value <= limit else f"**missed** by {amount.format(value - limit)}"
    return f"- {text} (goal ≤ {limit:g}): {shown.format(value)}, {verdict}"


def _evaluation(point: dict[str, Any] | None) -> str:
    if point is None:
        return "–"
    return f"**{point['fid']:.1f}** (KID {point['kid']:.4f} ± {point['kid_std']:.4f})"


def render_conditional(folder: Path, keras: dict[str, Any], keras_all: dict[str, Any] | None,
                       builtin_names: list[str]) -> list[str]:
    """The Markdown lines of the conditional run's part ([] where ``folder`` has no summary.json yet)."""
    summary, results = _read(folder / "summary.json"), _read(folder / "results.json")
    if summary is None or results is None:
        return []
    epochs, planned = results["epochs_completed"], results["epochs_planned"]
    mine, theirs = per_epoch_kid(results), per_epoch_kid(keras)
    best = summary["best_guidance"]
    at = {point["guidance"]: point for point in summary["all"]}
    first = summary["all"][0]
    names = ", ".join(f"`--checkpoint {name}`" for name in builtin_names) or "not shipped"
    shipped_checkpoint = f"--checkpoint {summary['checkpoint']}"
    grid_command = summary["classes"]["command"].replace(shipped_checkpoint, "--checkpoint pretrained")
    lines = ["### The improved recipe, class-conditional: flowers by name", "",
             f"`{RUN_COMMAND}`: the improved recipe (flips, EDM2's power EMA, warmed-up inverse-sqrt learning rate; "
             "[below](#better-recipes-at-equal-training-images)) with one network for every class and none "
             f"(classifier-free guidance), {epochs} of {planned} epochs, {_images(results, keras)}. "
             f"Built in as {names}.", "",
             f"![one labelled row of 8 samples for each of 8 classes, guidance {best:g}]"
             "(docs/results/conditional/classes.png)", "",
             f"`{grid_command}`",
             "", "| | improved, conditional | Keras example's recipe |", "| --- | --- | --- |"]
    shown = [epoch for epoch in EPOCHS_SHOWN if epoch in mine]
    lines.append(f"| per-epoch KID (75 px, 5 DDIM steps, validation; guidance 0) after epoch "
                 f"{' / '.join(map(str, shown))} | " + " / ".join(f"{mine[e]:.2f}" for e in shown) + " | "
                 + " / ".join(f"{theirs[e]:.2f}" if e in theirs else "–" for e in shown) + " |")
    final = theirs.get(KERAS_FINAL_EPOCH)
    if final is not None:
        reached = first_epoch_at_or_below(mine, final)
        lines.append(f"| first epoch at or below the Keras example's final per-epoch KID ({final:.2f}) | "
                     f"{reached if reached else 'not yet'} | {first_epoch_at_or_below(theirs, final)} |")
    protocol = (f"{first['num_generated']:,} generated, {first['steps']} {first['sampler']} steps, vs all "
                f"{first['num_real']:,} images, {first['kid_size']} px")
    for weight, label in ((0.0, "guidance 0 (unconditional)"), (1.0, "guidance 1 (conditional)"),
                          (best, f"guidance {best:g} (the best of the sweep above 1)")):
        keras_cell = _evaluation(_point(keras_all)) if weight == 0.0 and keras_all else "–"
        lines.append(f"| FID (KID) {label}; {protocol} | {_evaluation(at.get(weight))} | {keras_cell} |")
    sweep = summary["sweep"][0]
    lines += ["", f"KID against the guidance weight ({sweep['num_generated']:,} samples against the "
              f"{sweep['num_real']:,} validation images, {sweep['kid_size']} px; `ddim evaluate --checkpoint "
              "pretrained --guidance W`): the classes follow the validation set's mix.", "",
              "| guidance | " + " | ".join(f"{p['guidance']:g}" for p in summary["sweep"]) + " |",
              "| --- |" + " --- |" * len(summary["sweep"]),
              "| KID | " + " | ".join(f"{p['kid']:.4f} ± {p['kid_std']:.4f}" for p in summary["sweep"]) + " |",
              "| FID | " + " | ".join(f"{p['fid']:.1f}" for p in summary["sweep"]) + " |", "",
              "![KID and FID against the guidance weight](docs/results/conditional/kid-vs-guidance.png)", "",
              "Against the goals of the recipe issue (per-epoch KID is the Keras example's own 75 px protocol):", ""]
    reached = first_epoch_at_or_below(mine, final) if final is not None else None
    share = mine[10] / theirs[10] if 10 in mine and 10 in theirs else None
    fid = {weight: point["fid"] for weight, point in at.items()}
    lines += [goal("per-epoch KID reaches the Keras example's final one by epoch 12", reached, 12, "epoch {}",
                   "{} epochs"),
              goal("per-epoch KID after epoch 10, as a share of the Keras example's then", share, 0.5),
              goal("per-epoch KID after epoch 50", mine.get(50), 0.30),
              goal("FID against all images at the best guidance", fid.get(best), 35, "{:.1f}", "{:.1f}"),
              goal("FID against all images at guidance 0", fid.get(0.0), 45, "{:.1f}", "{:.1f}")]
    lines += ["", "Reproduce:", "", "```bash", RUN_COMMAND,
              "python scripts/conditional_results.py runs/conditional --builtin yes   # docs/results/conditional and "
              "the built-in model", "python scripts/results_section.py", "```", ""]
    return lines


def _images(results: dict[str, Any], keras: dict[str, Any]) -> str:
    """The training images seen, against the Keras example's run's."""
    seen, theirs = results["images_seen"], keras["images_seen"]
    if seen == theirs:
        return f"as many training images as the Keras example's run ({seen:,})"
    return f"{seen:,} training images seen (the Keras example's run: {theirs:,})"


def _point(evaluation: dict[str, Any]) -> dict[str, Any]:
    return {"fid": evaluation["fid"], "kid": evaluation["kid"], "kid_std": evaluation["kid_std"]}
