"""``ddim bench``: training and sampling throughput, straightforward eager fp32 port vs the optimised path.

Both variants run in the same process on the same device, in alternating rounds (so a noisy shared
machine slows both alike), on synthetic images (throughput does not depend on pixel values). The
median round is reported. FLOPs come from PyTorch's own counter (``torch.utils.flop_counter``).

A training step is the training loop's step: a batch taken from uint8 images held on the device (mirrored where
the config's ``flip`` says so, with class labels for a conditional model), one optimiser step and the EMA update
of the config (a recipe's power EMA, learning-rate schedule, class dropout). A conditional model's sampling draws
one class per image at a guidance weight (other than 0 and 1: two network passes per step).
"""

from __future__ import annotations

import dataclasses
import itertools
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import ModelConfig, RunConfig
from .config.fields import shown
from .data.loader import TrainBatches
from .diffusion import network_passes
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


#: a conditional benchmark's classes, when its config names none (Oxford Flowers 102's count)
BENCH_CLASSES = 102
#: the run length a benchmark's learning-rate schedule assumes (a cosine schedule needs one; speed does not)
BENCH_RUN_STEPS = 10_000


def benchmark_config(config: RunConfig, batch_size: int) -> RunConfig:
    """``config`` at ``batch_size``; a conditional model without class names gets :data:`BENCH_CLASSES` of them."""
    model = config.model
    if model.conditional and not model.class_names:
        model = dataclasses.replace(model, class_names=tuple(f"class {index}" for index in range(BENCH_CLASSES)))
    return dataclasses.replace(config, model=model, train=dataclasses.replace(config.train, batch_size=batch_size))


