"""``ddim sample``: N images and a grid from a checkpoint.

The output folder holds the samples (``image_00000.png`` ... or one ``samples.npz``), ``grid.png`` (the
first images side by side) and ``sample.json`` (the settings). ``ddim evaluate --generated DIR`` leaves files
named ``grid*.png`` out, so the folder can be evaluated as it is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..classes import labels_for
from ..files import FolderLock, FolderLocked, atomic_path, locked_folder, remove_stale_temporaries
from ..limits import MAX_IMAGES, counted
from . import argtypes, options

GRID_IMAGES = 256  # the grid shows the first images, at most this many
GRID_FILE = "grid.png"
NPZ_FILE = "samples.npz"
SETTINGS_FILE = "sample.json"
FORMATS = ("png", "npz")
WRITTEN = ("image_[0-9]*.png", GRID_FILE, NPZ_FILE, SETTINGS_FILE)  # what --overwrite replaces


def add_parser(commands: argparse._SubParsersAction, help_text: str) -> None:
    """Register this command and its options."""
    parser = commands.add_parser("sample", help=help_text,
                                 description="Generate N images with the EMA network into a new or empty folder: "
                                 f"one PNG per image (image_00000.png, ...) or one {NPZ_FILE}, plus {GRID_FILE} "
                                 f"(the first {GRID_IMAGES} images; ddim evaluate --generated leaves grid*.png out) "
                                 f"and {SETTINGS_FILE} (the settings). Image k of seed s is the same whatever the "
                                 "batch size.")
    options.add_checkpoint(parser)
    parser.add_argument("--num", type=argtypes.image_count, default=16,
                        help="number of images, per class when --class is given (default: 16)")
    options.add_sampler(parser)
    options.add_classes(parser, several=True)
    parser.add_argument("--seed", type=argtypes.seed, default=0, help="generation seed (default: 0)")
    parser.add_argument("--out", type=argtypes.output_folder, required=True, metavar="DIR",
                        help="output folder: new or empty, unless --overwrite is given")
    argtypes.add_switch(parser, "--overwrite", default=False,
                        help="write into a non-empty --out, first removing what an earlier ddim sample wrote there "
                        f"(image_*.png, {GRID_FILE}, {NPZ_FILE}, {SETTINGS_FILE}); other files are kept")
    parser.add_argument("--format", choices=FORMATS, default="png",
                        help=f"png: one file per image; npz: one {NPZ_FILE} holding a uint8 'images' array "
                        "(N, H, W, 3), kept in memory until written (12 KiB per 64 px image) (default: png)")
    parser.add_argument("--batch-size", type=argtypes.positive_int, default=256, help="images per batch (default: 256)")
    options.add_device(parser)
    options.add_speed(parser)
    options.add_progress(parser)
    parser.set_defaults(parser=parser, run=run)


def _previous_outputs(out: Path) -> list[Path]:
    """The files an earlier ``ddim sample`` wrote in ``out``."""
    return sorted({path for pattern in WRITTEN for path in out.glob(pattern) if path.is_file()})


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Carry the command out; returns the exit status."""
    out = Path(args.out)
    try:
        with locked_folder(out, "--out") as out:  # two ddim sample --out SAME at once would mix their images
            return _run(parser, args, out)
    except FolderLocked as error:
        print(f"ddim sample: error: {error}", file=sys.stderr)
        return 1


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, out: Path) -> int:
    import numpy as np
    import torch

    from ..data.generated import is_grid
    from ..data.images import list_images
    from ..ema import young_ema_note
    from ..loading import load_model
    from ..model import generate_images
    from ..reports import save_grid, save_images, to_uint8

    remove_stale_temporaries(out)  # what a killed earlier sample was writing
    if any(path.name != FolderLock.NAME for path in out.iterdir()) and not args.overwrite:
        parser.error(f"--out {out} is not empty; choose a new or empty folder, or give --overwrite to replace the "
                     "samples there")
    sampler_options = options.sampler_options(parser, args)
    device, runtime = options.resolve_runtime_args(args)
    model = load_model(args.checkpoint, device=device)
    config, folder = model.origin.config, model.origin.source
    classes = options.class_labels(args, model, model.origin.describe())
    train = config.train
    young = None if model.origin.step is None else young_ema_note(train.ema, model.origin.step, train.ema_warmup,
                                                                   train.ema_std)
    if young:
        print(f"ddim sample: warning: {model.origin.describe()}: {young}", file=sys.stderr)
    jobs = image_jobs(args.num, classes, model.class_names)  # (image index of the seed, class) per output
    total = len(jobs)
    if total > MAX_IMAGES:
        parser.error(f"--num {args.num} x {len(classes or [])} classes = {total} images, more than {MAX_IMAGES}")
    for path in _previous_outputs(out) if out.is_dir() else []:  # only once the checkpoint has loaded
        path.unlink()
    if out.is_dir():
        others = [path for path in list_images(out) if not is_grid(path)]
        if others:
            print(f"ddim sample: warning: {out} also holds {len(others)} other image file(s) (e.g. {others[0].name}); "
                  "ddim evaluate --generated would read them with the samples", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    npz = args.format == "npz"
    size = config.model.image_size
    collected = np.empty((total, size, size, 3), dtype=np.uint8) if npz else None  # uint8: 3 bytes a pixel
    progress = options.progress_factory(args.progress)(
        f"sampling {counted(total, 'image')} ({args.sampler}, {counted(args.steps, 'step')})", total)
    shown = []  # the grid shows the first GRID_IMAGES; the rest is written (or packed as uint8) batch by batch
    for start in range(0, total, args.batch_size):
        batch = jobs[start:start + args.batch_size]
        labels = [label for _, label in batch] if model.class_names else None
        images = generate_images(model, seed=args.seed, indices=[index for index, _ in batch], steps=args.steps,
                                 batch_size=args.batch_size, sampler=args.sampler, device=device, runtime=runtime,
                                 progress=progress, labels=labels, guidance=args.guidance, **sampler_options)
        if collected is not None:
            collected[start:start + len(images)] = to_uint8(images).permute(0, 2, 3, 1).numpy()
        else:
            save_images(images, out, start=start)
        shown.append(images[:max(0, GRID_IMAGES - start)])
    if collected is not None:
        extra = {"labels": np.asarray([label for _, label in jobs], dtype=np.int64)} if model.class_names else {}
        with atomic_path(out / NPZ_FILE) as temporary, open(temporary, "wb") as handle:
            np.savez(handle, images=collected, **extra)
    grid = torch.cat(shown)
    if classes:  # one labelled row per class (the rows that fit in the grid)
        rows = min(len(classes), max(1, GRID_IMAGES // args.num))
        save_grid(grid[:rows * args.num], out / GRID_FILE, columns=args.num,
                  row_labels=[model.class_names[c] for c in classes[:rows]])
    else:
        save_grid(grid, out / GRID_FILE)
    written = NPZ_FILE if npz else f"image_00000.png ... image_{total - 1:05d}.png"
    settings = {"command": "sample", "checkpoint": str(folder), "num": args.num, "steps": args.steps,
                "seed": args.seed, "sampler": args.sampler, "eta": args.eta, "format": args.format,
                "batch_size": args.batch_size, "image_size": size, "speed": runtime.describe(), "images": written,
                "grid": f"{GRID_FILE} (the first {min(total, GRID_IMAGES)} images; not a sample)"}
    if model.class_names:
        settings.update(guidance=args.guidance, classes=[
            {"class": model.class_names[c], "index": c, "images": f"{k * args.num} .. {(k + 1) * args.num - 1}"}
            for k, c in enumerate(classes)] if classes else "in turn: image k has class k mod "
            f"{len(model.class_names)}", class_names=list(model.class_names))
    options.write_json(settings, out / SETTINGS_FILE)
    print(f"wrote {total} images ({written}), {GRID_FILE} and {SETTINGS_FILE} to {out} "
          f"({args.sampler}, {args.steps} steps; checkpoint {folder})")
    return 0


def image_jobs(num: int, classes: list[int] | None, class_names: tuple[str, ...]) -> list[tuple[int, int | None]]:
    """(image index of the seed, class) of every output image: ``num`` per asked class (the same noises in every
    class), or images 0 .. num - 1 with no class asked (:func:`ddim.classes.labels_for`: the classes in turn)."""
    if classes:
        return [(index, label) for label in classes for index in range(num)]
    return list(zip(range(num), labels_for(class_names, None, num) or [None] * num))
