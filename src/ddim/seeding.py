"""Deriving independent seeds from a run seed, so every random stream is explicit and reproducible."""

from __future__ import annotations

import numpy as np
import torch


def mix_seed(*words: int) -> int:
    """A 63-bit seed from integers (NumPy's SeedSequence mixing): ``mix_seed(seed, purpose, index)``."""
    state = np.random.SeedSequence([int(w) for w in words]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def generator(*words: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded with :func:`mix_seed` of ``words``."""
    return torch.Generator(device=device).manual_seed(mix_seed(*words))


# Purposes, so that streams derived from one run seed never coincide.
DATA_ORDER = 1
TRAINING_NOISE = 2
VALIDATION_NOISE = 3
PLOT_NOISE = 4
EVALUATION = 5
AUGMENTATION = 6