def training_workload(config: RunConfig, runtime: Runtime, batch_size: int, seed: int = 0) -> Workload:
    """One step of the training loop at ``runtime``: the batch from device-resident uint8 images (flipped and
    labelled as the config says), the optimiser step and the EMA update."""
    config = benchmark_config(config, batch_size)
    torch.manual_seed(seed)
    model = DiffusionModel(config.model)
    model.normalizer.mean.fill_(0.5)
    model.normalizer.variance.fill_(0.08)
    model.to(device=runtime.device, memory_format=runtime.memory_format())
    step = TrainStep(model, build_optimizer(model, config, runtime), config, runtime, total_steps=BENCH_RUN_STEPS)
    size, classes = config.model.image_size, len(config.model.class_names)
    pixels = torch.randint(0, 256, (batch_size, size, size, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(seed)).numpy()
    labels = (torch.arange(batch_size) % classes).numpy() if config.model.conditional else None
    batches = TrainBatches(pixels, batch_size=batch_size, repeats=4, seed=seed, device=runtime.device, labels=labels,
                           flip=config.data.flip)
    order, flips = batches.epoch_indices(0), batches.epoch_flips(0)
    generator = torch.Generator(runtime.device).manual_seed(seed)
    steps = itertools.count(1)

    def run() -> torch.Tensor:
        number = next(steps)
        row = number % batches.steps_per_epoch
        images = batches.train_images(order[row], None if flips is None else flips[row])
        return step(images, generator, number, batches.labels(order[row]))

    return Workload("train", run, batch_size)


def sampling_workload(config: RunConfig, runtime: Runtime, batch_size: int, steps: int, seed: int = 0,
                      guidance: float = 1.0) -> Workload:
    """One batch of ``steps``-step deterministic DDIM with the EMA network at ``runtime`` (a conditional model: one
    class per image, at ``guidance``)."""
    config = benchmark_config(config, batch_size)
    torch.manual_seed(seed)
    model = DiffusionModel(config.model)
    torch.nn.init.normal_(model.ema_network.output_conv.weight, std=0.02)  # a non-trivial output
    model.to(device=runtime.device, memory_format=runtime.memory_format())
    size = config.model.image_size
    latents = torch.randn(batch_size, 3, size, size, device=runtime.device,
                          generator=torch.Generator(runtime.device).manual_seed(seed))
    labels = (torch.arange(batch_size, device=runtime.device) % len(config.model.class_names)
              if config.model.conditional else None)
    denoiser = model.denoiser(ema=True, runtime=runtime, labels=labels, guidance=guidance)

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


def run_benchmark(config: RunConfig, optimised: Runtime, *, batch_size: int = 64,
                  sample_batch_size: int = 256, sample_steps: int = 20, warmup: int = 2, iterations: int = 3,
                  rounds: int = 3, sampling: bool = True, guidance: float = 1.0) -> dict[str, Any]:
    """Measure eager fp32 vs ``optimised`` for training and sampling with ``config`` (a recipe, a conditional
    model); returns rows and context. ``guidance``: a conditional model's sampling guidance weight."""
    device = optimised.device
    model_config = config.model
    baseline = Runtime.baseline(device)
    forward_flops, training_flops = network_flops(benchmark_config(config, batch_size).model)
    passes = network_passes(guidance) if model_config.conditional else 1
    rows = []
    train_rates = time_rounds([training_workload(config, baseline, batch_size),
                               training_workload(config, optimised, batch_size)],
                              device, warmup=warmup, iterations=iterations, rounds=rounds)
    rows.append(("train", f"batch {batch_size}", training_flops, train_rates))
    if sampling:
        sample_rates = time_rounds([sampling_workload(config, baseline, sample_batch_size, sample_steps,
                                                      guidance=guidance),
                                    sampling_workload(config, optimised, sample_batch_size, sample_steps,
                                                      guidance=guidance)],
                                   device, warmup=1, iterations=1, rounds=rounds)
        shape = f"batch {sample_batch_size}, {sample_steps} DDIM steps"
        if model_config.conditional:
            shape += f", guidance {guidance:g}"
        rows.append(("sample", shape, forward_flops * sample_steps * passes, sample_rates))
    results = []
    for task, shape, flops_per_image, (eager, fast) in rows:
        results.append({
            "task": task, "shape": shape, "eager_fp32_images_per_s": eager, "optimised_images_per_s": fast,
            "speedup": fast / eager, "gflop_per_image": flops_per_image / 1e9,
            "eager_tflops": eager * flops_per_image / 1e12, "optimised_tflops": fast * flops_per_image / 1e12})
    changes = {f"{section}.{name}": list(value) if isinstance(value, tuple) else value
               for section, name, value in config.changes() if (section, name) not in _SHOWN_ELSEWHERE}
    return {"device": device_name(device), "optimised": optimised.describe(), "torch": torch.__version__,
            "model": {"image_size": model_config.image_size, "widths": list(model_config.widths),
                      "block_depth": model_config.block_depth},
            "config_changes": changes,
            "threads": torch.get_num_threads(), "rounds": rounds, "iterations": iterations, "results": results}


#: config fields the report shows in their own place, not among the changes from the Keras example's recipe
_SHOWN_ELSEWHERE = {("model", "image_size"), ("model", "widths"), ("model", "block_depth"), ("train", "batch_size")}


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
    changes = ", ".join(f"{name.split('.', 1)[1]} {shown(tuple(value) if isinstance(value, list) else value)}"
                        for name, value in report.get("config_changes", {}).items())
    shape_width = max([30] + [len(row["shape"]) + 2 for row in report["results"]])
    lines = [f"device: {report['device']}   torch {report['torch']}   optimised: {report['optimised']}",
             f"model: {report['model']['image_size']} px, widths {report['model']['widths']}, "
             f"block depth {report['model']['block_depth']}   (median of {report['rounds']} alternating rounds)",
             f"changed from the Keras example's recipe: {changes or 'nothing'}",
             "",
             f"{'task':<8}{'shape':<{shape_width}}{'eager fp32 img/s':>18}{'optimised img/s':>17}{'speedup':>9}"
             f"{'GFLOP/img':>11}{'TFLOP/s eager':>15}{'TFLOP/s opt':>13}"]
    for row in report["results"]:
        lines.append(f"{row['task']:<8}{row['shape']:<{shape_width}}{row['eager_fp32_images_per_s']:>18.1f}"
                     f"{row['optimised_images_per_s']:>17.1f}{row['speedup']:>8.2f}x{row['gflop_per_image']:>11.2f}"
                     f"{row['eager_tflops']:>15.3f}{row['optimised_tflops']:>13.3f}")
    return "\n".join(lines)
