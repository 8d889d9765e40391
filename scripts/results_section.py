"""Write the README's Results section from the files in docs/results/, so its numbers are the files' numbers.

    python scripts/results_section.py            # rewrite the section between the markers in README.md
    python scripts/results_section.py --check    # exit 1 (and show the difference) where README.md is stale

Reads results.json (scripts/publish_results.py), and where present quick-check.json (publish_results.py
--quick-check), evaluate-validation.json and evaluate-all.json (`ddim evaluate --json`), study/study.json
(`ddim study`), notes.md (free text placed under the table) and the built-in model's metadata.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from ddim.export import BUILTIN_MODELS, builtin_names
from ddim.integrity import read_metadata
from ddim.plots import study_subtitle
from ddim.study import sampler_label

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_conditional import render_conditional  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BEGIN = "<!-- results: begin (written by scripts/results_section.py from docs/results/; edit those, not this) -->"
END = "<!-- results: end -->"
KERAS_EPOCH1_LOSS = 0.211  # the Keras example's published log, train noise loss after epoch 1
STUDY_COMMAND = ("ddim study --checkpoint runs/flowers --data flowers102 "
                 "--samplers ddim,ddim:eta=1,ddpm,dpmpp-2m,heun --evaluations 5,10,20,50 --out docs/results/study")


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _group(number: int) -> str:
    return f"{number:,}"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _fixed(value: float, digits: int = 2) -> str:
    """``value`` to ``digits`` decimals, without a minus sign on a value that rounds to zero."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _range(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.0f}" if round(low) == round(high) else f"{low:.0f}–{high:.0f}"


def _evaluate_protocol(result: dict[str, Any]) -> str:
    settings = result["settings"]
    sampler = sampler_label(settings["sampler"], settings.get("sampler_options", {}))
    reference = result["reference"]["set"]
    real = f"all {_group(result['num_real'])}" if reference == "all" else f"{_group(result['num_real'])} {reference}"
    return (f"N = {_group(result['num_generated'])} generated ({sampler}, {settings['steps']} steps, seed "
            f"{settings['seed']}) vs {real} images; KID over "
            f"{settings['subsets']} subsets of {_group(result['kid_subset_size'])}")


def evaluation_rows(folder: Path) -> list[tuple[str, str]]:
    rows = []
    validation = _read(folder / "evaluate-validation.json")
    if validation:
        size = validation["inception"]["image_size"]
        command = "ddim evaluate --checkpoint runs/flowers --data flowers102 --json docs/results/evaluate-validation.json"
        rows.append((f"KID at {size} px against the validation images",
                     f"**{validation['kid']:.4f} ± {validation['kid_std']:.4f}** ({_evaluate_protocol(validation)}); "
                     f"`{command}`"))
        rows.append((f"FID at {size} px against the validation images",
                     f"**{validation['fid']:.1f}** (the same {_group(validation['num_generated'])} samples; FID is "
                     f"biased upwards at small N, hence the row below with N > 2,048)"))
    everything = _read(folder / "evaluate-all.json")
    if everything:
        size = everything["inception"]["image_size"]
        command = (f"ddim evaluate --checkpoint runs/flowers --data flowers102 --reference all --num "
                   f"{everything['num_generated']} --json docs/results/evaluate-all.json")
        rows.append((f"FID at {size} px against all {_group(everything['num_real'])} images",
                     f"**{everything['fid']:.1f}** (KID {everything['kid']:.4f} ± {everything['kid_std']:.4f}; "
                     f"{_evaluate_protocol(everything)}); `{command}`"))
    return rows


def study_table(study: dict[str, Any], budgets: list[int]) -> list[str]:
    """KID ± std per sampler (rows) and evaluation budget (columns); a point that spent fewer evaluations than its
    budget (heun: 2 * steps - 1) says how many it spent."""
    points = study["points"]
    samplers = list(dict.fromkeys(point["sampler"] for point in points))
    lines = ["| sampler | " + " | ".join(f"{budget} evaluations" for budget in budgets) + " |",
             "| --- |" + " --- |" * len(budgets)]
    for sampler in samplers:
        cells = []
        for budget in budgets:
            point = budget_point(points, sampler, budget)
            if point is None:
                cells.append("–")
                continue
            spent = "" if point["evaluations"] == budget else f" ({point['evaluations']})"
            cells.append(f"{point['kid']:.4f} ± {point['kid_std']:.4f}{spent}")
        lines.append(f"| {sampler} | " + " | ".join(cells) + " |")
    return lines


