"""The better recipes' levers (flips, power-function EMA, learning-rate schedules) and the named recipes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN, write_images

from ddim.cli import main
from ddim.config import ConfigError, RunConfig, TrainConfig
from ddim.data import TrainBatches
from ddim.ema import ema_decay, initial_share, power_exponent, power_relative_std
from ddim.learning_rate import learning_rate
from ddim.recipes import RecipeError, load_recipe, recipe_names


def test_flips_are_drawn_per_epoch_from_the_seed_and_mirror_exactly_the_marked_images() -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)
    batches = TrainBatches(images, batch_size=8, repeats=2, seed=3, flip=True)
    flips = batches.epoch_flips(0)
    assert flips.shape == batches.epoch_indices(0).shape and flips.dtype == torch.bool
    assert torch.equal(flips, TrainBatches(images, batch_size=8, repeats=2, seed=3, flip=True).epoch_flips(0))
    assert not torch.equal(flips, batches.epoch_flips(1))  # another epoch, other flips
    assert 0.3 < flips.float().mean().item() < 0.7
    order = batches.epoch_indices(0)
    out = batches.train_images(order[0], flips[0])
    plain = batches.images(order[0])
    for image, flipped, original in zip(out, flips[0], plain):
        assert torch.equal(image, original.flip(-1) if flipped else original)
    assert TrainBatches(images, batch_size=8, repeats=2, seed=3).epoch_flips(0) is None  # off by default
    # under data parallelism each rank takes its columns of the same global draw
    halves = [TrainBatches(images, batch_size=8, repeats=2, seed=3, flip=True, rank=r, world_size=2).epoch_flips(0)
              for r in range(2)]
    assert torch.equal(torch.cat(halves, dim=1), flips)


def test_learning_rate_schedules_follow_their_formulas() -> None:
    peak = 1e-3
    constant = TrainConfig(lr=peak, lr_warmup_steps=100)
    assert learning_rate(constant, 50, 1000) == pytest.approx(peak / 2)  # linear warm-up from 0
    assert learning_rate(constant, 100, 1000) == learning_rate(constant, 10**6, 1000) == peak
    assert learning_rate(TrainConfig(), 1, 1) == peak  # the Keras example's: constant from the first step
    cosine = TrainConfig(lr=peak, lr_schedule="cosine", lr_warmup_steps=100, lr_floor=0.1)
    rates = [learning_rate(cosine, step, 1100) for step in range(100, 1200)]
    assert rates[0] == pytest.approx(peak) and all(a >= b for a, b in zip(rates, rates[1:]))
    assert learning_rate(cosine, 600, 1100) == pytest.approx(0.1 * peak + 0.9 * peak / 2)  # half way
    assert learning_rate(cosine, 1100, 1100) == learning_rate(cosine, 5000, 1100) == pytest.approx(0.1 * peak)
    inverse = TrainConfig(lr=peak, lr_schedule="inverse-sqrt", lr_warmup_steps=10, lr_decay_steps=200)
    assert learning_rate(inverse, 200, 1) == peak and learning_rate(inverse, 800, 1) == pytest.approx(peak / 2)
    # it never needs the run's length: a short run is the start of a long one
    assert [learning_rate(inverse, s, 300) for s in range(1, 300)] == [learning_rate(inverse, s, 10**6)
                                                                       for s in range(1, 300)]
    floored = TrainConfig(lr=peak, lr_schedule="inverse-sqrt", lr_decay_steps=10, lr_floor=0.25)
    assert learning_rate(floored, 10**6, 1) == pytest.approx(0.25 * peak)


@pytest.mark.parametrize("values, message", [
    ({"lr_decay_steps": 10}, "applies to --lr-schedule cosine or inverse-sqrt"),
    ({"lr_schedule": "cosine", "lr_warmup_steps": 20, "lr_decay_steps": 10}, "at least --lr-warmup-steps"),
    ({"lr_floor": 1.5}, "fraction of --lr"), ({"lr_warmup_steps": -1}, "non-negative"),
    ({"ema_std": 0.3}, "power-function EMA's relative width"), ({"ema_std": 0.1, "ema_warmup": True}, "one of the two"),
    ({"lr_schedule": "linear"}, "must be one of")])
def test_lever_values_are_checked(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**values)


def test_the_power_function_ema_gives_no_weight_to_the_start_and_has_its_relative_width() -> None:
    assert power_relative_std(power_exponent(0.1)) == pytest.approx(0.1)
    assert power_exponent(0.05) > power_exponent(0.1) > power_exponent(0.2) > 0  # narrower: a higher exponent
    assert ema_decay(0.999, 1, False, 0.1) == 0.0  # step 1: the EMA becomes the weights
    assert initial_share(0.999, 10, False, 0.1) == 0.0 and initial_share(0.999, 10, False) == pytest.approx(0.999**10)
    # the weight each step's network has in the EMA after T steps, from the decays themselves
    steps = 4000
    decays = np.array([ema_decay(0.999, t, False, 0.1) for t in range(1, steps + 1)])
    weights = (1 - decays) * np.concatenate([np.cumprod(decays[::-1])[::-1][1:], [1.0]])
    assert weights.sum() == pytest.approx(1.0)
    times = np.arange(1, steps + 1) / steps  # in units of the run's length: EDM2's relative width is std / t
    mean = (weights * times).sum()
    assert math.sqrt((weights * (times - mean) ** 2).sum()) == pytest.approx(0.1, rel=0.01)


def test_the_shipped_recipes_are_valid_and_the_keras_example_changes_nothing() -> None:
    assert recipe_names()[0] == "keras-example" and "improved" in recipe_names()
    assert load_recipe("keras-example").config() == RunConfig() and load_recipe("keras-example").changes() == []
    improved = load_recipe("improved")
    config = improved.config()
    assert config.model == RunConfig().model  # the same network and objective: only the levers differ
    assert config.data.flip and config.train.ema_std == 0.1 and config.train.lr_schedule == "inverse-sqrt"
    assert {(section, name) for section, name, _ in improved.changes()} == {
        ("data", "flip"), ("train", "ema_std"), ("train", "lr_schedule"), ("train", "lr_warmup_steps"),
        ("train", "lr_decay_steps")}
    assert improved.references and improved.description
    with pytest.raises(RecipeError, match="the recipes are keras-example"):
        load_recipe("fastest")


def test_ddim_recipes_lists_every_value_each_recipe_changes(capsys) -> None:
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert "keras-example (the default)" in out and "changes no default" in out
    for line in ("--flip yes", "--ema-std 0.1", "--lr-schedule inverse-sqrt", "--lr-warmup-steps 511",
                 "--lr-decay-steps 2555"):
        assert f"  {line}\n" in out
    with pytest.raises(SystemExit):
        main(["recipes", "fastest"])
    assert "no recipe named 'fastest'; the recipes are keras-example, improved" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--recipe", "fastest"])
    assert "no recipe named 'fastest'" in capsys.readouterr().err


def test_train_with_a_recipe_records_its_values_and_options_and_config_files_override_it(tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_images(images, 40, size=(20, 18))
    (tmp_path / "partial.json").write_text(json.dumps({"train": {"lr_warmup_steps": 2}}))
    run = tmp_path / "run"
    assert main(["train", "--recipe", "improved", "--config", str(tmp_path / "partial.json"), "--ema-std", "0.05",
                 "--data", str(images), "--run-dir", str(run), "--epochs", "1", "--repeats", "1", "--kid-every", "0",
                 "--no-tensorboard", *TINY_TRAIN]) == 0
    saved = RunConfig.load(run / "config.json")
    assert saved.data.flip and saved.train.lr_schedule == "inverse-sqrt" and saved.train.lr_decay_steps == 2555
    assert saved.train.ema_std == 0.05 and saved.train.lr_warmup_steps == 2  # the option, then the file, win
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [row["lr"] for row in rows if "lr" in row]
    assert rates and rates[0] == pytest.approx(1e-3)  # after the 2 warm-up steps: the peak


def test_a_cosine_run_records_its_horizon(tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_images(images, 40, size=(20, 18))
    run = tmp_path / "run"
    assert main(["train", "--lr-schedule", "cosine", "--data", str(images), "--run-dir", str(run), "--epochs", "2",
                 "--repeats", "1", "--kid-every", "0", "--no-tensorboard", *TINY_TRAIN]) == 0
    assert RunConfig.load(run / "config.json").train.lr_decay_steps == 4  # 2 epochs of 2 steps (32 images / 16)


def test_none_restores_an_optional_fields_default_over_a_recipe() -> None:
    from ddim.cli import build_parser
    from ddim.cli.config_options import config_from_args

    args = build_parser().parse_args(["train", "--recipe", "improved", "--ema-std", "none", "--lr-schedule", "constant",
                                      "--lr-warmup-steps", "0", "--lr-decay-steps", "NONE"])
    config = config_from_args(args)
    assert config.train == RunConfig().train and config.data.flip  # only the flips of the recipe are left
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--ema-std", "wide"])
