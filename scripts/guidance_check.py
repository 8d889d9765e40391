"""Class-conditional training end to end on a two-class toy set, and the share of images of the asked class
against the guidance weight: what tests/test_conditional.py asserts, as a table.

    .venv/bin/python scripts/guidance_check.py [--steps 400] [--num 48] [--class-conditioning input] [--out DIR]

Trains through ``ddim train --conditional`` on red discs and blue squares (16 px, one subfolder per class), then
draws ``--num`` images of each class with ``ddim sample --class ... --guidance W`` and reads each image's class from
its colour (mean red minus mean blue).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import redness, write_shapes  # noqa: E402  (the test suite's data, so the numbers are the tests')

from ddim.cli import main  # noqa: E402

WEIGHTS = (0.0, 1.0, 2.0, 3.0, 5.0)


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps (default: 400, as the test)")
    parser.add_argument("--num", type=int, default=48, help="images per class and weight (default: 48)")
    parser.add_argument("--class-conditioning", default="every-block", choices=("every-block", "input"),
                        help="where the network takes its class (default: every-block)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/guidance-check"), help="work folder (replaced)")
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    data, run_dir = write_shapes(args.out / "data"), args.out / "run"
    from test_conditional import TRAIN  # the test's training options

    if main(["train", "--data", str(data), "--run-dir", str(run_dir), "--max-steps", str(args.steps), *TRAIN,
             "--class-conditioning", args.class_conditioning]):
        return 1
    print(f"\n{args.steps} steps; {args.num} images per class; share of images that read as the asked class")
    print("| guidance w | red discs | blue squares | both |\n| --- | --- | --- | --- |")
    for weight in WEIGHTS:
        out = args.out / f"w{weight:g}"
        if main(["sample", "--checkpoint", str(run_dir), "--num", str(args.num), "--class", "red discs",
                 "blue squares", "--steps", "10", "--guidance", str(weight), "--format", "npz", "--out", str(out),
                 "--no-progress"]):
            return 1
        with np.load(out / "samples.npz") as samples:
            red = redness(samples["images"]) > 0
            labels = samples["labels"]
        reds, blues = red[labels == 1].mean(), (~red[labels == 0]).mean()
        print(f"| {weight:g} | {reds:.2f} | {blues:.2f} | {(reds + blues) / 2:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(run())