def budget_point(points: list[dict[str, Any]], sampler: str, budget: int) -> dict[str, Any] | None:
    """The sampler's point that spent the most evaluations within ``budget``, if it spent more than half of it."""
    within = [p for p in points if p["sampler"] == sampler and budget / 2 < p["evaluations"] <= budget]
    return max(within, key=lambda p: p["evaluations"]) if within else None


def recommendation(study: dict[str, Any], budget: int = 10) -> str:
    """One sentence: the sampler with the lowest KID within ``budget`` evaluations, and how far ahead it is."""
    samplers = dict.fromkeys(point["sampler"] for point in study["points"])
    ranked = sorted((p for s in samplers if (p := budget_point(study["points"], s, budget))), key=lambda p: p["kid"])
    if not ranked:
        return ""
    best = ranked[0]
    sentence = f"At {budget} network evaluations use **{best['sampler']}** (KID {best['kid']:.4f} ± {best['kid_std']:.4f}"
    if len(ranked) > 1:
        second = ranked[1]
        close = second["kid"] - best["kid"] <= max(best["kid_std"], second["kid_std"])
        sentence += (f"; next {second['sampler']}, {second['kid']:.4f} ± {second['kid_std']:.4f}"
                     + (", within one standard deviation" if close else ""))
    return sentence + ")."


