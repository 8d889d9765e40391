"""``ddim bench``: training and sampling images/s, straightforward eager fp32 port vs optimised step."""

from __future__ import annotations

import argparse

from ..bench import format_table, run_benchmark
from ..config import COMPILE_MODES, PRECISIONS, ConfigError, ModelConfig
from ..limits import MAX_BATCH, MAX_BENCH_ROUNDS, MAX_TRAIN_BATCH
from ..runtime import resolve_device, resolve_runtime
from . import argtypes, config_options, options


def add_parser(commands: argparse._SubParsersAction, help_text: str) -> None:
    """Register this command and its options."""
    parser = commands.add_parser("bench", help=help_text,
                                 description="Measure training and DDIM sampling images/s of the straightforward "
                                 "eager fp32 step and of the optimised step, in the same run, and print a table.")
    options.add_device(parser)
    parser.add_argument("--batch-size", type=argtypes.int_between(1, MAX_TRAIN_BATCH), default=64, help="training batch (default: 64)")
    parser.add_argument("--sample-batch-size", type=argtypes.int_between(1, MAX_BATCH), default=None,
                        help="sampling batch (default: 1024 on a GPU, 64 on a CPU)")
    parser.add_argument("--sample-steps", type=argtypes.sampling_steps, default=20, help="DDIM steps (default: 20)")
    argtypes.add_switch(parser, "--sampling", default=True, help="measure sampling too (no: training only)")
    parser.add_argument("--rounds", type=argtypes.int_between(1, MAX_BENCH_ROUNDS), default=3, help="alternating timed rounds (default: 3)")
    parser.add_argument("--iterations", type=argtypes.positive_int, default=3,
                        help="training steps per round (default: 3)")
    parser.add_argument("--warmup", type=argtypes.int_between(0, 10_000), default=2, help="untimed steps first (default: 2)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="optimised precision (default: auto)")
    argtypes.add_switch(parser, "--channels-last", default=True, help="optimised memory layout")
    parser.add_argument("--compile", choices=COMPILE_MODES, default="auto",
                        help="optimised torch.compile mode (default: auto = default on CUDA, off on CPU)")
    config_options.add_field_options(parser.add_argument_group("model options"), ModelConfig, "model",
                              ("image_size", "widths", "block_depth"))
    options.add_json(parser, "the measurements")
    parser.set_defaults(parser=parser, run=run)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Carry the command out; returns the exit status."""
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    try:
        model_config = config_options.config_from_args(args).model  # ModelConfig's defaults, with the options given
    except ConfigError as error:
        config_options.config_error(parser, error)
    device = resolve_device(args.device)
    sample_batch_size = args.sample_batch_size or (1024 if device.type == "cuda" else 64)
    optimised = resolve_runtime(device, args.precision, args.channels_last, args.compile)
    report = run_benchmark(model_config, optimised, batch_size=args.batch_size, sample_batch_size=sample_batch_size,
                           sample_steps=args.sample_steps, warmup=args.warmup, iterations=args.iterations,
                           rounds=args.rounds, sampling=args.sampling)
    print(format_table(report), file=options.human_output(args))
    if args.json_out:
        options.write_json({"command": "bench", **report}, args.json_out)
    return 0
