"""The optimised path computes what the straightforward port computes; ``ddim bench`` reports both."""

from __future__ import annotations

import dataclasses
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


TINY_BENCH = ["bench", "--device", "cpu", "--image-size", "16", "--widths", "8,16", "--block-depth", "1",
              "--batch-size", "8", "--sample-batch-size", "4", "--sample-steps", "2", "--rounds", "1",
              "--iterations", "1", "--warmup", "1"]


def test_bench_measures_a_recipes_conditional_step_and_guided_sampling(tmp_path: Path, capsys) -> None:
    plain, guided = tmp_path / "plain.json", tmp_path / "guided.json"
    assert main(TINY_BENCH + ["--conditional", "--json", str(plain)]) == 0
    assert main(TINY_BENCH + ["--recipe", "improved", "--conditional", "--guidance", "2", "--json", str(guided)]) == 0
    printed = capsys.readouterr().out
    assert "changed from the Keras example's recipe: conditional yes, flip yes, lr_schedule inverse-sqrt" in printed
    plain_report, guided_report = json.loads(plain.read_text()), json.loads(guided.read_text())
    assert plain_report["config_changes"] == {"model.conditional": True}
    assert guided_report["config_changes"] == {"model.conditional": True, "data.flip": True,
                                               "train.lr_schedule": "inverse-sqrt", "train.lr_warmup_steps": 511,
                                               "train.lr_decay_steps": 2555, "train.ema_std": 0.1}
    plain_sample, guided_sample = plain_report["results"][1], guided_report["results"][1]
    assert guided_sample["shape"] == "batch 4, 2 DDIM steps, guidance 2"
    # guidance other than 0 and 1 runs the network twice per step (conditional and unconditional)
    assert guided_sample["gflop_per_image"] == pytest.approx(2 * plain_sample["gflop_per_image"])


def test_bench_refuses_guidance_without_a_conditional_model(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(TINY_BENCH + ["--guidance", "2"])
    assert stopped.value.code == 2
    assert "--guidance 2 steers a conditional model's sampling: add --conditional" in capsys.readouterr().err


def test_bench_training_step_is_the_loops_flipped_labelled_batch(monkeypatch) -> None:
    """The benchmark's training step takes its batch as the loop does: uint8 images held on the device, mirrored
    where the epoch's flips say, with their class labels, and the step number that drives the EMA and schedule."""
    from ddim import bench
    from ddim.config import DataConfig
    from ddim.recipes import load_recipe

    seen = []
    monkeypatch.setattr(bench.TrainStep, "__call__",
                        lambda self, images, generator, step=1, labels=None: seen.append((images, step, labels)))
    recipe = load_recipe("improved").config()
    config = RunConfig(model=ModelConfig(image_size=8, widths=(8, 16), block_depth=1, conditional=True),
                       data=recipe.data, train=recipe.train)
    workload = bench.training_workload(config, Runtime.baseline("cpu"), batch_size=6)
    for _ in range(3):
        workload.run()
    assert [step for _, step, _ in seen] == [1, 2, 3]
    for images, _, labels in seen:
        assert images.shape == (6, 3, 8, 8) and 0 <= images.min() and images.max() <= 1
        assert labels is not None and labels.dtype == torch.long and labels.max() < bench.BENCH_CLASSES
    # the same draws without flips: the flipped run's batches are the plain ones with some images mirrored
    plain = []
    monkeypatch.setattr(bench.TrainStep, "__call__",
                        lambda self, images, generator, step=1, labels=None: plain.append(images))
    unflipped = bench.training_workload(dataclasses.replace(config, data=DataConfig()), Runtime.baseline("cpu"),
                                        batch_size=6)
    for _ in range(3):
        unflipped.run()
    mirrored = [torch.equal(f, p.flip(-1)) and not torch.equal(f, p)
                for (flipped, _, _), batch in zip(seen, plain) for f, p in zip(flipped, batch)]
    same = [torch.equal(f, p) for (flipped, _, _), batch in zip(seen, plain) for f, p in zip(flipped, batch)]
    assert any(mirrored) and all(m or s for m, s in zip(mirrored, same))


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
