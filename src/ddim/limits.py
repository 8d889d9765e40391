"""Every bound on a number a user asks for, in one table: the command line, the API and the web demo check
against these (a page's own smaller sizes are the demo's)."""

from __future__ import annotations

import math
import os

MAX_SAMPLING_STEPS = 10_000  #: sampling (and inversion) steps: no sampler gains past this, and its time grid would grow
MAX_IMAGES = 1_000_000  #: images one command may generate (KID/FID keep 8 KiB of features each)
MAX_SEED = 2**63 - 1  #: seeds are 63-bit
MAX_GUIDANCE = 20.0  #: classifier-free guidance weight; far past the useful range (about 1 to 4)
MAX_FRAMES = 240  #: frames of one interpolation (a GIF of 30 s at 120 ms a frame)
MAX_BATCH = MAX_IMAGES  #: images per batch (a larger batch is the whole request)
MAX_TRAIN_BATCH = 65_536  #: training batch (the Keras example's is 64)
MAX_IMAGE_SIZE = 512  #: pixels per side of a model's images (the Keras example's are 64)
MAX_WIDTH = 4096  #: channels of one U-Net level
MAX_LEVELS = 8  #: entries of --widths (a 512 px image halves 7 times to 4 px)
MAX_BLOCK_DEPTH = 16  #: residual blocks per level
MAX_EMBEDDING_DIMS = 4096  #: noise-embedding dimensions
MAX_PLOT_IMAGES = 1024  #: images of one sample grid
MAX_REPEATS = 10_000  #: passes over the data per epoch
MAX_PAIRS = 1024  #: pairs of one ddim interpolate
MAX_STUDY_POINTS = 64  #: evaluation budgets of one ddim study
MAX_BENCH_ROUNDS = 100  #: rounds of one ddim bench


class LimitError(ValueError):
    """A number outside its bounds (or not a number), with a message that names it and the bounds."""


def whole_number(value: object, name: str, low: int, high: int) -> int:
    """``value`` as an int in [low, high] (a whole float such as 16.0 or "16" counts: pages send those), or a
    :class:`LimitError` naming ``name``; booleans are refused, not read as 0 and 1."""
    if isinstance(value, bool):
        raise LimitError(f"{name} must be a whole number, got {value!r}")
    if isinstance(value, int):
        whole = value  # an int keeps all its digits
    else:
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            raise LimitError(f"{name} must be a whole number, got {shorten(value)}") from None
        if not math.isfinite(number) or number != int(number):
            raise LimitError(f"{name} must be a whole number, got {shorten(value)}")
        whole = int(number)
    if not low <= whole <= high:
        raise LimitError(f"{name} must be between {low:,} and {high:,}, got {shorten(whole)}")
    return whole


def real_number(value: object, name: str, low: float, high: float) -> float:
    """``value`` as a finite float in [low, high], or a :class:`LimitError` naming ``name`` (NaN and booleans are
    refused, not passed on)."""
    if isinstance(value, bool):
        raise LimitError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise LimitError(f"{name} must be a number, got {shorten(value)}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise LimitError(f"{name} must be a number from {low:g} to {high:g}, got {shorten(value)}")
    return number


def counted(number: int, noun: str) -> str:
    """``1 image``, ``2 images``, ``1,000 steps``: a count as every message writes it."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def shorten(value: object, width: int = 80) -> str:
    """``value`` (its repr; an int with thousands separators; a path as it is) for a message, cut to ``width``
    characters: a 100 MB value is not echoed back."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**30:
        text = f"{value:,}"
    else:
        text = str(value) if isinstance(value, os.PathLike) else repr(value)
    return text if len(text) <= width else f"{text[:width]}... ({len(text):,} characters)"
