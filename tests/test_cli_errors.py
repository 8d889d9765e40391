"""Usage errors through ``ddim``: one line each (the usage only with --help), "did you mean" for a mistyped
option or choice, and no abbreviated options."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddim.cli import build_parser, main
from ddim.cli.config_options import config_from_args


def one_line_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as stop:  # argparse's exit, as from the shell
        main(argv)
    assert stop.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err  # no usage block before the message
    assert "usage:" not in captured.err and "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize("argv, start, part", [
    (["train", "--data", "x", "--lr", "-1"], "ddim train: error: ", "--lr: must be positive, got -1"),
    (["sample", "--num", "0", "--checkpoint", "c", "--out", "o"], "ddim sample: error: ",
     "argument --num: must be between 1 and"),
    (["sample", "--checkpoint", "c"], "ddim sample: error: ", "required: --out"),
    (["evaluate", "--kid-size", "7", "--checkpoint", "c"], "ddim evaluate: error: ", "--kid-size"),
    (["interpolate", "--frames", "1", "--checkpoint", "c", "--out", "o.png"], "ddim interpolate: error: ",
     "argument --frames"),
])
def test_a_parse_error_is_one_line_naming_the_option(capsys, argv: list[str], start: str, part: str) -> None:
    line = one_line_error(capsys, argv)
    assert line.startswith(start) and part in line, line
    assert line.endswith(f"({start.split(':')[0]} --help lists the options)")


@pytest.mark.parametrize("argv, typo, meant", [
    (["train", "--data", "x", "--lerning-rate", "1e-3"], "--lerning-rate", "--learning-rate"),
    (["train", "--data", "x", "--epocs", "3"], "--epocs", "--epochs"),
    (["sample", "--checkpoint", "c", "--out", "o", "--stpes=5"], "--stpes", "--steps"),
])
def test_a_mistyped_option_names_the_one_meant(capsys, argv: list[str], typo: str, meant: str) -> None:
    line = one_line_error(capsys, argv)
    assert f"unrecognized option {typo} (did you mean {meant}?)" in line, line


def test_a_mistyped_command_or_choice_names_the_one_meant(capsys) -> None:
    assert "did you mean 'sample'?" in one_line_error(capsys, ["sampel"])
    line = one_line_error(capsys, ["sample", "--checkpoint", "c", "--out", "o", "--sampler", "dimm"])
    assert "invalid choice: 'dimm'" in line and "did you mean 'ddim'?" in line


def test_an_unknown_word_with_nothing_close_says_so_without_guessing(capsys) -> None:
    line = one_line_error(capsys, ["train", "--data", "x", "--zzzzzz"])
    assert line.startswith("ddim train: error: unrecognized option --zzzzzz (ddim train --help")
    line = one_line_error(capsys, ["--zzzzzz"])
    assert line.startswith("ddim: error: unrecognized option --zzzzzz")


@pytest.mark.parametrize("abbreviation, option", [("--epoch", "--epochs"), ("--max-step", "--max-steps"),
                                                  ("--batch-siz", "--batch-size"),
                                                  ("--batch", "--batch-size or --batchnorm")])
def test_options_are_never_abbreviated(capsys, abbreviation: str, option: str) -> None:
    line = one_line_error(capsys, ["train", "--data", "x", abbreviation, "3"])
    assert f"unrecognized option {abbreviation} (did you mean {option}?)" in line, line


def test_help_still_prints_the_usage(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train", "--help"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("usage: ddim train")


def test_learning_rate_is_the_spelled_out_name_of_lr(tmp_path: Path) -> None:
    args = build_parser(["train"]).parse_args(["train", "--data", str(tmp_path), "--learning-rate", "2e-3"])
    assert config_from_args(args).train.lr == 2e-3
