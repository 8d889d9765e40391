"""The ``ddim`` command end to end on the real flowers, and its refusal of invalid options."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN as TINY
from conftest import loaded
from PIL import Image

from ddim.cli import main


@pytest.mark.parametrize("option, value, message", [
    ("--batch-size", "0", "--batch-size: must be a positive integer"),
    ("--epochs", "-1", "--epochs: must be a positive integer"),
    ("--widths", "32,x", "--widths: expected comma-separated integers"),
    ("--image-size", "60", "--image-size: must be divisible by 2**3"),
    ("--ema", "1.5", "--ema: must be in [0, 1)"),
    ("--lr", "nan", "--lr: must be a finite number"),
    ("--max-steps", "0", "--max-steps: must be a positive integer"),
    ("--min-signal-rate", "0.99", "--min-signal-rate: signal rates must satisfy"),
    ("--device", "gpu7", "--device 'gpu7' is not a device name"),
    ("--prediction", "pixels", "--prediction: invalid choice"),
])
def test_invalid_options_are_refused_before_any_work(option, value, message, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(tmp_path / "never-read"), "--run-dir", str(tmp_path / "run"), option, value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_bad_data_is_an_error_message_not_a_traceback(tmp_path: Path, capsys) -> None:
    assert main(["train", "--data", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "ddim train: error: data folder" in err and "Traceback" not in err


def test_training_run_writes_every_artefact(tiny_run: Path) -> None:
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["model"]["widths"] == [8, 16] and config["train"]["max_steps"] == 6
    grids = sorted((tiny_run / "samples").glob("epoch_*.png"))
    assert [g.name for g in grids] == ["epoch_0001.png", "epoch_0002.png"]
    assert Image.open(grids[0]).size[0] > 16  # a grid, not a single image
    with open(tiny_run / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for key in ("train_noise_loss", "train_image_loss", "val_noise_loss", "val_image_loss"):
        assert all(np.isfinite(float(r[key])) for r in rows), key
    assert Image.open(tiny_run / "losses.png").size[0] > 100
    checkpoint = tiny_run / "checkpoints" / "step_000000006"
    assert {p.name for p in checkpoint.iterdir()} == {"model.safetensors", "config.json", "training_state.pt"}
    # the history really comes from training: the network moved away from its zero output layer
    
    model, _, _ = loaded(tiny_run)
    assert model.network.output_conv.weight.abs().sum() > 0
    assert not torch.equal(model.normalizer.mean, torch.zeros(3))


def test_sample_writes_pngs_and_a_grid_and_the_same_seed_gives_identical_images(tiny_run: Path, tmp_path: Path) -> None:
    first, second, third = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main(["sample", "--checkpoint", str(tiny_run), "--num", "5", "--steps", "3", "--seed", "4",
                 "--out", str(first), "--device", "cpu"]) == 0
    assert main(["sample", "--checkpoint", str(tiny_run / "checkpoints" / "step_000000006"), "--num", "5",
                 "--steps", "3", "--seed", "4", "--out", str(second), "--batch-size", "2", "--device", "cpu"]) == 0
    assert main(["sample", "--checkpoint", str(tiny_run), "--num", "5", "--steps", "3", "--seed", "5",
                 "--out", str(third), "--device", "cpu"]) == 0
    names = sorted(p.name for p in first.glob("image_*.png"))
    assert len(names) == 5 and (first / "grid.png").is_file()
    for name in names:
        assert np.array_equal(np.asarray(Image.open(first / name)), np.asarray(Image.open(second / name)))
    assert not np.array_equal(np.asarray(Image.open(first / names[0])), np.asarray(Image.open(third / names[0])))
    assert json.loads((first / "sample.json").read_text())["seed"] == 4


def test_a_run_folder_is_never_overwritten(tiny_run: Path, capsys) -> None:
    assert main(["train", "--data", "unused", "--run-dir", str(tiny_run), *TINY]) == 1
    assert "already holds a run" in capsys.readouterr().err


def test_the_installed_command_runs(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "ddim", "sample", "--checkpoint", str(tmp_path / "none"),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "ddim sample: error: checkpoint" in result.stderr and "does not exist" in result.stderr
