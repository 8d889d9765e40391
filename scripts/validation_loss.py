"""The validation losses of a run's saved models, measured afterwards with the protocol training uses, and for a
conditional run also those of the network's class-free branch (the predictions guidance 0 samples from).

    python scripts/validation_loss.py RUN_DIR MODEL [MODEL ...] [--data DIR] [--device cpu]

MODEL: a checkpoint folder of the run, a ``ddim export`` file, or a built-in model's name (``keras-example``): any
model of the run's image size. Each is measured as training measures ``val_noise_loss`` and ``val_image_loss``: its
EMA network over RUN_DIR's validation images, in the run's precision, with the same noise every time (the run's seed),
so the numbers compare with any history's columns of a run with that seed and split (the measured model's own
epoch reproduces its history row). A conditional model is measured twice: with every image's class (what the
history holds) and with none (every label ``NO_CLASS``): the class-free branch, which ``class_dropout`` of the
training images train, against an unconditional run's losses at equal training images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ddim.cli.errors import one_line_errors
from ddim.config import RunConfig
from ddim.data import run_splits
from ddim.data.loader import DeviceImages
from ddim.layout import RunLayout
from ddim.loading import load_model
from ddim.network import NO_CLASS
from ddim.runtime import resolve_device, resolve_runtime
from ddim.training.step import validation_losses


def model_losses(run_dir: Path, models: list[str], *, data: str | None = None,
                 device: str = "auto") -> dict[str, dict[str, dict[str, float]]]:
    """``{model: {"with classes" | "class-free" | "unconditional": {"val_noise_loss": ..., ...}}}``."""
    layout = RunLayout(Path(run_dir))
    if not layout.config.is_file():
        raise SystemExit(f"{layout.config} does not exist: RUN_DIR must be a run folder (its validation split and "
                         "seed make the measurement)")
    config = RunConfig.load(layout.config)
    runtime = resolve_runtime(resolve_device(device), config.train.precision, config.train.channels_last, "off")
    splits = run_splits(config, data=data)
    measured: dict[str, dict[str, dict[str, float]]] = {}
    for source in models:
        model = load_model(source, device=runtime.device).to(memory_format=runtime.memory_format())
        if model.origin.config.model.image_size != config.model.image_size:
            raise SystemExit(f"{source}: its images are {model.origin.config.model.image_size} px, the run's "
                             f"{config.model.image_size} px")
        conditional = model.origin.config.model.conditional
        if conditional and splits.validation_labels is None:
            raise SystemExit(f"{source} is a conditional model but {layout.config}'s images have no classes")
        if not conditional:
            ways = {"unconditional": None}
        else:
            known = len(model.origin.config.model.class_names)
            if int(splits.validation_labels.max()) >= known:
                raise SystemExit(f"{source} knows {known} classes, fewer than {layout.config}'s images have")
            ways = {"with classes": splits.validation_labels,
                    "class-free": np.full_like(splits.validation_labels, NO_CLASS)}
        measured[source] = {}
        for way, labels in ways.items():
            batches = DeviceImages(splits.validation, runtime.device, labels)
            losses = validation_losses(model, batches, config, runtime)
            measured[source][way] = losses
            print(f"{source} ({way}): val_noise_loss {losses['val_noise_loss']:.6f}  "
                  f"val_image_loss {losses['val_image_loss']:.6f}", flush=True)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the run folder whose validation images, seed and precision to use")
    parser.add_argument("models", nargs="+", help="checkpoint folders, ddim export files or built-in model names")
    parser.add_argument("--data", help="the run's images, where they are not where it was trained")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    args = parser.parse_args()
    with one_line_errors("validation_loss.py"):
        model_losses(args.run_dir, args.models, data=args.data, device=args.device)


if __name__ == "__main__":
    main()
