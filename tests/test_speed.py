"""The optimised path computes what the straightforward port computes; ``ddim bench`` reports both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ddim.cli import main
from ddim.config import ModelConfig, RunConfig, TrainConfig
from ddim.model import DiffusionModel
from ddim.runtime import Runtime, resolve_runtime
from ddim.training.step import TrainStep, build_optimizer

CONFIG = RunConfig(model=ModelConfig(image_size=32, widths=(16, 32, 48), block_depth=1),
                   train=TrainConfig(batch_size=16))


def loss_trajectory(runtime: Runtime, steps: int) -> torch.Tensor:
    """Losses of ``steps`` training steps from seed 0 on fixed images, at ``runtime``."""
    images = torch.rand(192, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = DiffusionModel(CONFIG.model)
    model.normalizer.mean.fill_(0.45)
    model.normalizer.variance.fill_(0.07)
    model.to(memory_format=runtime.memory_format())
    step = TrainStep(model, build_optimizer(model, CONFIG, runtime), CONFIG, runtime)
    generator = torch.Generator().manual_seed(1)
    return torch.stack([step(images[(i * 16) % 192:(i * 16) % 192 + 16], generator) for i in range(steps)])


def test_optimised_training_follows_the_eager_fp32_loss_trajectory() -> None:
    baseline = loss_trajectory(Runtime.baseline("cpu"), 40)
    optimised = loss_trajectory(resolve_runtime("cpu", precision="bf16", channels_last=True, compile_mode="off"), 40)
    assert baseline[-1, 0] < baseline[0, 0]  # it is learning
    relative = (optimised - baseline).abs() / baseline
    assert relative.max() < 0.02  # bf16 tolerance: measured ~1e-3 on this port
    assert not torch.equal(optimised, baseline)  # and bf16 really was used


def test_compiled_training_step_matches_eager() -> None:
    baseline = loss_trajectory(Runtime.baseline("cpu"), 6)
    compiled = loss_trajectory(resolve_runtime("cpu", precision="fp32", channels_last=False, compile_mode="default"), 6)
    torch.testing.assert_close(compiled, baseline, rtol=1e-4, atol=1e-5)


def test_auto_speed_choices() -> None:
    cpu = resolve_runtime("cpu")
    assert cpu.compile_mode is None and cpu.channels_last
    assert Runtime.baseline("cpu").describe() == "fp32, NCHW, eager"
    with pytest.raises(ValueError, match="precision"):
        resolve_runtime("cpu", precision="fp8")


def test_bench_prints_a_table_and_writes_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--device", "cpu", "--image-size", "16", "--widths", "8,16", "--block-depth", "1",
                 "--batch-size", "8", "--sample-batch-size", "4", "--sample-steps", "2", "--rounds", "1",
                 "--iterations", "1", "--warmup", "1", "--precision", "bf16", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "eager fp32 img/s" in printed and "speedup" in printed and "TFLOP/s" in printed
    report = json.loads(out.read_text())
    assert [row["task"] for row in report["results"]] == ["train", "sample"]
    for row in report["results"]:
        assert row["eager_fp32_images_per_s"] > 0 and row["optimised_images_per_s"] > 0
        assert row["speedup"] == pytest.approx(row["optimised_images_per_s"] / row["eager_fp32_images_per_s"])
    assert report["optimised"].startswith("bf16 autocast")


def test_default_network_flop_count_matches_a_count_of_its_convolutions() -> None:
    """The benchmark's FLOPs (PyTorch's FLOP counter) against an independent count: every convolution's 2 x output
    elements x input channels x kernel area, measured on the network's own forward pass; a training pass is a
    forward and a backward of twice its cost."""
    from ddim.bench import network_flops
    from ddim.network import UNet

    network, convolutions = UNet(ModelConfig()), []

    def count(module: torch.nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        convolutions.append(2 * output[0].numel() * kernel)  # one image of the batch

    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(count)
    with torch.no_grad():
        network(torch.randn(1, 3, 64, 64), torch.rand(1, 1, 1, 1))
    forward, training = network_flops(ModelConfig())
    assert forward == pytest.approx(sum(convolutions), rel=0.01)
    assert training == pytest.approx(3 * forward, rel=0.01)


def test_openmp_threads_wait_passively_unless_the_user_chose_otherwise() -> None:
    import os
    import subprocess
    import sys

    code = "import os, ddim, torch; print(os.environ['OMP_WAIT_POLICY'])"
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    chosen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment)
    assert chosen.stdout.strip() == "PASSIVE"
    kept = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**environment, "OMP_WAIT_POLICY": "ACTIVE"})
    assert kept.stdout.strip() == "ACTIVE"
