"""scripts/validation_loss.py: a saved model's validation losses measured afterwards are the ones training wrote into
its history, and a conditional model's class-free branch is measured beside them (a tiny conditional run of shapes
at 16 px; the built-in Keras example on a 64 px run folder of the same shapes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import write_shapes
from test_conditional import TRAIN
from test_results_section import load_script

from ddim.cli import main
from ddim.config import DataConfig, RunConfig
from ddim.layout import RunLayout
from ddim.reports import read_history

validation_loss = load_script("validation_loss")


def test_losses_measured_afterwards_are_the_historys_and_the_class_free_branch_is_measured_beside(
        tmp_path: Path, monkeypatch, capsys) -> None:
    data, run = write_shapes(tmp_path / "data", per_class=24), tmp_path / "run"
    assert main(["train", "--data", str(data), "--run-dir", str(run), *TRAIN, "--epochs", "2"]) == 0
    last = read_history(RunLayout(run).history)[-1]
    checkpoint = max((run / "checkpoints").glob("step_*"))
    measured = validation_loss.model_losses(run, [str(checkpoint)], device="cpu")[str(checkpoint)]
    assert set(measured) == {"with classes", "class-free"}
    assert measured["with classes"]["val_noise_loss"] == pytest.approx(last["val_noise_loss"], abs=1e-6)
    assert measured["with classes"]["val_image_loss"] == pytest.approx(last["val_image_loss"], abs=1e-6)
    assert measured["class-free"]["val_noise_loss"] != pytest.approx(last["val_noise_loss"], abs=1e-6)

    # an unconditional model (the built-in Keras example) on a run folder of its image size: one measurement
    folder = tmp_path / "run64"
    folder.mkdir()
    RunConfig(data=DataConfig(path=str(write_shapes(tmp_path / "data64", per_class=12, size=64)))).save(
        folder / "config.json")
    monkeypatch.setattr(sys, "argv", ["validation_loss.py", str(folder), "keras-example", "--device", "cpu"])
    capsys.readouterr()
    validation_loss.main()
    printed = capsys.readouterr().out
    assert "keras-example (unconditional): val_noise_loss " in printed and "class-free" not in printed
    noise_loss = float(printed.split("val_noise_loss ")[1].split()[0])
    assert 0 < noise_loss < 1.5  # a trained denoiser of flowers on shapes: below the noise's own variance of 1

    # a model of another image size, and a folder that is not a run, are named
    with pytest.raises(SystemExit, match="its images are 64 px, the run's 16 px"):
        validation_loss.model_losses(run, ["keras-example"], device="cpu")
    with pytest.raises(SystemExit, match="config.json does not exist"):
        validation_loss.model_losses(tmp_path / "data", ["keras-example"], device="cpu")
