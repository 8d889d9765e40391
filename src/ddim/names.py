"""The names the commands offer as choices, and the check of a sampler's options, in a module that imports no
PyTorch: ``ddim COMMAND --help`` builds its parser from these, and the modules that implement each name take it
from here."""

from __future__ import annotations

import math

#: The samplers (``--sampler``), in the order ``ddim.samplers.SAMPLERS`` holds them.
SAMPLER_NAMES = ("ddim", "ddpm", "dpmpp-2m", "heun")
#: The real sets to compare with (``--reference``): the validation images, the training images, or both.
REFERENCES = ("validation", "train", "all")
#: The Inception input sizes the commands offer: 75 px (the Keras example's per-epoch KID) and 299 px (the standard).
KID_SIZES = (75, 299)
#: The default built-in model (the demo's): ``--checkpoint pretrained``.
BUILTIN_NAME = "pretrained"


class SamplerOptionError(ValueError):
    """A sampler that does not exist, or an option the sampler does not take."""


def sampler_keywords(sampler: str, eta: float = 0.0) -> dict[str, float]:
    """The keyword options of ``sampler`` (for :data:`ddim.samplers.SAMPLERS`): DDIM's stochasticity ``eta``, which
    only ddim takes (every command, the API and the demo ask here)."""
    if sampler not in SAMPLER_NAMES:
        raise SamplerOptionError(f"sampler must be one of {', '.join(SAMPLER_NAMES)}, got {sampler!r}")
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not math.isfinite(eta) or eta < 0:
        raise SamplerOptionError(f"eta must be a finite number >= 0, got {eta!r}")
    if eta and sampler != "ddim":
        raise SamplerOptionError(f"eta applies to the ddim sampler only, not {sampler}")
    return {"eta": eta} if eta else {}
