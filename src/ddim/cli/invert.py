"""``ddim invert``: deterministic DDIM inversion of real images to noise and back, error against steps."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from ..limits import MAX_SAMPLING_STEPS, MAX_STUDY_POINTS
from . import argtypes, options


def add_parser(commands: argparse._SubParsersAction, help_text: str) -> None:
    """Register this command and its options."""
    parser = commands.add_parser("invert", help=help_text,
                                 description="Map real images to noise with deterministic DDIM inversion, sample "
                                 "them back, and print the reconstruction error for each number of steps; the "
                                 "settings and errors go to invert.json too.")
    options.add_checkpoint(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--images", type=Path, nargs="+", default=None, metavar="FILE",
                        help="image files to invert (default: validation images of the data)")
    source.add_argument("--data", default=None, metavar="DIR", help="take validation images of this data folder "
                        "(default: the checkpoint's data)")
    parser.add_argument("--num", type=argtypes.positive_int, default=8,
                        help="validation images to invert when no --images are given (default: 8)")
    parser.add_argument("--steps", type=argtypes.int_list_between(1, MAX_SAMPLING_STEPS, MAX_STUDY_POINTS, " (more steps gain nothing)"),
                        default=(2, 5, 10, 20, 50),
                        help="comma-separated step counts (default: 2,5,10,20,50)")
    parser.add_argument("--out", type=argtypes.output_folder, required=True, metavar="DIR",
                        help="output folder (grids, errors.csv, invert.json)")
    options.add_device(parser)
    options.add_speed(parser)
    options.add_progress(parser)
    parser.set_defaults(parser=parser, run=run)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Carry the command out; returns the exit status."""
    import numpy as np
    import torch

    from ..data import run_splits
    from ..data.images import load_image
    from ..inversion import invert_and_reconstruct, reconstruction_error
    from ..loading import load_model
    from ..reports import save_grid

    device, runtime = options.resolve_runtime_args(args)
    model = load_model(args.checkpoint, device=device)
    config, folder = model.origin.config, model.origin.source
    size = config.model.image_size
    if args.images:
        array = np.stack([load_image(path, size) for path in args.images])
    else:
        splits = run_splits(config, data=args.data, progress=options.progress_factory(args.progress))
        array = splits.validation[: args.num]
    images = torch.from_numpy(array).permute(0, 3, 1, 2).float().div(255.0).to(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_grid(images.cpu(), out / "originals.png")
    rows = []
    for steps in args.steps:
        latents, reconstructions = invert_and_reconstruct(model, images, steps, runtime=runtime)
        rows.append(reconstruction_error(images, reconstructions, latents, steps))
        save_grid(reconstructions.cpu(), out / f"reconstructions_{steps}steps.png")
        save_grid(((latents.cpu() + 3) / 6).clamp(0, 1), out / f"latents_{steps}steps.png")  # +-3 sigma shown
    with open(out / "errors.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"DDIM inversion of {len(images)} images (checkpoint {folder}); errors in [0, 1] pixels:")
    print(f"{'steps':>6} {'MAE':>9} {'RMSE':>9} {'PSNR dB':>8} {'latent mean':>12} {'latent std':>11}")
    for row in rows:
        print(f"{row['steps']:>6} {row['mae']:>9.5f} {row['rmse']:>9.5f} {row['psnr_db']:>8.2f} "
              f"{row['latent_mean']:>12.4f} {row['latent_std']:>11.4f}")
    source = ({"images": [str(path) for path in args.images]} if args.images else
              {"data": str(splits.folder), "split": "validation", "num": len(images)})
    settings = {"command": "invert", "checkpoint": str(folder), **source, "steps": list(args.steps),
                "image_size": size, "speed": runtime.describe(), "errors": rows}
    options.write_json(settings, out / "invert.json")
    print(f"wrote originals, reconstructions, latents, errors.csv and invert.json to {out}")
    return 0
