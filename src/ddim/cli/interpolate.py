"""``ddim interpolate``: spherical interpolation between starting noises, as a strip and an animated GIF."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..classes import labels_for
from ..limits import MAX_FRAMES, MAX_PAIRS
from . import argtypes, options


def add_parser(commands: argparse._SubParsersAction, help_text: str) -> None:
    """Register this command and its options."""
    parser = commands.add_parser("interpolate", help=help_text,
                                 description="Slerp between the starting noises of images 2i and 2i+1 of a seed "
                                 "and sample every frame with deterministic DDIM: a strip (one row per pair) and "
                                 "an animated GIF, with the settings in interpolate.json.")
    options.add_checkpoint(parser)
    parser.add_argument("--seed", type=argtypes.seed, default=0, help="noise seed (default: 0)")
    parser.add_argument("--pairs", type=argtypes.int_between(1, MAX_PAIRS), default=4,
                        help="rows of the strip (default: 4)")
    parser.add_argument("--frames", type=argtypes.int_between(2, MAX_FRAMES), default=9,
                        help=f"images per row, 2 to {MAX_FRAMES} (default: 9)")
    parser.add_argument("--steps", type=argtypes.sampling_steps, default=20, help="DDIM steps (default: 20)")
    options.add_classes(parser)
    parser.add_argument("--frame-ms", type=argtypes.positive_int, default=120,
                        help="GIF frame duration in milliseconds (default: 120)")
    parser.add_argument("--out", type=argtypes.output_folder, required=True, metavar="DIR",
                        help="output folder (interpolation.png, interpolation.gif, interpolate.json)")
    options.add_device(parser)
    options.add_speed(parser)
    options.add_progress(parser)
    parser.set_defaults(parser=parser, run=run)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Carry the command out; returns the exit status."""
    import torch

    from ..interpolation import interpolate
    from ..loading import load_model
    from ..reports import save_gif, save_grid

    device, runtime = options.resolve_runtime_args(args)
    model = load_model(args.checkpoint, device=device)
    folder = model.origin.source
    classes = options.class_labels(args, model, model.origin.describe())
    # no --class: pair i draws image 2i's class in turn (one policy: ddim.classes.labels_for)
    labels = labels_for(model.class_names, classes, 2 * args.pairs)
    done = options.progress_factory(args.progress)(f"interpolating {args.pairs} x {args.frames} frames",
                                                   args.pairs * args.frames)
    rows = []
    for pair in range(args.pairs):
        rows.append(interpolate(model, seed=args.seed, start_index=2 * pair, end_index=2 * pair + 1,
                                frames=args.frames, steps=args.steps, device=device, runtime=runtime,
                                label=None if labels is None else labels[2 * pair], guidance=args.guidance))
        done(args.frames)
    strip = torch.cat(rows)  # (pairs * frames, 3, S, S), row by row
    out = Path(args.out)
    save_grid(strip, out / "interpolation.png", columns=args.frames)
    frames = torch.stack(rows, dim=1)  # (frames, pairs, 3, S, S): one GIF frame shows every pair
    save_gif(frames, out / "interpolation.gif", duration_ms=args.frame_ms)
    settings = {"command": "interpolate", "checkpoint": str(folder), "seed": args.seed, "pairs": args.pairs,
                "frames": args.frames, "steps": args.steps, "sampler": "ddim", "eta": 0.0,
                "frame_ms": args.frame_ms, "speed": runtime.describe(),
                **({"class": model.class_names[classes[0]] if classes else "in turn: pair i draws class 2i mod "
                    f"{len(model.class_names)}", "guidance": args.guidance} if model.class_names else {}),
                "rows": [f"images {2 * pair} -> {2 * pair + 1}" for pair in range(args.pairs)],
                "files": ["interpolation.png", "interpolation.gif"]}
    options.write_json(settings, out / "interpolate.json")
    print(f"wrote interpolation.png ({args.pairs} x {args.frames}), interpolation.gif and interpolate.json to {out} "
          f"(checkpoint {folder})")
    return 0
