"""The learning rate as a pure function of the step: warm-up, then constant, cosine or inverse-sqrt decay.

A pure function of the 1-based optimiser step (no scheduler state), so a resumed run continues on the same curve
and a run of N epochs is the first N epochs of a longer one wherever the curve does not depend on the run's length
(constant and inverse-sqrt). With ``lr`` the peak :math:`\\alpha_{ref}`, ``w`` the warm-up steps, ``d`` the decay
steps and ``f`` the floor (a fraction of ``lr``):

- warm-up (every schedule): :math:`\\alpha(t) = \\alpha_{ref} \\cdot t / w` for :math:`t < w`;
- constant: :math:`\\alpha_{ref}` (the Keras example's);
- cosine (Loshchilov & Hutter 2017): from :math:`\\alpha_{ref}` at :math:`t = w` down to :math:`f \\alpha_{ref}` at
  :math:`t = d`, then :math:`f \\alpha_{ref}`;
- inverse-sqrt (EDM2, Karras et al. 2024, eq. 16): :math:`\\alpha_{ref} / \\sqrt{\\max(t / d, 1)}`, never below
  :math:`f \\alpha_{ref}`.
"""

from __future__ import annotations

import math

from .config import TrainConfig


def decay_steps(train: TrainConfig, total_steps: int) -> int:
    """The step the decay refers to: ``lr_decay_steps``, else the run's last step (cosine) or the end of the warm-up
    (inverse-sqrt; at least 1)."""
    if train.lr_decay_steps is not None:
        return train.lr_decay_steps
    return total_steps if train.lr_schedule == "cosine" else max(train.lr_warmup_steps, 1)


def learning_rate(train: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of optimiser step ``step`` (1-based) of a run of ``total_steps`` steps."""
    peak, warmup = train.lr, train.lr_warmup_steps
    if step < warmup:
        return peak * step / warmup
    if train.lr_schedule == "constant":
        return peak
    floor, horizon = peak * train.lr_floor, decay_steps(train, total_steps)
    if train.lr_schedule == "cosine":
        if step >= horizon:
            return floor
        progress = (step - warmup) / max(horizon - warmup, 1)
        return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return max(floor, peak / math.sqrt(max(step / horizon, 1.0)))
