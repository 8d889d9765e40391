"""The trained system: the network, its EMA copy and the normaliser, and generating images with them."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from .classes import require_conditional
from .config import ModelConfig, RunConfig
from .diffusion import Denoiser, Schedule, make_denoiser
from .layout import CheckpointLayout
from .network import UNet
from .normalizer import Normalizer
from .samplers import SAMPLERS, StepCallback, initial_noise
from .runtime import Runtime


@dataclass(frozen=True)
class ModelOrigin:
    """Where a loaded model comes from: the run's configuration, the checkpoint folder or file, the weights'
    metadata (an exported file's step, epoch and KID), and the built-in model's name if it is one."""

    config: RunConfig
    source: Path
    metadata: Mapping[str, str] = field(default_factory=dict)
    builtin: str | None = None

    @property
    def step(self) -> int | None:
        """The training step the weights come from, where it is known (an exported file's metadata, a step_*
        checkpoint folder's name); None for a ``best`` folder or a file without it."""
        if "step" in self.metadata and str(self.metadata["step"]).isdigit():
            return int(self.metadata["step"])
        return CheckpointLayout(self.source).step if self.source.is_dir() else None

    def describe(self) -> str:
        """``checkpoint runs/a/checkpoints/step_000000511`` or ``built-in model pretrained``."""
        return f"built-in model {self.builtin}" if self.builtin else f"checkpoint {self.source}"


class DiffusionModel(nn.Module):
    """``network`` (trained), ``ema_network`` (its moving average, used for all sampling) and ``normalizer``;
    ``origin`` says where a loaded model comes from (None for a model built in this process).

    The EMA network always stays in eval mode: BatchNorm uses its (averaged) moving statistics.
    """

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        self.origin: ModelOrigin | None = None
        self.network = UNet(config)
        self.ema_network = copy.deepcopy(self.network).eval().requires_grad_(False)
        self.normalizer = Normalizer()
        self._compiled: dict[tuple[str, str], Callable] = {}  # (network, compile mode) -> compiled network

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_compiled"] = {}  # compiled code is never copied, pickled or saved
        return state

    def train(self, mode: bool = True) -> "DiffusionModel":
        """Switch the trained network's mode; the EMA network stays in eval mode."""
        super().train(mode)
        self.ema_network.eval()
        return self

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes a conditional model can draw, by index; ``()`` for an unconditional model."""
        return self.config.class_names

    @property
    def run_config(self) -> RunConfig:
        """The run configuration it was trained with (a model built here: its model configuration, defaults else)."""
        return self.origin.config if self.origin is not None else RunConfig(model=self.config)

    @property
    def schedule(self) -> Schedule:
        """The noise schedule the model was trained with."""
        return Schedule(self.config.min_signal_rate, self.config.max_signal_rate)

    def denoiser(self, ema: bool = True, runtime: Runtime | None = None, labels: torch.Tensor | None = None,
                 guidance: float = 1.0) -> Denoiser:
        """``(noisy_images, noise_rates, signal_rates) -> (pred_noises, pred_images)`` in normalised space,
        with the network run at ``runtime`` (default: eager fp32); ``labels`` (B,) and ``guidance`` steer a
        conditional network (classifier-free guidance)."""
        network = self.ema_network if ema else self.network
        if labels is not None:
            require_conditional(self.class_names)
        if runtime is None:
            return make_denoiser(network, self.config.prediction, labels=labels, guidance=guidance)
        if runtime.compile_mode is not None:  # compiled once per network and mode, kept with the model
            key = ("ema_network" if ema else "network", runtime.compile_mode)
            if key not in self._compiled:
                self._compiled[key] = runtime.compile(network)
            network = self._compiled[key]
        return make_denoiser(network, self.config.prediction, runtime.autocast, runtime.memory_format(), labels=labels,
                             guidance=guidance)

    @torch.no_grad()
    def generate(self, latents: torch.Tensor, *, steps: int, sampler: str = "ddim", runtime: Runtime | None = None,
                 callback: StepCallback | None = None, labels: torch.Tensor | Sequence[int] | None = None,
                 guidance: float = 1.0, **sampler_options) -> torch.Tensor:
        """Images in [0, 1], (B, 3, S, S), from starting noise ``latents`` with the EMA network; ``labels``
        (one class index per image) and ``guidance`` for a conditional model.

        Does not change any module's train/eval mode: the EMA network is always in eval mode.
        """
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.long, device=latents.device)
        denoiser = self.denoiser(ema=True, runtime=runtime, labels=labels, guidance=guidance)
        images = SAMPLERS[sampler](denoiser, latents, steps=steps, schedule=self.schedule, callback=callback,
                                   **sampler_options)
        return self.normalizer.denormalize(images)


@torch.no_grad()
def generate_images(model: DiffusionModel, *, seed: int, indices: Sequence[int], steps: int,
                    batch_size: int = 256, sampler: str = "ddim", device: torch.device | str = "cpu",
                    runtime: Runtime | None = None, progress: Callable[[int], None] | None = None,
                    labels: Sequence[int] | None = None, guidance: float = 1.0, **sampler_options) -> torch.Tensor:
    """Images ``indices`` of ``seed`` as [0, 1] floats on the CPU, (N, 3, S, S), in batches; ``labels``: the class
    of each image (a conditional model), drawn with classifier-free ``guidance``.

    Image k of seed s starts from its own noise, so it is identical whatever ``batch_size`` is.
    """
    size = model.config.image_size
    if labels is not None and len(labels) != len(indices):
        raise ValueError(f"{len(labels)} labels for {len(indices)} images")
    chunks = []
    for start in range(0, len(indices), batch_size):
        batch_indices = list(indices[start:start + batch_size])
        latents, noise = initial_noise(seed, batch_indices, (3, size, size), device)
        batch_labels = None if labels is None else list(labels[start:start + batch_size])
        images = model.generate(latents, steps=steps, sampler=sampler, runtime=runtime, noise=noise, labels=batch_labels,
                                guidance=guidance, **sampler_options)
        chunks.append(images.float().cpu())
        if progress is not None:
            progress(len(batch_indices))
    return torch.cat(chunks) if chunks else torch.zeros(0, 3, size, size)
