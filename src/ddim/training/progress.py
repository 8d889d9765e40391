"""Where a training run stands: everything that changes as it trains, all of it in every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..checkpoint import TrainState
from ..seeding import TRAINING_NOISE, generator
from .setup import TrainingSetup
from .step import LOSS_NAMES


@dataclass
class TrainProgress:
    """The step, history and best KID (:class:`~ddim.checkpoint.TrainState`), the training noise generator, this
    epoch's loss sums and timing so far, and a device flag set when a loss is not finite."""

    state: TrainState
    noise_generator: torch.Generator
    epoch_totals: torch.Tensor  # sums of this epoch's losses so far (checkpointed, for an exact resume)
    epoch_seconds: float = 0.0  # how long this epoch's timed steps took, across resumes (checkpointed)
    epoch_timed_steps: int = 0  # how many of this epoch's steps that covers (all of them since ddim 0.3)
    nonfinite: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.bool))  # read at log/save

    @classmethod
    def start(cls, setup: TrainingSetup) -> "TrainProgress":
        """A run at step 0: this rank's noise generator from the run seed, nothing measured yet."""
        device = setup.session.runtime.device
        return cls(state=TrainState(),
                   noise_generator=generator(setup.config.train.seed, TRAINING_NOISE, setup.session.distributed.rank,
                                             device=device),
                   epoch_totals=torch.zeros(len(LOSS_NAMES), dtype=torch.float64, device=device),
                   nonfinite=torch.zeros((), dtype=torch.bool, device=device))
