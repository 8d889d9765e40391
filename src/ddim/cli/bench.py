"""``ddim bench``: training and sampling images/s, straightforward eager fp32 port vs optimised step."""

from __future__ import annotations

import argparse

from ..config import COMPILE_MODES, PRECISIONS, ConfigError, ModelConfig
from ..limits import MAX_BATCH, MAX_BENCH_ROUNDS, MAX_GUIDANCE, MAX_TRAIN_BATCH
from . import argtypes, config_options, options


def add_parser(commands: argparse._SubParsersAction, help_text: str) -> None:
    """Register this command and its options."""
    parser = commands.add_parser("bench", help=help_text,
                                 description="Measure training and DDIM sampling images/s of the straightforward "
                                 "eager fp32 step and of the optimised step, in the same run, and print a table. The "
                                 "training step is the training loop's, with a recipe's levers (--recipe) and a "
                                 "conditional model's labels (--conditional) when asked.")
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
    config_options.add_recipe_option(parser, "measure the training step of a named recipe")
    parser.add_argument("--guidance", type=argtypes.number_between(0.0, MAX_GUIDANCE), default=None,
                        metavar="G",
                        help="conditional models: the sampling measurement's guidance weight (default: 1, one "
                        "network pass per step; other than 0 and 1: two)")
    config_options.add_field_options(parser.add_argument_group("model options"), ModelConfig, "model",
                              ("image_size", "widths", "block_depth", "conditional"))
    options.add_json(parser, "the measurements")
    parser.set_defaults(parser=parser, run=run)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Carry the command out; returns the exit status."""
    from ..bench import format_table, run_benchmark
    from ..runtime import resolve_device, resolve_runtime

    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    try:
        config = config_options.config_from_args(args)  # the recipe's (or the defaults'), with the options given
    except ConfigError as error:
        config_options.config_error(parser, error)
    if args.guidance is not None and not config.model.conditional:
        parser.error(f"--guidance {args.guidance:g} steers a conditional model's sampling: add --conditional")
    device = resolve_device(args.device)
    sample_batch_size = args.sample_batch_size or (1024 if device.type == "cuda" else 64)
    optimised = resolve_runtime(device, args.precision, args.channels_last, args.compile)
    report = run_benchmark(config, optimised, batch_size=args.batch_size, sample_batch_size=sample_batch_size,
                           sample_steps=args.sample_steps, warmup=args.warmup, iterations=args.iterations,
                           rounds=args.rounds, sampling=args.sampling,
                           guidance=1.0 if args.guidance is None else args.guidance)
    print(format_table(report), file=options.human_output(args))
    if args.json_out:
        options.write_json({"command": "bench", **report}, args.json_out)
    return 0
