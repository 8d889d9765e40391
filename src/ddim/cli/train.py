"""``ddim train``: train a model (the Keras example's recipe by default), or resume a run."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from ..config import ConfigError, RunConfig
from ..layout import RunLayout
from . import argtypes, config_options, options


def add_parser(commands: argparse._SubParsersAction, help_text: str) -> None:
    """Register this command and its options."""
    parser = commands.add_parser("train", help=help_text,
                                 description="Train the Keras example's DDIM on a folder of images. Every default is "
                                 "the Keras example's; every value is checked before any work starts.")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="folder for config, samples, history and checkpoints (default: runs/<date-time>)")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its latest checkpoint")
    parser.add_argument("--log-format", choices=("auto", "bar", "plain"), default="auto",
                        help="bar: a live progress bar and a line per epoch; plain: one line per epoch (losses, KID, "
                        "images/s, time left) and no carriage returns, for log files; auto: bar on a terminal, "
                        "plain otherwise (default: auto)")
    argtypes.add_switch(parser, "--progress", default=True,
                       help="a progress bar (no: the same as --log-format plain)")
    argtypes.add_switch(parser, "--tensorboard", default=True, help="write TensorBoard event files to RUN_DIR/tensorboard")
    config_options.add_config_options(parser)
    parser.set_defaults(parser=parser, run=run)


def _resumed_config(parser: argparse.ArgumentParser, args: argparse.Namespace, run_dir: Path) -> RunConfig:
    """The saved config of the run being resumed, with the options given now applied (model ones must agree)."""
    for given in ("config", "recipe"):
        if getattr(args, given) is not None:
            parser.error(f"--{given} and --resume cannot be combined: a resumed run keeps its own "
                         f"{RunLayout(run_dir).config} (give the options to change on the command line)")
    from ..training.resume import saved_config

    base = saved_config(run_dir)
    for (section, name), value in config_options.given_options(args).items():
        if section == "model" and getattr(base.model, name) != value:
            option = config_options.CONFIG_OPTIONS[(section, name)][0]
            parser.error(f"{option} {value} disagrees with the run being resumed ({getattr(base.model, name)}); "
                         "the model of a run cannot change")
    return base


def log_style(args: argparse.Namespace) -> str:
    """``bar`` or ``plain``: --no-progress and a standard error that is not a terminal mean plain lines."""
    if not args.progress or args.log_format == "plain":
        return "plain"
    return "bar" if args.log_format == "bar" or sys.stderr.isatty() else "plain"


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Carry the command out; returns the exit status."""
    from ..runtime import DeviceError
    from ..training import default_callbacks, fit

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
        config = config_options.config_from_args(args, base)
    except ConfigError as error:
        config_options.config_error(parser, error)
    style = log_style(args)
    try:
        fit(config, run_dir, resume=resume,
            callbacks=default_callbacks(tensorboard=args.tensorboard, log_style=style),
            progress=options.progress_factory(style == "bar"))
    except DeviceError as error:  # the device is resolved first, before any work: a usage error
        parser.error(str(error))
    return 0
