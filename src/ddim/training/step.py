"""One training step and the validation losses: the Keras example's ``train_step`` and ``test_step``.

The loss computation is a function of its random draws (noise and times are drawn first, from an
explicit generator), so it can be compiled; the same :class:`TrainStep` runs eager fp32 (the
straightforward port) or with bf16 autocast, channels-last tensors and torch.compile.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import RunConfig
from ..data import DeviceImages
from ..distributed import Distributed
from ..diffusion import add_noise, prediction_target, regression_loss, split_prediction
from ..ema import ema_decay, update_ema
from ..learning_rate import learning_rate
from ..model import DiffusionModel
from ..network import NO_CLASS
from ..seeding import VALIDATION_NOISE, generator
from ..runtime import Runtime

LOSS_NAMES = ("loss", "noise_loss", "image_loss")


def draw_noise(images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian noise like ``images`` and uniform diffusion times (B, 1, 1, 1), in that order."""
    noises = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    diffusion_times = torch.rand((images.shape[0], 1, 1, 1), generator=generator, device=images.device)
    return noises, diffusion_times


def drop_labels(labels: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """``labels`` with each replaced by :data:`NO_CLASS` with ``probability`` (classifier-free guidance's training:
    one network learns the conditional and the unconditional prediction)."""
    dropped = torch.rand(labels.shape, generator=generator, device=labels.device) < probability
    return torch.where(dropped, torch.full_like(labels, NO_CLASS), labels)


def diffusion_losses(model: DiffusionModel, images: torch.Tensor, noises: torch.Tensor,
                     diffusion_times: torch.Tensor, config: RunConfig, *, ema: bool = False,
                     network: nn.Module | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
    """``[loss, noise_loss, image_loss]`` for [0, 1] images noised to ``diffusion_times``.

    ``loss`` is what is optimised (the error on the network's prediction target); the noise and image
    losses are the errors on the implied noise and clean image (for the Keras example, loss == noise_loss).
    Everything outside the network is fp32, also under autocast. ``network`` overrides the model's
    trained network (e.g. its DistributedDataParallel wrapper); ``ema`` selects the EMA network. ``labels``: the
    images' classes (conditional models).
    """
    target_kind, kind = config.model.prediction, config.train.loss
    images = model.normalizer.normalize(images)
    noise_rates, signal_rates = model.schedule.rates(diffusion_times)
    noisy_images = add_noise(images, noises, noise_rates, signal_rates)
    if network is None:
        network = model.ema_network if ema else model.network
    output = (network(noisy_images, noise_rates**2) if labels is None
              else network(noisy_images, noise_rates**2, labels)).float()
    target = prediction_target(target_kind, images, noises, noise_rates, signal_rates)
    pred_noises, pred_images = split_prediction(target_kind, output, noisy_images, noise_rates, signal_rates)
    return torch.stack([regression_loss(kind, output, target), regression_loss(kind, pred_noises, noises),
                        regression_loss(kind, pred_images, images)])


def build_optimizer(model: DiffusionModel, config: RunConfig, runtime: Runtime) -> torch.optim.AdamW:
    """AdamW over the trained network's parameters (one fused kernel when ``runtime.fused_optimizer``).

    ``train.weight_decay`` is the Keras example's per-step decay (tensorflow-addons: ``w -= wd * w``);
    PyTorch's AdamW subtracts ``lr * weight_decay * w``, so it is given ``wd / lr``.
    """
    train = config.train
    return torch.optim.AdamW(model.network.parameters(), lr=train.lr, weight_decay=train.weight_decay / train.lr,
                             eps=train.adam_epsilon, fused=runtime.fused_optimizer or None)


def set_learning_rate(optimizer: torch.optim.Optimizer, config: RunConfig, step: int, total_steps: int) -> float:
    """Set the learning rate of optimiser step ``step`` (1-based) from the config's schedule, and the decoupled weight
    decay from the config (so a resumed run uses the config's values, not those its optimiser state recorded);
    returns the learning rate. PyTorch's AdamW decays by ``lr_t * weight_decay / lr`` per step: the Keras example's
    per-step decay, scaled by the schedule."""
    train = config.train
    rate = learning_rate(train, step, total_steps)
    for group in optimizer.param_groups:
        group["lr"] = rate
        group["weight_decay"] = train.weight_decay / train.lr
    return rate


class TrainStep:
    """``step(images, generator)``: one optimiser step and one EMA update; returns the detached losses.

    Losses stay on the device: reading them is the caller's choice (once per log interval). ``total_steps``: the
    run's length, which only a cosine learning-rate schedule without ``lr_decay_steps`` needs.
    """

    def __init__(self, model: DiffusionModel, optimizer: torch.optim.Optimizer, config: RunConfig,
                 runtime: Runtime, network: nn.Module | None = None, distributed: Distributed = Distributed(),
                 total_steps: int | None = None) -> None:
        self.model, self.optimizer, self.config, self.runtime = model, optimizer, config, runtime
        self.total_steps = total_steps if total_steps is not None else config.train.lr_decay_steps or 1
        self.network = network if network is not None else model.network  # e.g. a DDP wrapper
        self.distributed = distributed
        self.local_batchnorm = distributed.enabled and not any(
            isinstance(m, nn.SyncBatchNorm) for m in model.network.modules())
        self.losses = runtime.compile(self._losses)

    def _losses(self, images: torch.Tensor, noises: torch.Tensor, diffusion_times: torch.Tensor,
                labels: torch.Tensor | None) -> torch.Tensor:
        with self.runtime.autocast():
            return diffusion_losses(self.model, images, noises, diffusion_times, self.config, network=self.network,
                                    labels=labels)

    def _average_batchnorm_statistics(self) -> None:
        """Per-rank BatchNorm: average the running statistics over ranks, so every rank holds one model."""
        buffers = [b for m in self.model.network.modules() if isinstance(m, nn.BatchNorm2d)
                   for b in (m.running_mean, m.running_var)]
        flat = torch.cat([b.reshape(-1) for b in buffers])
        self.distributed.sum(flat).div_(self.distributed.world_size)
        offset = 0
        for buffer in buffers:
            buffer.copy_(flat[offset:offset + buffer.numel()].view_as(buffer))
            offset += buffer.numel()

    def __call__(self, images: torch.Tensor, generator: torch.Generator, step: int = 1,
                 labels: torch.Tensor | None = None) -> torch.Tensor:
        """Train on ``images`` (the ``step``-th update, 1-based, which sets a warming-up EMA's decay); ``labels``:
        their classes (a conditional model; some are dropped to "no class", drawn after the noise)."""
        self.model.network.train()
        noises, diffusion_times = draw_noise(images, generator)
        if labels is not None:
            labels = drop_labels(labels, self.config.train.class_dropout, generator)
        memory_format = self.runtime.memory_format()
        if self.runtime.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        losses = self.losses(images.contiguous(memory_format=memory_format),
                             noises.contiguous(memory_format=memory_format), diffusion_times, labels)
        self.optimizer.zero_grad(set_to_none=True)
        losses[0].backward()
        set_learning_rate(self.optimizer, self.config, step, self.total_steps)
        self.optimizer.step()
        if self.local_batchnorm:
            with torch.no_grad():
                self._average_batchnorm_statistics()
        train = self.config.train
        update_ema(self.model.ema_network, self.model.network,
                   ema_decay(train.ema, step, train.ema_warmup, train.ema_std))
        return losses.detach().clone()


@torch.no_grad()
def validation_losses(model: DiffusionModel, batches: DeviceImages, config: RunConfig, runtime: Runtime,
                      distributed: Distributed = Distributed()) -> dict[str, float]:
    """Mean losses of the EMA network over the validation images, with the same noise every epoch (a conditional
    model is given every image's class).

    Under data parallelism each rank takes every world_size-th batch and the sums are combined;
    each batch's noise comes from its own generator, so the result does not depend on the split.
    """
    device = batches.device
    totals = torch.zeros(len(LOSS_NAMES), dtype=torch.float64, device=device)
    batch_size = config.train.batch_size
    starts = range(0, batches.count, batch_size)
    for batch_index, start in list(enumerate(starts))[distributed.rank::distributed.world_size]:
        indices = torch.arange(start, min(start + batch_size, batches.count), device=device)
        images = batches.images(indices)
        noises, diffusion_times = draw_noise(images, generator(config.train.seed, VALIDATION_NOISE, batch_index,
                                                               device=device))
        with runtime.autocast():
            losses = diffusion_losses(model, images.contiguous(memory_format=runtime.memory_format()), noises,
                                      diffusion_times, config, ema=True, labels=batches.labels(indices))
        totals += losses.double() * len(indices)
    means = (distributed.sum(totals) / batches.count).tolist()
    return {f"val_{name}": value for name, value in zip(LOSS_NAMES, means)}
