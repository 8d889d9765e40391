"""Publish the recipe comparison: each run's per-epoch KID beside the Keras example's, at equal training images.

    python scripts/recipe_results.py --out docs/results/recipe --max-epoch 10 \\
        --run "improved=RUNS/improved" --run "without flips=RUNS/improved-no-flip" ...

The first run is the reference the others are compared with (its config names what each other run changes).
For each run this copies history.csv and config.json into OUT/<name>/, and writes OUT/runs.json (label, what
differs from the first run, epochs reached, KID after epochs 5 and 10 and the last, and the Keras example's after
as many epochs: the comparison at equal training images, whatever a run's length), OUT/table.md (the same as a
Markdown table, the Keras example's row first) and OUT/kid.png (every run's per-epoch KID against epochs, the Keras
example's curve from docs/results/history.csv first), and puts the table into README.md between its recipe-table
markers (--readme none: leave the README alone). Run again as the runs go on: it replaces what it wrote.
A second comparison (another folder, e.g. runs on another machine) takes ``--table NAME``: its table goes between
the README's ``<!-- NAME table: begin ...`` and ``<!-- NAME table: end -->`` markers instead.

A conditional run whose folder holds ``guided-kid.csv`` (``scripts/epoch_kid.py RUN_DIR CHECKPOINT... --guidance W
--csv RUN_DIR/guided-kid.csv``: the same network's per-epoch KID at other guidance weights, same protocol) also gets
that file copied, one curve per weight in the plot, and a table (epochs the file holds; the Keras example's KID, the
run's own and each weight's) in OUT/guided-table.md and the README between its guided-table markers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

from ddim.cli.config_options import CONFIG_OPTIONS, shown
from ddim.config import RunConfig
from ddim.files import write_text
from ddim.plots import plot_kid_curves
from ddim.reports import read_history

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
TABLE_BEGIN = "<!-- recipe table: begin (written by scripts/recipe_results.py from docs/results/recipe) -->"
TABLE_END = "<!-- recipe table: end -->"
GUIDED_BEGIN = "<!-- guided table: begin (written by scripts/recipe_results.py from docs/results/recipe) -->"
GUIDED_END = "<!-- guided table: end -->"
DEFAULT_TABLE = "recipe"  #: --table: the README's tables of docs/results/recipe, under the markers above
GUIDED_FILE = "guided-kid.csv"  #: scripts/epoch_kid.py --csv, in a run folder
KERAS_HISTORY = REPO / "docs" / "results" / "history.csv"
KERAS_LABEL = "Keras example (the default recipe)"
EPOCHS_SHOWN = (5, 10)
IMAGES_PER_EPOCH = 32_704  # Flowers 102: 6,551 train images x 5 repeats // 64 x 64


def differences(config: RunConfig, reference: RunConfig) -> dict[str, str]:
    """``--option value`` for every training or data field where ``config`` differs from ``reference`` (run
    length, bookkeeping, device and speed fields left out)."""
    ignored = {"epochs", "max_steps", "device", "log_every", "checkpoint_every", "keep_checkpoints", "path",
               "cache_dir", "guidance", "compile"}  # how fast, not what: compiled kernels only round otherwise
    found = {}
    for section in ("model", "data", "train"):
        mine, theirs = getattr(config, section), getattr(reference, section)
        for spec in dataclasses.fields(mine):
            if spec.name in ignored or (section, spec.name) not in CONFIG_OPTIONS:
                continue
            other = getattr(theirs, spec.name)
            if spec.name == "class_conditioning":  # a conditional network's; against an unconditional reference,
                if not mine.conditional:            # shown where it is not today's default
                    continue
                other = other if theirs.conditional else spec.default
            if getattr(mine, spec.name) != other:
                value = getattr(mine, spec.name)
                found[CONFIG_OPTIONS[(section, spec.name)][0]] = "none" if value is None else shown(value)
    return found


def kid_at(history: list[dict[str, float]], epoch: int) -> float | None:
    """The validation KID after ``epoch`` (None if the run has not reached it)."""
    return next((row["val_kid"] for row in history if int(row["epoch"]) == epoch and "val_kid" in row), None)


def summary(label: str, history: list[dict[str, float]], changes: dict[str, str]) -> dict[str, Any]:
    """One row of runs.json; ``kid_last`` is the KID of the last epoch that has one, ``kid_last_epoch`` that epoch (a
    run trained without per-epoch KID, measured afterwards at chosen epochs, may have run past it)."""
    last = history[-1] if history else {}
    measured = [row for row in history if "val_kid" in row]
    return {"label": label, "changes": changes, "epochs": int(last.get("epoch", 0)),
            **{f"kid_epoch_{epoch}": kid_at(history, epoch) for epoch in EPOCHS_SHOWN},
            "kid_last": measured[-1]["val_kid"] if measured else None,
            "kid_last_epoch": int(measured[-1]["epoch"]) if measured else None}


def table(rows: list[dict[str, Any]]) -> str:
    """runs.json as a Markdown table."""
    def cell(value: float | None) -> str:
        return "" if value is None else f"{value:.3f}"

    def after(row: dict[str, Any]) -> str:  # the last KID's epoch, where the run went on without one
        epoch = row.get("kid_last_epoch")
        return f" (after epoch {epoch})" if epoch is not None and epoch != row["epochs"] else ""

    reference = next((row["label"] for row in rows if row["changes"] is not None), "the first run")
    header = ["run", f"differs from {reference} by", *(f"KID after epoch {e}" for e in EPOCHS_SHOWN),
              "epochs run", "KID after the last", "Keras example after as many epochs"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        changes = ("the baseline (its published 50-epoch run)" if row["changes"] is None else
                   ", ".join(f"`{option} {value}`" for option, value in row["changes"].items()) or "—")
        lines.append(f"| {row['label']} | {changes} | " + " | ".join(cell(row[f'kid_epoch_{e}']) for e in EPOCHS_SHOWN)
                     + f" | {row['epochs']} | {cell(row['kid_last'])}{after(row)} | "
                     + ("—" if row["changes"] is None else cell(row.get("keras_kid_same_epochs"))) + " |")
    return "\n".join(lines) + "\n"


def guided_kids(run: Path, config: RunConfig) -> dict[float, dict[int, float]]:
    """``{guidance: {epoch: KID}}`` from the run's guided-kid.csv: the weights other than the run's own, measured
    with its per-epoch protocol's steps ({} where the file is absent)."""
    file = run / GUIDED_FILE
    if not file.is_file():
        return {}
    try:
        rows = [(row["guidance"], int(row["kid_steps"]), int(row["epoch"]), row["kid"]) for row in read_history(file)]
    except (KeyError, ValueError) as error:
        raise SystemExit(f"{file}: not a file of scripts/epoch_kid.py --csv ({error!r})") from None
    found: dict[float, dict[int, float]] = {}
    for guidance, steps, epoch, kid in rows:
        if steps == config.train.kid_steps and guidance != config.train.guidance:
            found.setdefault(guidance, {})[epoch] = kid
    return dict(sorted(found.items()))