def render(folder: Path, builtin: Path | None = BUILTIN_MODELS["keras-example"]) -> str:
    """The section's Markdown (between the markers) from the files in ``folder``."""
    results = json.loads((folder / "results.json").read_text())
    per_epoch = results["per_epoch"]
    epochs, planned = results["epochs_completed"], results["epochs_planned"]
    batch = results["config"]["train"]["batch_size"]
    finished = epochs >= planned
    lines = ["## Results", "", BEGIN, ""]
    conditional = render_conditional(folder / "conditional", results, _read(folder / "evaluate-all.json"),
                                     builtin_names(BUILTIN_MODELS["pretrained"]))
    if conditional:  # the better run first; the reproduction keeps its numbers under a heading of its own
        names = ", ".join(f"`--checkpoint {name}`" for name in builtin_names(builtin)) if builtin else ""
        lines += [*conditional, f"### The Keras example's recipe reproduced{' (' + names + ')' if names else ''}", ""]
    if not finished:
        lines += [f"**In progress: epoch {epochs} of {planned}.** The default recipe (`ddim train` with no options) "
                  "in the background across sessions; the numbers and pictures are replaced as the run goes on "
                  f"and completed at {planned} epochs.", ""]
    else:
        lines += ["The default recipe (`ddim train` with no options), trained to its end.", ""]
    grid = results["grid"]
    lines += [f"![64 samples of the {grid['network']} network after {epochs} epochs, {grid['steps']} "
              f"{grid['sampler'].upper()} steps, seed {grid['seed']}](docs/results/{grid['file']})", "",
              "| | |", "| --- | --- |"]
    rows = [("epochs / images seen", f"{epochs} of {planned} / {_group(results['images_seen'])} "
                                      f"({_group(results['step'])} steps of {batch})")]
    rates = [row["images_per_second"] for row in per_epoch if row.get("images_per_second")]
    rows.append(("wall time, hardware", f"{_hours(results['wall_seconds'])} of training and per-epoch evaluation on "
                                        f"{results['hardware']}" + (f"; {_range(rates)} images/s over the epochs" if rates else "")))
    train = [row["train_noise_loss"] for row in per_epoch if row.get("train_noise_loss") is not None]
    if train:
        rows.append((f"train noise loss, epoch 1 → {epochs}", f"{train[0]:.3f} → {train[-1]:.3f} (the Keras example's "
                                                             f"log: {KERAS_EPOCH1_LOSS} after epoch 1)"))
    validation = [row["val_noise_loss"] for row in per_epoch if row.get("val_noise_loss") is not None]
    if validation:
        rows.append((f"validation noise loss (EMA), epoch 1 → {epochs}", f"{validation[0]:.3f} → {validation[-1]:.3f}"))
    kid = [row["val_kid_75px"] for row in per_epoch if row.get("val_kid_75px") is not None]
    if kid:
        train_config = results["config"]["train"]
        rows.append((f"per-epoch KID ({train_config['kid_image_size']} px, the validation images, "
                     f"{train_config['kid_steps']} DDIM steps), epoch 1 → {epochs}", ", ".join(f"{v:.2f}" for v in kid)))
    evaluated = evaluation_rows(folder)
    quick = _read(folder / "quick-check.json")
    if quick and not evaluated:
        rows.append((f"KID of {quick['num']} samples at {quick['kid_size']} px ({quick['steps']} DDIM steps) against "
                     f"{quick['num_real']} validation flowers", f"{_fixed(quick['kid_samples'])} ({quick['num']} uniform-noise "
                     f"images: {_fixed(quick['kid_noise'])}; {quick['num']} training flowers: {_fixed(quick['kid_train'])})"))
    rows += evaluated
    study = _read(folder / "study" / "study.json")
    if study and study.get("finished") is False:  # an interrupted `ddim study`: its table waits for the rest
        rows.append(("sampler study", f"{len(study['points'])} points measured so far; "
                     "`ddim study` run again with the same settings measures the rest"))
        study = None
    to_come = [what for what, file in (("final KID and FID at 299 px", "evaluate-validation.json"),
                                       ("FID against all the images", "evaluate-all.json"),
                                       ("sampler study", "study/study.json")) if not (folder / file).is_file()]
    if to_come:  # named, so that a finished run's section never reads as complete before its measurements are
        rows.append(("; ".join(to_come), f"after epoch {planned}" if not finished else
                     "being measured (`bash scripts/final_results.sh` keeps what it measured and does the rest)"))
    lines += [f"| {name} | {value} |" for name, value in rows]
    if (folder / "losses.png").is_file():
        lines += ["", "![noise losses and per-epoch KID against epochs](docs/results/losses.png)"]
    if study:
        budgets = list(study.get("evaluations") or sorted({p["evaluations"] for p in study["points"]}))
        lines += ["", f"**Sampler study** (KID ± std over subsets against network evaluations per image; "
                  f"{study_subtitle(study['points'])}; a heun point spends 2 × steps − 1, shown in brackets):", ""]
        lines += study_table(study, budgets)
        lines += ["", recommendation(study) + f" CSV, JSON and plot: `docs/results/study/`; `{STUDY_COMMAND}`",
                  "", "![KID and FID against network evaluations](docs/results/study/study.png)"]
    notes = folder / "notes.md"
    if notes.is_file():
        lines += ["", notes.read_text().strip()]
    if builtin is not None and builtin.is_file():
        meta = read_metadata(builtin)
        size = builtin.stat().st_size / 2**20
        state = f"after epoch {meta.get('epoch')}" + ("" if finished else " (it is replaced as the run goes on)")
        names = builtin_names(builtin)
        lines += ["", f"**The built-in model** ({', '.join(f'`--checkpoint {name}`' for name in names)}, "
                  f"`ddim.load(\"{names[0]}\")`) is this run's EMA "
                  f"network {state}: {meta.get('dtype')}, {size:.1f} MiB, `src/ddim/pretrained/{builtin.name}`; its "
                  "metadata holds the step, epoch, per-epoch KID, config, normaliser and a sha256 that every load checks."]
    lines += ["", "Reproduce:", "", "```bash",
              "ddim train --data flowers102 --run-dir runs/flowers          # the default recipe; --resume runs/flowers continues it",
              f"python scripts/publish_results.py runs/flowers/checkpoints/step_{results['step']:09d} --builtin yes  "
              "# docs/results + built-in model",
              f"bash scripts/final_results.sh runs/flowers                    # after epoch {planned}: all of the above, "
              "KID/FID, sampler study",
              "python scripts/results_section.py                            # this section, from docs/results", "```",
              "", END]
    return "\n".join(lines) + "\n"


def replace_section(readme: str, section: str) -> str:
    """``readme`` with its Results section (the heading before BEGIN up to END) replaced by ``section``."""
    begin, end = readme.find(BEGIN), readme.find(END)
    if begin < 0 or end < begin:
        raise SystemExit(f"README has no Results section markers ({BEGIN!r} … {END!r})")
    heading = readme.rfind("\n## ", 0, begin) + 1
    return readme[:heading] + section + readme[end + len(END) + 1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "docs" / "results", help="default: docs/results")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md", help="default: README.md")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 where the README is stale")
    args = parser.parse_args(argv)
    if not (args.results / "results.json").is_file():
        parser.error(f"{args.results / 'results.json'} not found: run scripts/publish_results.py first")
    current = args.readme.read_text()
    updated = replace_section(current, render(args.results))
    if args.check:
        if updated != current:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), updated.splitlines(True),
                                                       str(args.readme), "rendered from " + str(args.results)))
            return 1
        return 0
    if updated != current:
        args.readme.write_text(updated)
    print(f"{args.readme}: Results section {'rewritten' if updated != current else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
