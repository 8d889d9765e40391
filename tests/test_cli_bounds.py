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
