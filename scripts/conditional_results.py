"""Publish the class-conditional run of the improved recipe (issue 24): guidance sweep, FID against all the images,
a labelled grid of named classes, and (with --builtin yes) the built-in model.

    python scripts/conditional_results.py RUN_DIR [--data DIR] [--out docs/results/conditional] [--builtin yes]
                                          [--model EXPORT]

Writes into OUT, each file measured with the public commands (``ddim evaluate``, ``ddim sample``) so a reader can
repeat any one of them:

- ``samples_64.png``, ``history.csv``, ``losses.png``, ``results.json``: as scripts/publish_results.py writes them
  for the Keras example's run (the 64 samples at guidance 1, the classes in turn);
- ``guidance/w{W}.json``: ``ddim evaluate --guidance W`` for W in --weights (default 0, 1, 1.5, 2, 3): KID and FID
  at 299 px, as many samples as validation images, against the validation images, the classes in the
  validation set's mix;
- ``all/w{W}.json``: the same against all the images with as many samples (--num-all, default 8,189), for
  guidance 0, 1 and the best of the sweep's weights above 1 (the lowest KID; FID breaks a tie);
- ``kid-vs-guidance.png``: KID (± std) and FID against the guidance weight, both sets;
- ``classes.png``: one labelled row of 8 images per class of --classes at the best guidance (``ddim sample
  --class ... --num 8``);
- ``summary.json``: the checkpoint, its step and epoch, every point, the best weight;
- with ``--builtin yes``: the EMA network as the built-in model ``BUILTIN_FILE`` (fp16).

The model is the run's latest checkpoint, or with ``--model EXPORT`` a file written by ``ddim export`` of one of its
epochs (the GPU route, ``CHECK=recipe bash scripts/gpu_check.sh``, brings back exports and the history, not
checkpoints; measure the per-epoch KID into that history first with scripts/epoch_kid.py).

Run again after an interruption: a JSON already written for this checkpoint with as many samples is kept, and an
evaluation cut short continues from its finished batches (``ddim evaluate``'s cache). The settings below shrink
it for a trial (``--num 16 --num-all 24 --steps 2 --kid-size 75 ...``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from ddim.classes import ClassError, resolve_classes
from ddim.cli import main as ddim
from ddim.cli.errors import one_line_errors
from ddim.data import run_splits
from ddim.export import PRETRAINED_FOLDER, training_info
from ddim.files import write_text
from ddim.plots import plot_guidance

sys.path.insert(0, str(Path(__file__).resolve().parent))
import publish_results  # noqa: E402
from portable_results import portable  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUILTIN_FILE = PRETRAINED_FOLDER / "flowers102-64px-conditional.safetensors"
WEIGHTS = (0.0, 1.0, 1.5, 2.0, 3.0)
CLASSES = ("sunflower", "rose", "daffodil", "water lily", "passion flower", "bird of paradise", "purple coneflower",
           "orange dahlia")


def weight_name(weight: float) -> str:
    """``w0``, ``w1``, ``w1.5`` (a file name)."""
    return f"w{weight:g}"


def best_weight(points: list[dict[str, Any]]) -> float:
    """The guidance weight above 1 with the lowest KID (FID breaks a tie); 1 where the sweep has none above 1."""
    above = [point for point in points if point["guidance"] > 1.0]
    if not above:
        return 1.0
    return min(above, key=lambda point: (point["kid"], point["fid"]))["guidance"]


def written_for(path: Path, checkpoint: str, num: int | None) -> dict[str, Any] | None:
    """The evaluation in ``path`` if it was written for ``checkpoint`` with ``num`` samples (None: as many as the
    reference images), else None."""
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    same = Path(str(result.get("checkpoint", ""))).name == Path(checkpoint).name
    return result if same and result.get("num_generated") == (num or result.get("num_real")) else None


def evaluate(checkpoint: str, out: Path, weight: float, common: list[str], *, reference: str = "validation",
             num: int | None = None) -> dict[str, Any]:
    """``ddim evaluate --guidance weight`` into ``out`` (kept where already written for this checkpoint)."""
    kept = written_for(out, checkpoint, num)
    if kept is not None:
        print(f"kept {out} (written earlier for {checkpoint})")
        return kept
    out.parent.mkdir(parents=True, exist_ok=True)
    command = ["evaluate", "--checkpoint", checkpoint, "--guidance", f"{weight:g}", "--reference", reference,
               *(["--num", str(num)] if num else []), "--no-progress", "--json", str(out), *common]
    print(shlex.join(["ddim", *command]), flush=True)
    if ddim(command) != 0:
        raise SystemExit(f"ddim evaluate failed for guidance {weight:g}")
    return json.loads(out.read_text())


def point(result: dict[str, Any], weight: float) -> dict[str, Any]:
    """One point of the sweep as summary.json and the plot keep it."""
    return {"guidance": weight, "kid": result["kid"], "kid_std": result["kid_std"], "fid": result["fid"],
            "num_generated": result["num_generated"], "num_real": result["num_real"],
            "reference": result["reference"]["set"], "kid_subset_size": result["kid_subset_size"],
            "kid_size": result["settings"]["kid_size"], "steps": result["settings"]["steps"],
            "sampler": result["settings"]["sampler"]}


def class_grid(checkpoint: str, out: Path, classes: tuple[str, ...], weight: float, extra: list[str]) -> list[str]:
    """``ddim sample --class ... --num 8`` at ``weight``: its labelled grid copied to ``out``; returns the command
    (without its temporary --out and the --extra options)."""
    shown = ["sample", "--checkpoint", checkpoint, "--class", *classes, "--num", "8", "--guidance", f"{weight:g}",
             "--seed", "0", "--format", "npz", "--no-progress"]
    with tempfile.TemporaryDirectory() as folder:
        if ddim([*shown, "--out", folder, *extra]) != 0:
            raise SystemExit("ddim sample failed for the class grid")
        shutil.copyfile(Path(folder) / "grid.png", out)
    return shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="the conditional run folder (its latest checkpoint) or one checkpoint")
    parser.add_argument("--data", default=None, help="the images (default: the run's own)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "conditional")
    parser.add_argument("--weights", default=",".join(f"{w:g}" for w in WEIGHTS), help="guidance weights of the sweep")
    parser.add_argument("--num", type=int, default=None, help="samples per sweep point (default: the validation set's)")
    parser.add_argument("--num-all", type=int, default=8189, help="samples against all the images (default: 8,189)")
    parser.add_argument("--classes", default=",".join(CLASSES), help="the grid's 8 classes, comma-separated")
    parser.add_argument("--builtin", choices=("yes", "no"), default="no", help=f"also export to {BUILTIN_FILE.name}")
    parser.add_argument("--hardware", default=publish_results.HARDWARE, help="where the run trained, read after 'on'")
    parser.add_argument("--kid-size", type=int, default=299, help="Inception input size (default: 299)")
    parser.add_argument("--subsets", type=int, default=100, help="KID subsets (default: 100)")
    parser.add_argument("--subset-size", type=int, default=1000, help="KID subset size (default: 1000)")
    parser.add_argument("--extra", default="", help="options for every ddim command (e.g. '--device cpu --steps 2')")
    parser.add_argument("--model", type=Path, default=None,
                        help="an export (ddim export) of an epoch of the run, published instead of its checkpoint")
    args = parser.parse_args(argv)
    try:
        weights = [float(w) for w in args.weights.split(",")]
    except ValueError:
        parser.error(f"--weights must be numbers separated by commas, got {args.weights!r}")
    if not all(0 <= w < float("inf") for w in weights):
        parser.error(f"--weights must be finite and at least 0, got {args.weights!r}")
    classes = tuple(name.strip() for name in args.classes.split(","))
    with one_line_errors("conditional_results.py"):
        model, source, state = publish_results.published_state(Path(args.run_dir), args.model)
        if not model.class_names:
            parser.error(f"{args.model or args.run_dir} is not a class-conditional model (trained without "
                         "--conditional)")
        try:  # checked before hours of evaluation, not when the grid is drawn at the end
            resolve_classes(model.class_names, list(classes), source=args.model or args.run_dir)
        except ClassError as error:
            parser.error(f"--classes: {error}")
        run_splits(model.origin.config, data=args.data)  # a wrong --data is named now, not by the first evaluation
    checkpoint = str(source)
    info = training_info(state)
    extra = args.extra.split()
    common = [*(["--data", args.data] if args.data else []), "--kid-size", str(args.kid_size), "--subsets",
              str(args.subsets), "--subset-size", str(args.subset_size), *extra]
    args.out.mkdir(parents=True, exist_ok=True)
    publish_results.main([args.run_dir, "--out", str(args.out), "--hardware", args.hardware, "--title",
                          "training history of the improved recipe, class-conditional (docs/results/conditional)",
                          *(["--model", str(args.model)] if args.model else [])])
    sweep = [point(evaluate(checkpoint, args.out / "guidance" / f"{weight_name(w)}.json", w, common, num=args.num), w)
             for w in weights]
    best = best_weight(sweep)
    everything = [point(evaluate(checkpoint, args.out / "all" / f"{weight_name(w)}.json", w, common, reference="all",
                                 num=args.num_all), w) for w in sorted({0.0, 1.0, best})]
    plot_guidance({"validation": sweep, "all": everything}, args.out / "kid-vs-guidance.png",
                  title=f"KID and FID against the guidance weight, epoch {info['epoch']} of the conditional run")
    command = class_grid(checkpoint, args.out / "classes.png", classes, best, extra)
    summary = {"checkpoint": checkpoint, **info,
               "sweep": sweep, "best_guidance": best, "all": everything,
               "classes": {"file": "classes.png", "names": list(classes), "guidance": best, "seed": 0,
                           "command": shlex.join(["ddim", *portable(command)])}}
    write_text(args.out / "summary.json", json.dumps(summary, indent=2) + "\n")
    for written in args.out.rglob("*.json"):  # no path of this machine
        write_text(written, json.dumps(portable(json.loads(written.read_text())), indent=2) + "\n")
    if args.builtin == "yes":
        publish_results.export_builtin(model, model.origin.config, info, BUILTIN_FILE, "docs/results/conditional")
    for row in sweep + everything:
        print(f"guidance {row['guidance']:g} vs {row['num_real']} {row['reference']}: KID {row['kid']:.4f} ± "
              f"{row['kid_std']:.4f}  FID {row['fid']:.1f}")
    shipped = f" and {BUILTIN_FILE}" if args.builtin == "yes" else ""
    print(f"best guidance above 1: {best:g}; wrote {args.out}{shipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
