"""``ddim sample``: N images and a grid from a checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import options

GRID_IMAGES = 256


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register this command and its options."""
    parser = commands.add_parser("sample", help="generate images from a checkpoint",
                                 description="Generate N images (PNG files and a grid) with the EMA network. "
                                 "Image k of seed s is the same whatever the batch size.")
    options.add_checkpoint(parser)
    parser.add_argument("--num", type=options.image_count, default=16, help="number of images (default: 16)")
    options.add_sampler(parser)
    parser.add_argument("--seed", type=options.seed, default=0, help="generation seed (default: 0)")
    parser.add_argument("--out", type=options.output_folder, required=True, help="output folder")
    parser.add_argument("--batch-size", type=options.positive_int, default=256, help="images per batch (default: 256)")
    options.add_device(parser)
    options.add_speed(parser)
    parser.set_defaults(parser=parser, run=run)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Carry the command out; returns the exit status."""
    import torch

    from ..checkpoint import load_model
    from ..model import generate_images
    from ..reports import save_grid, save_images

    sampler_options = options.sampler_options(parser, args)
    device, speed = options.resolve_speed_args(args)
    model, config, folder = load_model(args.checkpoint, device=device)
    out = Path(args.out)
    shown = []  # the grid shows the first GRID_IMAGES; the rest is written batch by batch, never all held
    for start in range(0, args.num, args.batch_size):
        indices = range(start, min(start + args.batch_size, args.num))
        images = generate_images(model, seed=args.seed, indices=indices, steps=args.steps,
                                 batch_size=args.batch_size, sampler=args.sampler, device=device, speed=speed,
                                 **sampler_options)
        save_images(images, out, start=start)
        shown.append(images[:max(0, GRID_IMAGES - start)])
    save_grid(torch.cat(shown), out / "grid.png")
    settings = {"checkpoint": str(folder), "num": args.num, "steps": args.steps, "seed": args.seed,
                "sampler": args.sampler, "eta": args.eta, "speed": speed.describe()}
    (out / "sample.json").write_text(json.dumps(settings, indent=2) + "\n")
    print(f"wrote {args.num} images and grid.png to {out} ({args.sampler}, {args.steps} steps; checkpoint {folder})")
    return 0
