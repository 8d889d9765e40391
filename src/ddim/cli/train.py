"""``ddim train``: train a model (the seed's recipe by default), or resume a run."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from ..config import ConfigError, RunConfig
from . import options


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register this command and its options."""
    parser = commands.add_parser("train", help="train a model (the seed's recipe by default)",
                                 description="Train the seed's DDIM on a folder of images. Every default is "
                                 "the seed's; every value is checked before any work starts.")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="folder for config, samples, history and checkpoints (default: runs/<date-time>)")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its latest checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or per-epoch lines")
    options.add_config_options(parser)
    parser.set_defaults(parser=parser, run=run)


def _resumed_config(parser: argparse.ArgumentParser, args: argparse.Namespace, run_dir: Path) -> RunConfig:
    """The saved config of the run being resumed, with the options given now applied (model ones must agree)."""
    from ..checkpoint import CheckpointError

    saved = run_dir / "config.json"
    if not saved.is_file():
        raise CheckpointError(f"--resume {run_dir}: no config.json there, so it is not a ddim run folder")
    try:
        base = RunConfig.load(saved)
    except (ValueError, ConfigError, TypeError) as error:
        raise CheckpointError(f"--resume {run_dir}: {saved} is not a valid ddim configuration: {error}") from error
    for (section, name), value in options.given_options(args).items():
        if section == "model" and getattr(base.model, name) != value:
            option = options.CONFIG_OPTIONS[(section, name)][0]
            parser.error(f"{option} {value} disagrees with the run being resumed ({getattr(base.model, name)}); "
                         "the model of a run cannot change")
    return base


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Carry the command out; returns the exit status."""
    from .. import distributed as dist
    from ..callbacks import HistoryWriter, ProgressBar, SampleGrid
    from ..data import load_splits
    from ..train import TrainingError, fit, prepare_run_dir, resolve_device, train_speed

    resume = args.resume is not None
    if resume:
        if args.run_dir is not None and Path(args.run_dir) != Path(args.resume):
            parser.error("--resume RUN_DIR continues that run in place; do not also give a different --run-dir")
        run_dir = Path(args.resume)
        base = _resumed_config(parser, args, run_dir)
    else:
        base = None
        run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        config = options.config_from_args(args, base)
    except ConfigError as error:
        options.config_error(parser, error)
    group = dist.from_environment()  # torchrun: one process per GPU (or CPU worker)
    try:
        speed = train_speed(config, group.local_rank)
    except TrainingError as error:
        parser.error(str(error))
    if config.train.batch_size % group.world_size:
        parser.error(f"--batch-size {config.train.batch_size} is the global batch and must be divisible by the "
                     f"{group.world_size} processes")
    try:
        prepare_run_dir(run_dir, resume, group)
        extractor = None
        if config.train.kid_every:  # fail on missing Inception weights now, not after the first epoch
            from ..metrics.inception import load_inception

            extractor = load_inception(config.train.inception_weights, config.train.kid_image_size, speed.device)
        show = not args.no_progress and group.is_main
        if not group.is_main:
            group.barrier()  # rank 0 decodes and caches the images first; the others then read the cache
        splits = load_splits(config.data, config.model.image_size, skip_unreadable=config.data.skip_unreadable,
                             progress=options.progress_factory(show))
        if group.is_main:
            group.barrier()
        if splits.skipped and group.is_main:
            print(f"ddim: skipped {len(splits.skipped)} unreadable images, e.g. {splits.skipped[0]}", file=sys.stderr)
        callbacks = [ProgressBar(enabled=show), SampleGrid(run_dir, config, speed), HistoryWriter(run_dir)]
        if show:
            processes = f" x {group.world_size} processes" if group.enabled else ""
            print(f"ddim: training on {len(splits.train)} images ({len(splits.validation)} for validation) from "
                  f"{splits.folder}; run folder {run_dir}; {speed.describe()} on {speed.device}{processes}",
                  file=sys.stderr)
        fit(config, run_dir, splits=splits, callbacks=callbacks, resume=resume, kid_extractor=extractor)
    finally:
        dist.shutdown()
    return 0
