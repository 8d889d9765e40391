"""The sampling commands through the CLI: ddim sample with any sampler, interpolate, invert, and models of every
prediction target trained and sampled end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from ddim.cli import main
from ddim.samplers import SAMPLERS


def test_sample_command_takes_a_sampler_and_eta(tiny_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "dpm"
    assert main(["sample", "--checkpoint", str(tiny_run), "--num", "3", "--sampler", "dpmpp-2m", "--steps", "4",
                 "--out", str(out), "--device", "cpu"]) == 0
    assert json.loads((out / "sample.json").read_text())["sampler"] == "dpmpp-2m"
    assert main(["sample", "--checkpoint", str(tiny_run), "--num", "3", "--eta", "1", "--steps", "4",
                 "--out", str(tmp_path / "eta"), "--device", "cpu"]) == 0
    with pytest.raises(SystemExit):
        main(["sample", "--checkpoint", str(tiny_run), "--sampler", "heun", "--eta", "1", "--out", str(tmp_path / "x")])
    assert "--eta applies to the ddim sampler only" in capsys.readouterr().err


def test_interpolate_writes_a_strip_and_an_animated_gif(tiny_run: Path, tmp_path: Path) -> None:
    assert main(["interpolate", "--checkpoint", str(tiny_run), "--pairs", "2", "--frames", "5", "--steps", "3",
                 "--out", str(tmp_path), "--device", "cpu"]) == 0
    strip = Image.open(tmp_path / "interpolation.png")
    assert strip.size == (5 * 16 + 6 * 2, 2 * 16 + 3 * 2)
    gif = Image.open(tmp_path / "interpolation.gif")
    assert gif.is_animated and gif.n_frames == 2 * 5 - 2


def test_invert_prints_reconstruction_error_against_steps(tiny_run: Path, tmp_path: Path, capsys) -> None:
    assert main(["invert", "--checkpoint", str(tiny_run), "--num", "4", "--steps", "2,8", "--out", str(tmp_path),
                 "--device", "cpu", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "DDIM inversion of 4 images" in printed and "PSNR" in printed
    with open(tmp_path / "errors.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["steps"]) for r in rows] == [2, 8]
    assert all(0 <= float(r["mae"]) < 1 for r in rows)
    assert (tmp_path / "reconstructions_8steps.png").is_file() and (tmp_path / "originals.png").is_file()


def test_velocity_and_signal_models_train_and_sample_through_the_cli(flowers: Path, tmp_path: Path) -> None:
    from conftest import TINY_TRAIN

    for target, loss in (("velocity", "mse"), ("signal", "mae")):
        run_dir = tmp_path / target
        assert main(["train", "--data", str(flowers), "--run-dir", str(run_dir), *TINY_TRAIN, "--prediction", target,
                     "--loss", loss, "--max-steps", "2", "--train-images", "32", "--validation-images", "8",
                     "--kid-every", "0", "--repeats", "1"]) == 0
        config = json.loads((run_dir / "config.json").read_text())
        assert config["model"]["prediction"] == target and config["train"]["loss"] == loss
        for sampler in SAMPLERS:
            assert main(["sample", "--checkpoint", str(run_dir), "--num", "2", "--steps", "2", "--sampler", sampler,
                         "--out", str(tmp_path / f"{target}-{sampler}"), "--device", "cpu"]) == 0
