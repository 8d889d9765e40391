"""A run that explains itself: sample then evaluate, JSON on standard output with version and time, the
commands' help, and the README's option tables kept equal to the parsers."""

from __future__ import annotations

import argparse
import datetime
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, write_images
from PIL import Image

import ddim
from ddim.cli import argtypes, build_parser, main

COMMANDS = ("train", "recipes", "sample", "evaluate", "bench", "interpolate", "invert", "study", "export", "demo")
PENDING = {"train": {"--no-tensorboard"}}  # in the README while being added to the parser; nothing else may differ
TINY_EVALUATION = ["--kid-size", "75", "--subsets", "2", "--subset-size", "4", "--reference", "all", "--device", "cpu",
                   "--no-progress"]


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def parser_options(parser: argparse.ArgumentParser) -> set[str]:
    return {name for action in parser._actions for name in action.option_strings
            if name.startswith("--") and name != "--help"}


def readme_options() -> dict[str, set[str]]:
    """Per ``### `ddim CMD``` subsection of the README's Commands section: the options of its option tables."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Commands\n"):text.index("## Metrics\n")]
    found: dict[str, set[str]] = {}
    for block in re.split(r"^### ", section, flags=re.M)[1:]:
        heading, _, body = block.partition("\n")
        command = re.fullmatch(r"`ddim (\w+)`", heading.strip())
        assert command, f"a Commands subsection is not one command: {heading!r}"
        names = found.setdefault(command.group(1), set())
        in_table = False
        for line in body.splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not line.startswith("|"):
                in_table = False
            elif cells[:3] == ["option", "default", "meaning"]:
                in_table = True
            elif in_table:
                names.update(re.findall(r"--[a-z][a-z0-9-]*", cells[0]))
    return found


def test_every_option_of_every_command_is_in_the_readme_and_nothing_else() -> None:
    documented = readme_options()
    parsers = subparsers()
    assert set(parsers) == set(COMMANDS) == set(documented)
    for command, parser in parsers.items():
        actual, listed = parser_options(parser), documented[command]
        assert actual <= listed, f"ddim {command}: not in the README: {sorted(actual - listed)}"
        extra = listed - actual - PENDING.get(command, set())
        assert not extra, f"ddim {command}: in the README but not an option: {sorted(extra)}"


def test_bare_ddim_lists_the_commands_and_version_prints_it(capsys) -> None:
    assert main([]) == 0
    printed = capsys.readouterr().out
    assert "COMMAND" in printed and all(f"    {command} " in printed or f"    {command}\n" in printed
                                        for command in COMMANDS)
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"ddim {ddim.__version__}\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_each_default_once_and_yes_no_as_yes_no(command: str) -> None:
    parser = subparsers()[command]
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        name, text = action.option_strings[-1], action.help or ""
        assert text, f"ddim {command} {name} has no help"
        assert text.count("default:") <= 1, f"ddim {command} {name}: {text}"
        for wrong in ("default: None", "default: True", "default: False", "default: ()"):
            assert wrong not in text, f"ddim {command} {name}: {text}"
        if action.type is argtypes.yes_no:
            assert action.metavar == "yes/no" and re.search(r"default: (yes|no)\)", text), (command, name, text)
    help_text = " ".join(parser.format_help().split())
    assert "seed's" not in help_text and "the seed " not in help_text  # the recipe is "the Keras example's"


def test_json_dash_means_standard_output() -> None:
    assert argtypes.json_output("-") == argtypes.STDOUT
    assert argtypes.json_output("a/b.json") == Path("a/b.json")
    for command in ("bench", "evaluate", "study"):
        assert subparsers()[command].parse_args(["--json", "-", "--checkpoint", "c", "--out", "o"]
                                                if command == "study" else ["--json", "-"]).json_out == "-"


def assert_provenance(record: dict) -> None:
    assert record["ddim_version"] == ddim.__version__
    stamp = datetime.datetime.fromisoformat(record["timestamp"])
    assert stamp.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - stamp).total_seconds()) < 3600


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny untrained 16 px checkpoint and a folder of 20 synthetic images (the "real" ones)."""
    from ddim.checkpoint import write_checkpoint
    from ddim.config import DataConfig, ModelConfig, RunConfig
    from ddim.model import DiffusionModel

    where = tmp_path_factory.mktemp("tiny")
    images = where / "images"
    write_images(images, 20)
    model = DiffusionModel(ModelConfig(image_size=16, widths=(8, 16), block_depth=1))
    checkpoint = write_checkpoint(where / "checkpoint", model,
                                  RunConfig(model=model.config, data=DataConfig(path=str(images))))
    return checkpoint, images


@pytest.fixture
def quick_fid(monkeypatch: pytest.MonkeyPatch) -> None:
    """FID's mean term only: the 2048 x 2048 matrix square root takes 15-30 s on 2 cores, and these tests are
    about the commands, not the metric (tests/test_metrics.py checks FID itself)."""
    from ddim.evaluation import protocols

    monkeypatch.setattr(protocols, "fid_from_features",
                        lambda real, generated: float(((real.mean(0) - generated.mean(0)) ** 2).sum()))


def sample(checkpoint: Path, out: Path, *extra: str) -> int:
    return main(["sample", "--checkpoint", str(checkpoint), "--num", "4", "--steps", "1", "--batch-size", "3",
                 "--seed", "3", "--out", str(out), "--device", "cpu", "--no-progress", *extra])


