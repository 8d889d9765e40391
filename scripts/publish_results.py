"""Publish a run's results into the repository: docs/results/ and the built-in model.

    python scripts/publish_results.py RUN_DIR [--hardware "a 2-core CPU"] [--builtin yes] [--quick-check yes]
                                      [--model EXPORT]

Writes docs/results/samples_64.png (64 images of the latest EMA network, 20 DDIM steps, seed 0),
history.csv and losses.png (the checkpoint's own history, so a checkpoint kept anywhere publishes alike), results.json (epoch reached, images seen, wall
time, hardware, the per-epoch validation KID) and, with --builtin yes, exports the EMA network as the
built-in model (src/ddim/pretrained/flowers102-64px.safetensors, fp16). With --quick-check yes it also writes
quick-check.json: the 299 px KID of 16 samples against 400 validation flowers, beside 16 noise images and 16
training flowers (a minute on a CPU; the README shows it until the full evaluation exists). KID/FID at 299 px
are measured with `ddim evaluate ... --json docs/results/evaluate-*.json` (scripts/final_results.sh), and the
README's Results section is written from all these files by scripts/results_section.py.

With --model EXPORT (a file written by ``ddim export`` of one of the run's epochs) the run folder gives only its
history.csv and that file the network: the GPU route (``CHECK=recipe bash scripts/gpu_check.sh``) brings back a
run's history and fp16 exports, not its checkpoints.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
from pathlib import Path

import torch

from ddim import __version__
from ddim.checkpoint import load_training_state
from ddim.cli.errors import one_line_errors
from ddim.loading import load_model
from ddim.export import BUILTIN_MODELS, export_model, is_exported, training_info
from ddim.files import write_text
from ddim.model import generate_images
from ddim.plots import plot_history
from ddim.reports import read_history, save_grid, write_history

BUILTIN_FILE = BUILTIN_MODELS["keras-example"]  # this script publishes the Keras example's run

REPO = Path(__file__).resolve().parents[1]
HARDWARE = "a 2-core CPU (no GPU)"


def wall_seconds(history: list[dict], batch_size: int) -> float:
    """Training and evaluation time: each epoch's steps at its measured images/s, plus its evaluation.

    Equal to the sum of the rows' seconds, except for an epoch resumed from a checkpoint written before
    ddim 0.3, whose row timed only the steps after the resume (its images/s is still right).
    """
    total, previous = 0.0, 0
    for row in history:
        steps, previous = int(row["step"]) - previous, int(row["step"])
        rate = row.get("images_per_second")
        total += (steps * batch_size / rate if rate else row.get("seconds", 0.0)) + row.get("eval_seconds", 0.0)
    return total


def quick_check(model: torch.nn.Module, splits, *, num: int = 16, num_real: int = 400, steps: int = 20) -> dict:
    """KID at 299 px of ``num`` samples, ``num`` uniform-noise images and ``num`` training images, each against the
    first ``num_real`` validation images (the built-in model's test, tests/test_export.py, with the same protocol)."""
    from ddim.metrics.distances import polynomial_mmd
    from ddim.metrics.inception import extract_features, load_inception

    extractor = load_inception(None, 299)
    real = extract_features(extractor, splits.validation[:num_real])
    size = model.config.image_size
    candidates = {"samples": generate_images(model, seed=0, indices=range(num), steps=steps),
                  "noise": torch.rand(num, 3, size, size, generator=torch.Generator().manual_seed(0)),
                  "train": splits.train[:num]}
    kid = {name: float(polynomial_mmd(real, extract_features(extractor, images))) for name, images in candidates.items()}
    return {"num": num, "num_real": min(num_real, len(splits.validation)), "kid_size": 299, "steps": steps, "seed": 0,
            **{f"kid_{name}": value for name, value in kid.items()}}


def published_state(run_dir: Path, model_file: Path | None = None) -> tuple[torch.nn.Module, Path, dict]:
    """The model to publish, where it comes from and its training state (``step``, ``history``, ``best_kid``).

    Without ``model_file``: the latest checkpoint of ``run_dir`` (or the checkpoint it names) and its saved state.
    With it: that exported file's network, and the rows of ``run_dir``'s history.csv up to its epoch, which must end
    at the file's step (an export of another run, or of an epoch the history lacks, is refused by name).
    """
    if model_file is None:
        model = load_model(run_dir)  # a run folder (its latest) or one checkpoint folder
        return model, model.origin.source, load_training_state(model.origin.source)
    if not Path(model_file).is_file():
        raise SystemExit(f"--model {model_file}: no such file")
    if not is_exported(Path(model_file)):
        raise SystemExit(f"--model {model_file}: not a file written by ddim export")
    model = load_model(model_file)
    history_file = Path(run_dir) / "history.csv"
    if not history_file.is_file():
        raise SystemExit(f"{run_dir} has no history.csv: --model needs the run folder its export came from")
    metadata = model.origin.metadata
    try:
        step, epoch = int(metadata["step"]), int(metadata["epoch"])
    except (KeyError, ValueError):
        raise SystemExit(f"--model {model_file}: its metadata records no training step and epoch") from None
    history = [{**row, "epoch": int(row["epoch"]), "step": int(row["step"])} for row in read_history(history_file)
               if row["epoch"] <= epoch]
    if not history or history[-1]["epoch"] != epoch or history[-1]["step"] != step:
        found = f"ends at epoch {history[-1]['epoch']}, step {history[-1]['step']}" if history else "is empty"
        raise SystemExit(f"--model {model_file} (epoch {epoch}, step {step}) is not an epoch of {history_file} "
                         f"(up to epoch {epoch} it {found}): an export of another run?")
    return model, Path(model_file), {"step": step, "history": history, "best_kid": None}


def export_builtin(model: torch.nn.Module, config, info: dict, file: Path, source: str) -> None:
    """Export ``model`` as a built-in model's ``file`` (fp16), its data folder named portably (flowers102, which
    downloads where no --data is given) and ``source`` naming where its results are published."""
    portable = dataclasses.replace(config, data=dataclasses.replace(config.data, path="flowers102", cache_dir=None))
    export_model(model, portable, file, info={**info, "source": source})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder (its latest checkpoint) or one of its checkpoints")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    parser.add_argument("--title", default="training history of the default recipe (docs/results)",
                        help="the losses plot's title")
    parser.add_argument("--hardware", default=HARDWARE,
                        help="where it ran, as read after 'on' (default: a 2-core CPU (no GPU))")
    parser.add_argument("--builtin", choices=("yes", "no"), default="no")
    parser.add_argument("--quick-check", choices=("yes", "no"), default="no", help="also write quick-check.json")
    parser.add_argument("--data", default=None, help="the images for --quick-check (default: the run's own)")
    parser.add_argument("--model", type=Path, default=None,
                        help="an export (ddim export) of an epoch of the run, published instead of its checkpoint")
    args = parser.parse_args(argv)
    with one_line_errors("publish_results.py"):
        publish(args)


