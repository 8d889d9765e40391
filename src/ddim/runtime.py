"""Where and how the network runs: the device, and the runtime levers chosen once per run.

The levers are bf16 autocast, channels-last memory, torch.compile and the fused AdamW kernel, each an
explicit field of :class:`Runtime`. The same training and sampling code runs with every lever on or off
(nanoGPT's habit: a ``nullcontext`` instead of an ``if``); the straightforward eager fp32 port is
``Runtime.baseline(device)``. Weights, optimiser state and the EMA stay in fp32 (autocast keeps fp32
master weights). Process-wide settings (the compiler cache folders) are set once by the command
(:func:`use_compile_cache`), never as a side effect here.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

import torch

from .config import COMPILE_MODES, PRECISIONS


class DeviceError(ValueError):
    """A device that is not a device name, or one this machine does not have."""


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> the GPU when there is one, else the CPU; ``cuda`` under torchrun -> this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise DeviceError(f"--device {name!r} is not a device name (try cpu, cuda or cuda:1)") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name} was asked for, but no CUDA GPU is available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


@dataclass(frozen=True)
class Runtime:
    """Resolved runtime settings for one device."""

    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32
    channels_last: bool
    compile_mode: str | None  # None: eager
    fused_optimizer: bool = False  # AdamW's single-kernel implementation (same arithmetic, fewer launches)

    @classmethod
    def baseline(cls, device: torch.device | str) -> "Runtime":
        """The straightforward port: eager, fp32, contiguous (NCHW) tensors, the per-tensor AdamW."""
        return cls(torch.device(device), None, False, None, False)

    def autocast(self) -> ContextManager[Any]:
        """bf16 autocast on the device, or a context that does nothing."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def memory_format(self) -> torch.memory_format:
        """channels_last (NHWC in memory) or the default contiguous NCHW."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def compile(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``torch.compile(function)`` in the chosen mode, or the function itself."""
        if self.compile_mode is None:
            return function
        return torch.compile(function, mode=None if self.compile_mode == "default" else self.compile_mode)

    def describe(self) -> str:
        """A short human description, e.g. ``bf16, channels_last, compiled (reduce-overhead)``."""
        parts = ["bf16 autocast" if self.autocast_dtype is not None else "fp32",
                 "channels_last" if self.channels_last else "NCHW",
                 f"compiled ({self.compile_mode})" if self.compile_mode else "eager"]
        return ", ".join(parts)


def resolve_runtime(device: torch.device | str, precision: str = "auto", channels_last: bool = True,
                  compile_mode: str = "auto", fused_optimizer: bool = True) -> Runtime:
    """Runtime settings for ``device``: ``auto`` picks bf16 where the hardware has it (CUDA with bf16,
    CPUs with AVX512-BF16/AMX) and compiles on CUDA only (on a CPU, measured: no gain, a minute to compile)."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if compile_mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {compile_mode!r}")
    if precision == "auto":
        if device.type == "cuda":
            fast_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        else:
            fast_bf16 = device.type == "cpu" and cpu_has_fast_bf16()
        precision = "bf16" if fast_bf16 else "fp32"
    if compile_mode == "auto":
        compile_mode = "default" if device.type == "cuda" else "off"
    return Runtime(device, torch.bfloat16 if precision == "bf16" else None, channels_last,
                 None if compile_mode == "off" else compile_mode, fused_optimizer=fused_optimizer)


def use_compile_cache(cache_dir: str | os.PathLike[str]) -> None:
    """Keep torch.compile's caches (Inductor's FX-graph and kernel caches, Triton's binaries) in ddim's
    cache folder rather than /tmp, so a second run starts fast; variables a user set are left alone."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(os.fspath(cache_dir), "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(os.fspath(cache_dir), "triton"))
