"""Exponential moving average of a network, the Keras example's rule applied to every weight and statistic.

Three decay rules: the Keras example's constant decay; a warm-up ``min(decay, (1 + t) / (10 + t))``; and EDM2's
power-function EMA (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models",
section 3.1 and appendix C): :math:`\\beta_\\gamma(t) = (1 - 1/t)^{\\gamma + 1}`, which averages the weights of the
whole run so far with weights proportional to :math:`\\tau^\\gamma`, so the initial weights get none and the
average's width is a fixed fraction :math:`\\sigma_{rel}` of the run's length whatever that length is.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn


def _floating_state(module: nn.Module) -> list[torch.Tensor]:
    """Parameters and floating-point buffers (BatchNorm statistics), in a fixed order."""
    return [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]


@torch.no_grad()
def update_ema(ema_network: nn.Module, network: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * weights, for all parameters *and* BatchNorm statistics.

    This is the Keras example's rule from the very first step (the Keras example loops over
    ``network.weights``, which include the moving mean and variance). ``torch.optim.swa_utils.
    AveragedModel`` differs: its first update copies the weights instead of averaging them.
    Integer buffers (BatchNorm's step counter) are copied.
    """
    ema_tensors, tensors = _floating_state(ema_network), _floating_state(network)
    if len(ema_tensors) != len(tensors):
        raise ValueError("EMA and network have different structures")
    torch._foreach_lerp_(ema_tensors, tensors, 1.0 - decay)
    for ema_buffer, buffer in zip(ema_network.buffers(), network.buffers()):
        if not buffer.is_floating_point():
            ema_buffer.copy_(buffer)


@lru_cache(maxsize=8)
def power_exponent(relative_std: float) -> float:
    """EDM2's :math:`\\gamma` for a relative standard deviation :math:`\\sigma_{rel}` (their eq. 3 solved for
    :math:`\\gamma`: the largest real root of :math:`\\gamma^3 + 7\\gamma^2 + (16 - \\sigma_{rel}^{-2})\\gamma +
    12 - \\sigma_{rel}^{-2}`)."""
    inverse_variance = relative_std ** -2
    roots = np.roots([1.0, 7.0, 16.0 - inverse_variance, 12.0 - inverse_variance])
    return float(roots.real[abs(roots.imag) < 1e-9].max())


def power_relative_std(exponent: float) -> float:
    """The relative standard deviation of a power-function EMA of exponent :math:`\\gamma` (EDM2's eq. 3)."""
    return float(np.sqrt((exponent + 1) / ((exponent + 2) ** 2 * (exponent + 3))))


def ema_decay(decay: float, step: int, warmup: bool, relative_std: float | None = None) -> float:
    """The decay for update number ``step`` (1-based): with ``relative_std`` EDM2's power function
    (1 - 1/step)^(gamma + 1); else constant (the Keras example's) or, with ``warmup``,
    min(decay, (1 + step) / (10 + step)) so that short runs are not dominated by the initial weights."""
    if relative_std is not None:
        return (1.0 - 1.0 / step) ** (power_exponent(relative_std) + 1.0)
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


#: An EMA that still holds this share of its initial weights draws noise: about 3 / (1 - decay) steps forget it.
YOUNG_SHARE = 0.05


def young_ema_note(decay: float, steps: int, warmup: bool, relative_std: float | None = None) -> str | None:
    """What a user must know about an EMA after ``steps`` updates that still holds :data:`YOUNG_SHARE` or more of
    its initial (random) weights (None when it does not): its samples look like noise, and how to avoid it."""
    share = initial_share(decay, steps, warmup, relative_std)
    if share < YOUNG_SHARE:
        return None
    return (f"after {steps} steps the EMA network (--ema {decay}) still holds {share:.0%} of its initial weights, "
            "so its samples look like noise; train longer, or train short runs with --ema-std 0.1 (EDM2's power "
            "EMA, as in --recipe improved) or --ema-warmup yes")


def initial_share(decay: float, steps: int, warmup: bool, relative_std: float | None = None) -> float:
    """How much of the EMA is still its initial copy after ``steps`` updates: decay**steps (with the warm-up
    the product of its decays, which is negligible after a few steps; with the power function exactly 0)."""
    return 0.0 if warmup or relative_std is not None else decay ** steps
