"""The defaults are the Keras example's; configs of earlier versions still load to the same computation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ddim.config import CONFIG_VERSION, ConfigError, ModelConfig, RunConfig, TrainConfig
from ddim.model import DiffusionModel
from ddim.runtime import Runtime, resolve_runtime
from ddim.training.step import build_optimizer

TINY = ModelConfig(image_size=16, widths=(8, 16), block_depth=1)


@pytest.mark.parametrize("runtime", [Runtime.baseline("cpu"), resolve_runtime("cpu")], ids=["eager", "optimised"])
@pytest.mark.parametrize("lr", [1e-3, 3e-4])
def test_one_step_with_zero_gradients_decays_each_weight_by_the_keras_factor(runtime: Runtime, lr: float) -> None:
    """tensorflow-addons' AdamW(weight_decay=1e-4) multiplies every weight by 1 - 1e-4 per step, whatever lr."""
    config = RunConfig(model=TINY, train=TrainConfig(lr=lr))
    assert config.train.weight_decay == 1e-4  # the Keras example's AdamW(learning_rate=1e-3, weight_decay=1e-4)
    model = DiffusionModel(TINY)
    with torch.no_grad():
        for parameter in model.network.parameters():
            parameter.normal_()
    before = [p.detach().clone() for p in model.network.parameters()]
    optimizer = build_optimizer(model, config, runtime)
    for parameter in model.network.parameters():
        parameter.grad = torch.zeros_like(parameter)  # Adam's own update is then exactly zero
    optimizer.step()
    for old, new in zip(before, model.network.parameters()):
        torch.testing.assert_close(new.detach(), old * (1 - 1e-4), rtol=2e-7, atol=0)
        assert not torch.equal(new.detach(), old)  # the decay did happen


def test_a_version_1_config_keeps_its_computation(tmp_path: Path) -> None:
    """Version 1 (no "version" key) stored PyTorch's weight decay, lr * wd per step: the upgrade keeps it."""
    old = RunConfig(model=TINY).to_dict()
    del old["version"]
    old["train"]["lr"], old["train"]["weight_decay"] = 2e-3, 1e-4  # PyTorch's meaning: 2e-7 per step
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    upgraded = RunConfig.load(path)
    assert upgraded.train.weight_decay == pytest.approx(2e-7, rel=1e-12)
    assert upgraded.model == TINY
    del old["train"]["weight_decay"]  # absent: version 1's default, 1e-4 in PyTorch's meaning
    assert RunConfig.from_dict(old).train.weight_decay == pytest.approx(2e-3 * 1e-4, rel=1e-12)
    written = RunConfig(model=TINY)
    written.save(path)
    assert json.loads(path.read_text())["version"] == CONFIG_VERSION
    assert RunConfig.load(path) == written  # the current version round-trips unchanged


def test_a_config_from_a_newer_version_is_refused() -> None:
    data = RunConfig().to_dict()
    data["version"] = CONFIG_VERSION + 1
    with pytest.raises(ConfigError, match="version"):
        RunConfig.from_dict(data)


def test_defaults_are_the_keras_examples() -> None:
    """Each default against the Keras example's code (shared/seed): one place to see them all."""
    config = RunConfig()
    model, data, train = config.model, config.data, config.train
    assert (model.image_size, model.widths, model.block_depth) == (64, (32, 64, 96, 128), 2)
    assert (model.embedding_dims, model.embedding_min_frequency, model.embedding_max_frequency) == (32, 1.0, 1000.0)
    assert (model.min_signal_rate, model.max_signal_rate, model.prediction) == (0.02, 0.95, "noise")
    assert (data.train_fraction, data.repeats) == (0.8, 5)
    assert (train.epochs, train.batch_size, train.lr, train.weight_decay) == (50, 64, 1e-3, 1e-4)
    assert (train.adam_epsilon, train.ema, train.ema_warmup, train.loss) == (1e-7, 0.999, False, "mae")
    assert not data.flip and train.ema_std is None  # no augmentation; the constant EMA decay from the first step
    assert (train.lr_schedule, train.lr_warmup_steps) == ("constant", 0)  # no warm-up, no decay
    assert train.plot_images == 9  # the Keras example's sample(num_images=9): a 3 x 3 grid
    assert (train.plot_steps, train.kid_every, train.kid_steps, train.kid_image_size, train.kid_batch_size) == \
        (20, 1, 5, 75, 64)


def test_an_older_config_reads_conditional_networks_as_input_conditioned_and_unconditional_ones_as_today() -> None:
    """Version 5 added model.class_conditioning: a version-4 conditional model took its class at the input only; an
    unconditional one takes no class, so it reads as today's default (and its weights' metadata alike)."""
    from ddim.config import RunConfig, with_added_fields

    conditional = {"conditional": True, "class_names": ["a", "b"]}
    old = RunConfig.from_dict({"version": 4, "model": conditional})
    assert old.model.class_conditioning == "input"
    assert RunConfig.from_dict({"version": 4, "model": {}}).model.class_conditioning == "every-block"
    assert RunConfig.from_dict({"version": 5, "model": conditional}).model.class_conditioning == "every-block"
    assert with_added_fields("model", conditional)["class_conditioning"] == "input"
    assert with_added_fields("model", {"conditional": False})["class_conditioning"] == "every-block"
    assert with_added_fields("model", {**conditional, "class_conditioning": "every-block"})["class_conditioning"] \
        == "every-block"


def test_changes_lists_every_field_that_differs_from_a_base_in_section_order() -> None:
    assert RunConfig().changes() == []
    config = RunConfig(model=TINY, train=TrainConfig(lr=3e-4, ema_std=0.1))
    assert config.changes() == [("model", "image_size", 16), ("model", "widths", (8, 16)), ("model", "block_depth", 1),
                                ("train", "lr", 3e-4), ("train", "ema_std", 0.1)]
    assert config.changes(base=RunConfig(model=TINY)) == [("train", "lr", 3e-4), ("train", "ema_std", 0.1)]
