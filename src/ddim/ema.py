"""Exponential moving average of a network, the Keras example's rule applied to every weight and statistic."""

from __future__ import annotations

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


def ema_decay(decay: float, step: int, warmup: bool) -> float:
    """The decay for update number ``step`` (1-based): constant (the Keras example's) or, with ``warmup``,
    min(decay, (1 + step) / (10 + step)) so that short runs are not dominated by the initial weights."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


def initial_share(decay: float, steps: int, warmup: bool) -> float:
    """How much of the EMA is still its initial copy after ``steps`` updates: decay**steps (with the warm-up
    the product of its decays, which reaches 0 at the first step)."""
    return 0.0 if warmup else decay ** steps
