"""``ddim export``: a run's EMA network and normaliser as one compact safetensors file for sampling."""

from __future__ import annotations

import argparse

from . import argtypes, options


def add_parser(commands: argparse._SubParsersAction, help_text: str) -> None:
    """Register this command and its options."""
    parser = commands.add_parser("export", help=help_text,
                                 description="Write the EMA network (fp16 by default) and normaliser of a "
                                 "checkpoint to one safetensors file with its config, the step and epoch "
                                 "reached and a sha256 of the weights. Every command's --checkpoint accepts it.")
    options.add_checkpoint(parser)
    parser.add_argument("--out", type=argtypes.output_file, required=True, help="the file to write (.safetensors)")
    parser.add_argument("--dtype", choices=("fp16", "fp32"), default="fp16",
                        help="weight precision; fp16 halves the size (default: fp16)")
    parser.set_defaults(parser=parser, run=run)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Carry the command out; returns the exit status."""
    from ..checkpoint import load_training_state
    from ..export import export_model, training_info
    from ..integrity import CheckpointError
    from ..loading import load_model

    if args.out.suffix != ".safetensors":
        parser.error(f"--out {args.out}: the exported file's name must end in .safetensors")
    model = load_model(args.checkpoint)
    config, source = model.origin.config, model.origin.source
    info = {"source": str(source)}
    try:
        state = load_training_state(source)
    except CheckpointError:
        state = None  # an exported file or a checkpoint without training state: no step/epoch to record
    if state is not None:
        info.update(training_info(state))
    path = export_model(model, config, args.out, dtype=args.dtype, info=info)
    reached = f" (step {info['step']}, epoch {info['epoch']})" if "step" in info else ""
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, {args.dtype}) from {source}{reached}")
    return 0
