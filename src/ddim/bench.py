"""``ddim bench``: training and sampling throughput, straightforward eager fp32 port vs the optimised path.

Both variants run in the same process on the same device, in alternating rounds (so a noisy shared
machine slows both alike), on synthetic images (throughput does not depend on pixel values). The
median round is reported. FLOPs come from PyTorch's own counter (``torch.utils.flop_counter``).
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import ModelConfig, RunConfig, TrainConfig
from .model import DiffusionModel
from .samplers import ddim
from .runtime import Runtime
from .training.step import TrainStep, build_optimizer


def network_flops(config: ModelConfig, device: torch.device | str = "cpu") -> tuple[float, float]:
    """FLOPs per image of one forward pass and of one training pass (forward and backward)."""
    network = DiffusionModel(config).network.to(device)
    images = torch.randn(2, 3, config.image_size, config.image_size, device=device)
    variances = torch.rand(2, 1, 1, 1, device=device)
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            network(images, variances)
    forward = counter.get_total_flops() / 2
    with FlopCounterMode(display=False) as counter:
        network(images, variances).sum().backward()
    return forward, counter.get_total_flops() / 2


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Workload:
    """A timed callable: ``run()`` processes ``images`` images."""

    name: str
    run: Callable[[], Any]
    images: int


def training_workload(config: RunConfig, runtime: Runtime, batch_size: int, seed: int = 0) -> Workload:
    """One optimiser step of the Keras example's training step at ``runtime``."""
    torch.manual_seed(seed)
    model = DiffusionModel(config.model)
    model.normalizer.mean.fill_(0.5)
    model.normalizer.variance.fill_(0.08)
    model.to(device=runtime.device, memory_format=runtime.memory_format())
    step = TrainStep(model, build_optimizer(model, config, runtime), config, runtime)
    size = config.model.image_size
    images = torch.rand(batch_size, 3, size, size, device=runtime.device,
                        generator=torch.Generator(runtime.device).manual_seed(seed))
    generator = torch.Generator(runtime.device).manual_seed(seed)
    return Workload("train", lambda: step(images, generator), batch_size)


def sampling_workload(config: RunConfig, runtime: Runtime, batch_size: int, steps: int, seed: int = 0) -> Workload:
    """One batch of ``steps``-step deterministic DDIM with the EMA network at ``runtime``."""
    torch.manual_seed(seed)
    model = DiffusionModel(config.model)
    torch.nn.init.normal_(model.ema_network.output_conv.weight, std=0.02)  # a non-trivial output
    model.to(device=runtime.device, memory_format=runtime.memory_format())
    size = config.model.image_size
    latents = torch.randn(batch_size, 3, size, size, device=runtime.device,
                          generator=torch.Generator(runtime.device).manual_seed(seed))
    denoiser = model.denoiser(ema=True, runtime=runtime)

    @torch.no_grad()
    def run() -> torch.Tensor:
        return ddim(denoiser, latents, steps=steps, schedule=model.schedule)

    return Workload("sample", run, batch_size)


def time_rounds(workloads: list[Workload], device: torch.device, *, warmup: int, iterations: int,
                rounds: int) -> list[float]:
    """Median images/s of each workload, measured in alternating rounds of ``iterations`` calls."""
    for workload in workloads:
        for _ in range(warmup):
            workload.run()
    _synchronize(device)
    per_round: list[list[float]] = [[] for _ in workloads]
    for _ in range(rounds):
        for index, workload in enumerate(workloads):
            _synchronize(device)
            started = time.perf_counter()
            for _ in range(iterations):
                workload.run()
            _synchronize(device)
            per_round[index].append(workload.images * iterations / (time.perf_counter() - started))
    return [statistics.median(values) for values in per_round]


def run_benchmark(model_config: ModelConfig, optimised: Runtime, *, batch_size: int = 64,
                  sample_batch_size: int = 256, sample_steps: int = 20, warmup: int = 2, iterations: int = 3,
                  rounds: int = 3, sampling: bool = True) -> dict[str, Any]:
    """Measure eager fp32 vs ``optimised`` for training and sampling; returns rows and context."""
    device = optimised.device
    config = RunConfig(model=model_config, train=TrainConfig(batch_size=batch_size))
    baseline = Runtime.baseline(device)
    forward_flops, training_flops = network_flops(model_config)
    rows = []
    train_rates = time_rounds([training_workload(config, baseline, batch_size),
                               training_workload(config, optimised, batch_size)],
                              device, warmup=warmup, iterations=iterations, rounds=rounds)
    rows.append(("train", f"batch {batch_size}", training_flops, train_rates))
    if sampling:
        sample_rates = time_rounds([sampling_workload(config, baseline, sample_batch_size, sample_steps),
                                    sampling_workload(config, optimised, sample_batch_size, sample_steps)],
                                   device, warmup=1, iterations=1, rounds=rounds)
        rows.append(("sample", f"batch {sample_batch_size}, {sample_steps} DDIM steps",
                     forward_flops * sample_steps, sample_rates))
    results = []
    for task, shape, flops_per_image, (eager, fast) in rows:
        results.append({
            "task": task, "shape": shape, "eager_fp32_images_per_s": eager, "optimised_images_per_s": fast,
            "speedup": fast / eager, "gflop_per_image": flops_per_image / 1e9,
            "eager_tflops": eager * flops_per_image / 1e12, "optimised_tflops": fast * flops_per_image / 1e12})
    return {"device": device_name(device), "optimised": optimised.describe(), "torch": torch.__version__,
            "model": {"image_size": model_config.image_size, "widths": list(model_config.widths),
                      "block_depth": model_config.block_depth},
            "threads": torch.get_num_threads(), "rounds": rounds, "iterations": iterations, "results": results}


def device_name(device: torch.device) -> str:
    """The card's name, or the CPU's with its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            name = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name} (CPU, {torch.get_num_threads()} threads)"


def format_table(report: dict[str, Any]) -> str:
    """The benchmark as a fixed-width text table."""
    lines = [f"device: {report['device']}   torch {report['torch']}   optimised: {report['optimised']}",
             f"model: {report['model']['image_size']} px, widths {report['model']['widths']}, "
             f"block depth {report['model']['block_depth']}   (median of {report['rounds']} alternating rounds)",
             "",
             f"{'task':<8}{'shape':<30}{'eager fp32 img/s':>18}{'optimised img/s':>17}{'speedup':>9}"
             f"{'GFLOP/img':>11}{'TFLOP/s eager':>15}{'TFLOP/s opt':>13}"]
    for row in report["results"]:
        lines.append(f"{row['task']:<8}{row['shape']:<30}{row['eager_fp32_images_per_s']:>18.1f}"
                     f"{row['optimised_images_per_s']:>17.1f}{row['speedup']:>8.2f}x{row['gflop_per_image']:>11.2f}"
                     f"{row['eager_tflops']:>15.3f}{row['optimised_tflops']:>13.3f}")
    return "\n".join(lines)