def test_sample_then_evaluate_the_folder_or_the_npz(tiny, tmp_path: Path, capsys, quick_fid) -> None:
    checkpoint, images = tiny
    pngs, packed = tmp_path / "pngs", tmp_path / "packed"
    assert sample(checkpoint, pngs) == 0
    assert sorted(p.name for p in pngs.iterdir()) == [
        "grid.png", *(f"image_{i:05d}.png" for i in range(4)), "sample.json"]
    settings = json.loads((pngs / "sample.json").read_text())
    assert_provenance(settings)
    assert settings["num"] == 4 and settings["seed"] == 3 and settings["format"] == "png"

    assert sample(checkpoint, packed, "--format", "npz") == 0
    assert sorted(p.name for p in packed.iterdir()) == ["grid.png", "sample.json", "samples.npz"]
    with np.load(packed / "samples.npz") as archive:
        array = archive["images"]
    assert array.dtype == np.uint8 and array.shape == (4, 16, 16, 3)
    for index in range(4):  # the same pixels as the PNG files
        assert np.array_equal(array[index], np.asarray(Image.open(pngs / f"image_{index:05d}.png").convert("RGB")))
    capsys.readouterr()

    results = []
    for generated in (pngs, packed / "samples.npz"):  # grid.png is left out of the folder: 4 samples, not 5
        assert main(["evaluate", "--generated", str(generated), "--data", str(images), *TINY_EVALUATION,
                     "--json", "-"]) == 0
        captured = capsys.readouterr()
        record = json.loads(captured.out)  # standard output holds the JSON only
        assert "KID (75 px" in captured.err
        assert_provenance(record)
        assert record["num_generated"] == 4 and record["generated"] == [str(generated)]
        results.append(record)
    assert results[0]["kid"] == results[1]["kid"]
    assert main(["evaluate", "--generated", str(packed), "--data", str(images), *TINY_EVALUATION]) == 1
    assert "samples.npz" in capsys.readouterr().err  # a folder of grid.png only points at the .npz


def test_a_non_empty_out_is_refused_unless_overwrite(tiny, tmp_path: Path, capsys) -> None:
    checkpoint, _ = tiny
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        sample(checkpoint, out)
    assert exit_info.value.code == 2
    assert f"--out {out} is not empty" in capsys.readouterr().err and "--overwrite" in str(
        subparsers()["sample"].format_help())
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert sample(checkpoint, out, "--overwrite") == 0
    assert main(["sample", "--checkpoint", str(checkpoint), "--num", "2", "--steps", "1", "--out", str(out),
                 "--overwrite", "--device", "cpu", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [  # the earlier 4 images are gone, the user's file stays
        "grid.png", "image_00000.png", "image_00001.png", "notes.txt", "sample.json"]


def test_bench_json_on_standard_output(capsys) -> None:
    assert main(["bench", "--device", "cpu", "--image-size", "16", "--widths", "8,16", "--block-depth", "1",
                 "--batch-size", "4", "--no-sampling", "--rounds", "1", "--iterations", "1", "--warmup", "1",
                 "--precision", "fp32", "--json", "-"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert_provenance(report)
    assert [row["task"] for row in report["results"]] == ["train"]
    assert "eager fp32 img/s" in captured.err


def test_study_json_on_standard_output_and_in_its_folder(tiny, tmp_path: Path, capsys, quick_fid) -> None:
    checkpoint, images = tiny
    assert main(["study", "--checkpoint", str(checkpoint), "--samplers", "ddim", "--evaluations", "1", "--num", "4",
                 "--data", str(images), "--out", str(tmp_path), "--json", "-", *TINY_EVALUATION]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert_provenance(record)
    assert record["samplers"] == ["ddim"] and [p["evaluations"] for p in record["points"]] == [1]
    assert "wrote study.csv" in captured.err
    assert json.loads((tmp_path / "study.json").read_text())["points"] == record["points"]


def test_interpolate_and_invert_write_their_settings(tiny, tmp_path: Path) -> None:
    checkpoint, images = tiny
    assert main(["interpolate", "--checkpoint", str(checkpoint), "--pairs", "1", "--frames", "2", "--steps", "1",
                 "--seed", "5", "--out", str(tmp_path / "i"), "--device", "cpu"]) == 0
    settings = json.loads((tmp_path / "i" / "interpolate.json").read_text())
    assert_provenance(settings)
    assert (settings["seed"], settings["pairs"], settings["frames"], settings["steps"]) == (5, 1, 2, 1)
    files = sorted(images.iterdir())[:2]
    assert main(["invert", "--checkpoint", str(checkpoint), "--images", *map(str, files), "--steps", "1,2",
                 "--out", str(tmp_path / "v"), "--device", "cpu"]) == 0
    settings = json.loads((tmp_path / "v" / "invert.json").read_text())
    assert_provenance(settings)
    assert settings["images"] == list(map(str, files)) and [row["steps"] for row in settings["errors"]] == [1, 2]


def test_a_command_run_in_process_leaves_pythons_warning_format_as_it_was(tmp_path: Path) -> None:
    """During a command a DataWarning prints as one ``ddim CMD: warning:`` line; afterwards (main() called from
    a script or a test) Python's own warning format is back."""
    import warnings

    before = warnings.formatwarning
    assert main(["sample", "--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 1
    assert warnings.formatwarning is before
