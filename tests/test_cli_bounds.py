"""Command-line values that cannot make sense are refused up front, with the bound or the file named."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddim.cli import main


@pytest.mark.parametrize("command", ["sample", "evaluate", "interpolate", "study"])
def test_a_negative_seed_is_refused(command: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--checkpoint", "pretrained", "--seed", "-1", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "--seed: must be between 0 and" in capsys.readouterr().err


@pytest.mark.parametrize("option, value, message", [
    ("--steps", "100000000", "--steps: must be between 1 and 10000 (more steps gain nothing)"),
    ("--num", "100000000000", "--num: must be between 1 and 1000000"),
])
def test_unbounded_requests_are_refused_before_any_memory_is_spent(option: str, value: str, message: str,
                                                                   tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["sample", "--checkpoint", "pretrained", option, value, "--out", str(tmp_path / "o")])
    assert message in capsys.readouterr().err


def test_an_output_folder_that_is_a_file_or_a_json_that_is_a_folder_is_refused(tmp_path: Path, capsys) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(SystemExit):
        main(["sample", "--checkpoint", "pretrained", "--out", str(a_file)])
    assert f"{a_file} is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sample", "--checkpoint", "pretrained", "--out", str(a_file / "below")])
    assert "is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--checkpoint", "pretrained", "--json", str(tmp_path)])
    assert "is a folder, not a file" in capsys.readouterr().err


def test_sample_writes_batch_by_batch_and_the_grid_shows_the_first_images(tmp_path: Path) -> None:
    """Each batch is written as it is made (a huge --num never sits in memory); the result is unchanged."""
    from PIL import Image

    from ddim.checkpoint import write_checkpoint
    from ddim.config import ModelConfig, RunConfig
    from ddim.model import DiffusionModel

    model = DiffusionModel(ModelConfig(image_size=16, widths=(8, 16), block_depth=1))
    checkpoint = write_checkpoint(tmp_path / "c", model, RunConfig(model=model.config))
    out = tmp_path / "s"
    assert main(["sample", "--checkpoint", str(checkpoint), "--num", "5", "--batch-size", "2", "--steps", "2",
                 "--out", str(out), "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.glob("image_*.png")) == [f"image_{i:05d}.png" for i in range(5)]
    whole = tmp_path / "whole"
    assert main(["sample", "--checkpoint", str(checkpoint), "--num", "5", "--batch-size", "5", "--steps", "2",
                 "--out", str(whole), "--device", "cpu"]) == 0
    for i in range(5):
        assert (out / f"image_{i:05d}.png").read_bytes() == (whole / f"image_{i:05d}.png").read_bytes()
    assert Image.open(out / "grid.png").size == Image.open(whole / "grid.png").size


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "x", "--plot-steps", "1000000000"], "--plot-steps: must be at most 10,000 (more steps"),
    (["train", "--data", "x", "--image-size", "4096"], "--image-size: must be at most 512 pixels per side"),
    (["train", "--data", "x", "--embedding-dims", "100000000"], "--embedding-dims: must be at most 4,096"),
    (["train", "--data", "x", "--widths", "32,64,100000000"], "--widths: must be at most 4,096 channels"),
    (["train", "--data", "x", "--widths", ",".join(["32"] * 20)], "--widths: needs 2 to 8 widths"),
    (["train", "--data", "x", "--widths", ",".join(["32"] * 2_000_000)], "a list of 5,999,999 characters"),
    (["train", "--data", "x", "--widths", "9" * 5000], "a list of 5,000 characters"),
    (["train", "--data", "x", "--batch-size", "10000000"], "--batch-size: must be at most 65,536"),
    (["train", "--data", "x", "--repeats", "10000000"], "--repeats: must be at most 10,000"),
    (["invert", "--checkpoint", "c", "--out", "o", "--steps", "5,100000"], "each value must be between 1 and 10,000"),
    (["study", "--checkpoint", "c", "--out", "o", "--evaluations", "5,100000"], "each value must be between 1 and"),
    (["study", "--checkpoint", "c", "--out", "o", "--evaluations", ",".join(["5"] * 100)], "at most 64 values"),
    (["bench", "--sample-steps", "100000000"], "--sample-steps: must be between 1 and 10000"),
    (["bench", "--rounds", "100000000"], "--rounds: must be between 1 and 100"),
    (["interpolate", "--checkpoint", "c", "--out", "o.png", "--pairs", "100000000"], "--pairs: must be between 1"),
    (["interpolate", "--checkpoint", "c", "--out", "o.png", "--frames", "100000000"], "--frames: must be between 2"),
])
def test_every_size_and_count_option_has_an_upper_bound(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err) < 1000, err[:500]  # a megabyte value is never echoed back in full


def test_the_api_and_config_files_share_the_bounds() -> None:
    import ddim
    from ddim.config import ConfigError

    with pytest.raises(ConfigError, match="image_size: must be at most 512"):
        ddim.config_with(image_size=4096)
    with pytest.raises(ConfigError, match="plot_steps: must be at most 10,000"):
        ddim.config_with(plot_steps=10**9)


def test_a_value_of_megabytes_is_never_echoed_back_in_full(tmp_path: Path, capsys) -> None:
    huge = "x/" * 500_000  # a million characters
    assert main(["train", "--data", huge, "--run-dir", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ddim train: error: ") and len(err) < 2200 and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["train", "--data", "x", "--lr", "1" * 1_000_000])
    err = capsys.readouterr().err
    assert "--lr" in err and len(err) < 600
