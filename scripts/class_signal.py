"""How much a conditional model has learned of its classes: its denoising error on validation images when told
their true class, no class, or a wrong one.

    python scripts/class_signal.py CHECKPOINT [CHECKPOINT ...] [--num 256] [--times 0.3,0.6,0.9]

For each checkpoint (a run folder, a checkpoint folder, an exported file) and diffusion time t, the EMA network
predicts the noise of the first --num validation images, noised at t with the same noises every time, three ways:
with each image's own class, with no class (the unconditional prediction), and with another class (each label
shifted by one). It prints the mean absolute noise error of each and the **class gain**: the wrong class's error
minus the true class's, as a share of the unconditional one. A network that has learned nothing of its classes
(or whose class pathway only adds noise) scores about 0 whatever its initial weights, since a wrong class hurts
it as much as a true one helps; the larger the gain, the more the class tells it about the image.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from ddim.cli.errors import one_line_errors
from ddim.data import run_splits
from ddim.diffusion import add_noise
from ddim.loading import load_model
from ddim.network import NO_CLASS


def class_errors(model, images: torch.Tensor, labels: torch.Tensor, time: float, seed: int = 0) -> dict[str, float]:
    """Mean absolute noise error with the true class, no class and a wrong class, at diffusion time ``time``."""
    generator = torch.Generator().manual_seed(seed)
    noises = torch.randn(images.shape, generator=generator)
    noise_rates, signal_rates = model.schedule.rates(torch.full((len(images), 1, 1, 1), time))
    noisy = add_noise(model.normalizer.normalize(images), noises, noise_rates, signal_rates)
    wrong = (labels + 1) % len(model.class_names)
    errors = {}
    for name, asked in (("true", labels), ("none", torch.full_like(labels, NO_CLASS)), ("wrong", wrong)):
        predicted, _ = model.denoiser(ema=True, labels=asked)(noisy, noise_rates, signal_rates)
        errors[name] = float((predicted - noises).abs().mean())
    errors["gain"] = (errors["wrong"] - errors["true"]) / errors["none"]
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--num", type=int, default=256, help="validation images (default: 256)")
    parser.add_argument("--times", default="0.3,0.6,0.9", help="diffusion times t (default: 0.3,0.6,0.9)")
    parser.add_argument("--data", default=None, help="the images (default: the run's own)")
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f"--num must be at least 1, got {args.num}")
    try:
        times = [float(t) for t in args.times.split(",")]
    except ValueError:
        parser.error(f"--times must be numbers separated by commas, got {args.times!r}")
    if not all(0 <= t <= 1 for t in times):
        parser.error(f"--times must lie in [0, 1], got {args.times!r}")
    with one_line_errors("class_signal.py"):
        return print_class_signal(parser, args, times)


@torch.no_grad()
def print_class_signal(parser: argparse.ArgumentParser, args: argparse.Namespace, times: list[float]) -> int:
    """Print the table of :func:`main`, one row per checkpoint and time."""
    print("| checkpoint | step | t | error, true class | no class | wrong class | class gain |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for checkpoint in args.checkpoints:
        model = load_model(checkpoint, device="cpu")
        if not model.class_names:
            parser.error(f"{checkpoint} is not a conditional model")
        splits = run_splits(model.origin.config, data=args.data)
        count = min(args.num, len(splits.validation))
        images = torch.from_numpy(np.ascontiguousarray(splits.validation[:count])).permute(0, 3, 1, 2).float() / 255
        labels = torch.from_numpy(splits.validation_labels[:count]).long()
        step = model.origin.step if model.origin.step is not None else "?"
        for time in times:
            e = class_errors(model, images, labels, time)
            print(f"| {checkpoint} | {step} | {time:g} | {e['true']:.4f} | {e['none']:.4f} | "
                  f"{e['wrong']:.4f} | {100 * e['gain']:.2f}% |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
