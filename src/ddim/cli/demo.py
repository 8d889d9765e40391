"""``ddim demo``: a local web page to draw grids, interpolate and read the checkpoint's card (needs ddim[demo])."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..demo import DemoUnavailable, require_gradio
from ..names import BUILTIN_NAME
from . import argtypes, options


def add_parser(commands: argparse._SubParsersAction, help_text: str) -> None:
    """Register this command and its options."""
    parser = commands.add_parser("demo", help=help_text,
                                 description="Serve a web page (Gradio) on this machine that draws grids with any "
                                 "sampler, interpolates between two starting noises (PNG and GIF downloads) and "
                                 "shows the checkpoint's card. Needs the optional extra: pip install \"ddim[demo]\".")
    parser.add_argument("--checkpoint", type=Path, default=Path(BUILTIN_NAME),
                        help=f"{options.CHECKPOINT_HELP} (default: {BUILTIN_NAME})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on; 0.0.0.0 opens the page to the network (default: 127.0.0.1)")
    parser.add_argument("--port", type=argtypes.int_between(1, 65535), default=7860,
                        help="port to serve on (default: 7860)")
    options.add_device(parser)
    parser.set_defaults(parser=parser, run=run)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Carry the command out; returns the exit status."""
    from ..api import load  # with the command, not its parser (no PyTorch for --help)
    from ..demo.server import PortUnavailable, demo_files, serve  # no Gradio import yet
    from ..integrity import CheckpointError

    with demo_files() as folder:  # before Gradio is imported: it fixes its temp folder then
        try:
            require_gradio()
        except DemoUnavailable as error:
            print(f"ddim demo: error: {error}", file=sys.stderr)
            return 1
        try:
            model = load(args.checkpoint, device=args.device)
        except CheckpointError as error:
            if str(args.checkpoint) != BUILTIN_NAME:
                raise
            raise CheckpointError(f"{error}; give a model with --checkpoint PATH") from error
        try:
            serve(model, folder, host=args.host, port=args.port)
        except PortUnavailable as error:
            print(f"ddim demo: error: {error}", file=sys.stderr)
            return 1
    return 0