def guided_table(label: str, own_guidance: float, history: list[dict[str, float]],
                 guided: dict[float, dict[int, float]], keras: list[dict[str, float]]) -> str:
    """A run's per-epoch KID at each guidance weight beside its own and the Keras example's, one row per epoch that
    a weight was measured at (an empty cell: not measured)."""
    def cell(value: float | None) -> str:
        return "" if value is None else f"{value:.3f}"

    epochs = sorted({epoch for kids in guided.values() for epoch in kids})
    header = ["after epoch", "Keras example (unconditional)", f"guidance {own_guidance:g} (the run's history)",
              *(f"guidance {weight:g}" for weight in guided)]
    lines = [f"Per-epoch KID of *{label}* at each guidance weight:", "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for epoch in epochs:
        cells = [str(epoch), cell(kid_at(keras, epoch)), cell(kid_at(history, epoch)),
                 *(cell(kids.get(epoch)) for kids in guided.values())]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_markers(name: str) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    """The README markers of ``--table NAME``: (begin, end, what the error calls them) of the table and of its guided
    table; the ones above for the default, ``<!-- NAME table: ... -->`` and ``<!-- NAME guided table: ... -->``
    otherwise."""
    if name == DEFAULT_TABLE:
        return (TABLE_BEGIN, TABLE_END, "recipe-table"), (GUIDED_BEGIN, GUIDED_END, "guided-table")
    written = f"(written by scripts/recipe_results.py --table {name})"
    return ((f"<!-- {name} table: begin {written} -->", f"<!-- {name} table: end -->", f"{name}-table"),
            (f"<!-- {name} guided table: begin {written} -->", f"<!-- {name} guided table: end -->",
             f"{name} guided-table"))


def readme_with_table(readme: str, markdown: str, begin_marker: str = TABLE_BEGIN, end_marker: str = TABLE_END,
                      name: str = "recipe-table") -> str:
    """``readme`` with the text between two markers (the recipe table's by default) replaced by ``markdown``."""
    begin, end = readme.find(begin_marker), readme.find(end_marker)
    if begin < 0 or end < begin:
        raise SystemExit(f"the README has no {name} markers ({begin_marker!r} … {end_marker!r})")
    return readme[:begin + len(begin_marker)] + "\n\n" + markdown + "\n" + readme[end:]


def publish(runs: list[tuple[str, Path]], out: Path, max_epoch: int | None, title: str | None = None) -> list[dict]:
    """Copy, summarise, tabulate and plot ``runs`` (label, run folder) into ``out``; returns runs.json's rows."""
    out.mkdir(parents=True, exist_ok=True)
    keras = read_history(KERAS_HISTORY)
    rows = [summary(KERAS_LABEL, keras, {})]
    rows[0]["changes"] = None  # the baseline: the published run of the default recipe
    curves = {KERAS_LABEL: keras}
    guided_tables: list[str] = []
    reference = None
    for label, run in runs:
        config = RunConfig.load(run / "config.json")
        reference = reference or config
        history = read_history(run / "history.csv") if (run / "history.csv").is_file() else []
        target = out / run.name
        target.mkdir(exist_ok=True)
        for name in ("history.csv", "config.json", GUIDED_FILE):
            if (target / name).resolve() == (run / name).resolve():
                continue  # a published folder given as RUN_DIR is kept
            if (run / name).is_file():
                shutil.copyfile(run / name, target / name)
            elif name == GUIDED_FILE and (target / name).is_file():
                (target / name).unlink()  # the run has no guided measurements (any more): no stale copy
        row = summary(label, history, differences(config, reference))
        rows.append({**row, "keras_kid_same_epochs": kid_at(keras, row["kid_last_epoch"] or row["epochs"]),
                     "folder": run.name})
        curves[label] = history
        guided = guided_kids(run, config)
        for weight, kids in guided.items():  # listed right under the run's own curve, so named short
            name = f"└ the same network at guidance {weight:g}"
            curves[name if name not in curves else f"{label}: the same network at guidance {weight:g}"] = [
                {"epoch": epoch, "val_kid": kid} for epoch, kid in sorted(kids.items())]
        if guided:
            guided_tables.append(guided_table(label, config.train.guidance, history, guided, keras))
    write_text(out / "runs.json", json.dumps({"images_per_epoch": IMAGES_PER_EPOCH, "runs": rows}, indent=2) + "\n")
    write_text(out / "table.md", table(rows))
    if guided_tables:
        write_text(out / "guided-table.md", "\n".join(guided_tables))
    elif (out / "guided-table.md").is_file():
        (out / "guided-table.md").unlink()  # no run has guided measurements any more
    plot_kid_curves(curves, out / "kid.png", title=title or "validation KID per epoch at equal training images",
                    subtitle="75 px Inception, 1,638 generated (ddim, 5 steps) vs the 1,638 validation images",
                    max_epoch=max_epoch, xlabel=f"epoch ({IMAGES_PER_EPOCH:,} training images each)")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=RUN_DIR",
                        help="a run to publish (the first is the reference the others are compared with)")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write (e.g. docs/results/recipe)")
    parser.add_argument("--max-epoch", type=int, default=None, help="plot epochs up to this one only")
    parser.add_argument("--title", default=None, help="the plot's title")
    parser.add_argument("--readme", default=str(README), help="the README whose recipe table to rewrite (default: "
                        "the repository's README.md; none: leave it alone)")
    parser.add_argument("--table", default=DEFAULT_TABLE, metavar="NAME",
                        help="which of the README's tables: the one between its '<!-- NAME table: begin ...' and "
                        "'<!-- NAME table: end -->' markers (and its NAME guided table's) (default: recipe)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", args.table):
        parser.error(f"--table {args.table!r}: a name of lower-case letters, digits and '-' (it names README markers)")
    runs = []
    for spec in args.run:
        label, separator, folder = spec.partition("=")
        if not separator or not Path(folder, "config.json").is_file():
            parser.error(f"--run {spec}: expected LABEL=RUN_DIR with RUN_DIR a run folder (holding config.json)")
        runs.append((label, Path(folder)))
    markdown = table(publish(runs, args.out, args.max_epoch, args.title))
    print(markdown, end="")
    guided = args.out / "guided-table.md"
    if guided.is_file():
        print("\n" + guided.read_text(), end="")
    if args.readme != "none":
        readme = Path(args.readme)
        table_marks, guided_marks = table_markers(args.table)
        text = readme_with_table(readme.read_text(), markdown, *table_marks)
        if guided.is_file():
            text = readme_with_table(text, guided.read_text(), *guided_marks)
        write_text(readme, text)
        print(f"{readme}: {args.table} table{' and guided table' if guided.is_file() else ''} rewritten")


if __name__ == "__main__":
    main()
