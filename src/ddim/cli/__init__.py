"""The ``ddim`` command: train, sample, evaluate, bench, interpolate, invert, study, export (``ddim CMD --help``)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import bench, demo, evaluate, export, interpolate, invert, recipes, sample, study, train

COMMANDS = (train, recipes, sample, evaluate, bench, interpolate, invert, study, export, demo)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from .. import __version__

    parser = argparse.ArgumentParser(prog="ddim", description="Train denoising diffusion implicit models and "
                                     "generate images (a PyTorch port of the Keras DDIM example).",
                                     epilog="Run 'ddim COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"ddim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def _plain_data_warnings(command: str) -> None:
    """Show a DataWarning (e.g. upscaled images) as one ``ddim CMD: warning: ...`` line, not Python's format."""
    import warnings

    from ..data import DataWarning

    python_format = getattr(warnings.formatwarning, "python_format", warnings.formatwarning)

    def show(message, category, filename, lineno, line=None) -> str:
        if issubclass(category, DataWarning):
            return f"ddim {command}: warning: {message}\n"
        return python_format(message, category, filename, lineno, line)

    show.python_format = python_format  # type: ignore[attr-defined]
    warnings.formatwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ddim`` command; returns the exit status."""
    from ..checkpoint import CheckpointError
    from ..classes import ClassError
    from ..data import DataError
    from ..data.dataset import default_cache_dir
    from ..files import WriteError
    from ..metrics.inception import InceptionError
    from ..speed import DeviceError, use_compile_cache
    from ..training_run import TrainingError, TrainingInterrupted

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare ``ddim``: the list of commands, on standard output
        parser.print_help(sys.stdout)
        return 0
    import warnings

    previous_format = warnings.formatwarning  # restored on return: main() may be called in-process (tests, scripts)
    _plain_data_warnings(args.command)
    use_compile_cache(default_cache_dir())  # process-wide: torch.compile's caches in ddim's cache folder
    try:
        return args.run(args.parser, args)
    except ClassError as error:  # a class the model does not know: a usage error, like a bad option value
        print(f"ddim {args.command}: error: {error}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:
        print(f"ddim {args.command}: {stop}", file=sys.stderr)
        return stop.exit_code
    except (DataError, CheckpointError, TrainingError, InceptionError, DeviceError, WriteError) as error:
        print(f"ddim {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ddim {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = previous_format
