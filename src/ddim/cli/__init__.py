"""The ``ddim`` command: one module per subcommand (``ddim COMMAND --help``).

Only the module of the command being run is imported, and it imports its work (PyTorch) inside ``run``: its parser
is built from light modules (``ddim.config``, ``ddim.limits``, ``ddim.names``), so ``ddim``, ``ddim --version`` and
every ``ddim COMMAND --help`` answer at once, without loading PyTorch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Sequence

from .. import __version__
from .parser import UNRECOGNIZED, Parser

#: Every command and its one-line help, in the order ``ddim --help`` lists them; each is the module of that name.
COMMANDS = {
    "train": "train a model (the Keras example's recipe by default)",
    "recipes": "list the named training recipes and every value each changes",
    "sample": "generate images from a checkpoint",
    "evaluate": "KID and FID of a checkpoint against real images",
    "bench": "training and sampling speed: eager fp32 port vs optimised",
    "interpolate": "images along a spherical path between two noises",
    "invert": "invert real images to noise and back; error against steps",
    "study": "KID and FID against network evaluations for each sampler",
    "export": "write a checkpoint's EMA network as one compact file",
    "demo": "a local web page: grids, interpolation, the checkpoint's card",
}


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; the full parsers of ``commands`` (default: all), the others' names and help only."""
    parser = Parser(prog="ddim", description="Train denoising diffusion implicit models and "
                                     "generate images (a PyTorch port of the Keras DDIM example).",
                                     epilog="Run 'ddim COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"ddim {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, help_text in COMMANDS.items():
        if commands is None or name in commands:
            importlib.import_module(f"{__name__}.{name}").add_parser(subparsers, help_text)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first word that is not an option), if it is one."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if first in COMMANDS else None


def _plain_data_warnings(command: str) -> None:
    """Show a DataWarning (e.g. upscaled images) as one ``ddim CMD: warning: ...`` line, not Python's format."""
    from ..data import DataWarning  # with the command: it needs the data package anyway

    python_format = getattr(warnings.formatwarning, "python_format", warnings.formatwarning)

    def show(message, category, filename, lineno, line=None) -> str:
        if issubclass(category, DataWarning):
            return f"ddim {command}: warning: {message}\n"
        return python_format(message, category, filename, lineno, line)

    show.python_format = python_format  # type: ignore[attr-defined]
    warnings.formatwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ddim`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    parser = build_parser([command] if command else [])
    args, extras = parser.parse_known_args(argv)
    if extras:  # reported by the command's own parser, which knows its options ("did you mean")
        getattr(args, "parser", parser).error(UNRECOGNIZED + " ".join(extras))
    if args.command is None:  # bare ``ddim``: the list of commands, on standard output
        parser.print_help(sys.stdout)
        return 0
    from .errors import run_command  # the command's own errors, reported in one line (imports PyTorch)

    previous_format = warnings.formatwarning  # restored on return: main() may be called in-process (tests, scripts)
    _plain_data_warnings(args.command)
    try:
        return run_command(args)
    finally:
        warnings.formatwarning = previous_format