def publish(args: argparse.Namespace) -> None:
    """Write what :func:`main`'s options ask for. The images of --quick-check are read first, so a wrong --data
    stops it before anything is written."""
    model, checkpoint, state = published_state(args.run_dir, args.model)
    config = model.origin.config
    splits = None
    if args.quick_check == "yes":
        from ddim.data import load_splits

        splits = load_splits(dataclasses.replace(config.data, path=args.data or config.data.path),
                             config.model.image_size)
    history = state["history"]
    epoch = history[-1]["epoch"] if history else 0
    args.out.mkdir(parents=True, exist_ok=True)
    images = generate_images(model, seed=0, indices=range(64), steps=20, batch_size=64)
    save_grid(images, args.out / "samples_64.png", columns=8)
    write_history(history, args.out / "history.csv")
    train = config.train
    plot_history(history, args.out / "losses.png", title=args.title,
                 loss=train.loss, kid_size=train.kid_image_size, kid_num=config.data.validation_images,
                 kid_sampler=f"ddim, {train.kid_steps} steps")
    results = {
        "ddim_version": __version__, "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": checkpoint.name, "epochs_completed": int(epoch), "epochs_planned": config.train.epochs,
        "step": int(state["step"]), "images_seen": int(state["step"]) * config.train.batch_size,
        "wall_seconds": round(wall_seconds(history, config.train.batch_size), 1),
        "hardware": args.hardware,
        "per_epoch": [{"epoch": int(r["epoch"]), "train_noise_loss": r.get("train_noise_loss"),
                       "val_noise_loss": r.get("val_noise_loss"), "val_kid_75px": r.get("val_kid"),
                       "images_per_second": r.get("images_per_second")} for r in history],
        "grid": {"file": "samples_64.png", "sampler": "ddim", "steps": 20, "seed": 0, "network": "EMA"},
        "config": config.to_dict(),
    }
    write_text(args.out / "results.json", json.dumps(results, indent=2) + "\n")
    if splits is not None:
        check = quick_check(model, splits)
        write_text(args.out / "quick-check.json", json.dumps({"checkpoint": checkpoint.name, **check}, indent=2) + "\n")
        print(f"quick check: KID {check['kid_samples']:.3f} (noise {check['kid_noise']:.3f}, training flowers "
              f"{check['kid_train']:.3f})")
    if args.builtin == "yes":
        export_builtin(model, config, training_info(state), BUILTIN_FILE, "docs/results (the README's Results run)")
    print(f"published epoch {epoch} (step {state['step']}) of {checkpoint} to {args.out}"
          + (f" and {BUILTIN_FILE}" if args.builtin == "yes" else ""))


if __name__ == "__main__":
    main()
