"""Every run-config field is one command-line option, derived from the dataclass; ``--config FILE`` reads a run config."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from pathlib import Path

import pytest
from conftest import write_images

from ddim import config as config_module
from ddim.cli import argtypes, build_parser, config_options, main
from ddim.config import SECTIONS, ModelConfig, RunConfig, TrainConfig, option
from ddim.recipes import load_recipe

TINY = ModelConfig(image_size=16, widths=(8, 16), block_depth=1)
# The option names before the options were derived from the dataclasses (README's table and scripts use them).
EARLIER_OPTIONS = {
    "--image-size", "--widths", "--block-depth", "--embedding-dims", "--min-signal-rate", "--max-signal-rate",
    "--prediction", "--data", "--split-seed", "--train-fraction", "--repeats", "--cache-dir", "--train-images",
    "--validation-images", "--skip-unreadable", "--epochs", "--batch-size", "--lr", "--weight-decay", "--ema",
    "--ema-warmup", "--loss", "--max-steps", "--seed", "--device", "--plot-steps", "--plot-images", "--log-every",
    "--checkpoint-every", "--keep-checkpoints", "--kid-every", "--kid-steps", "--kid-image-size",
    "--inception-weights", "--eval-batch-size", "--precision", "--channels-last", "--compile", "--batchnorm"}
ADDED_OPTIONS = {"--embedding-min-frequency", "--embedding-max-frequency", "--adam-epsilon", "--kid-batch-size",
                 "--conditional", "--class-dropout", "--guidance",  # these three: class-conditional training
                 "--flip", "--ema-std", "--lr-schedule", "--lr-warmup-steps", "--lr-decay-steps",
                 "--lr-floor",  # these six: the levers of the better recipes
                 "--class-conditioning"}  # where a conditional network takes its class


def config_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's run-config options (their destination is ``section.field``), without the hidden ``--no-X``
    spelling of each yes/no one."""
    return [action for action in parser._actions if "." in action.dest and action.help is not argparse.SUPPRESS]


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_every_config_field_has_exactly_one_option_with_its_help() -> None:
    # every field a user sets; the class names are recorded from the data, never given
    recorded = {"model.class_names"}
    fields = [f"{section}.{spec.name}" for section, cls in SECTIONS.items() for spec in dataclasses.fields(cls)
              if f"{section}.{spec.name}" not in recorded]
    assert len(fields) == sum(len(dataclasses.fields(cls)) for cls in SECTIONS.values()) - len(recorded)
    actions = config_actions(parse("train").parser)
    assert sorted(action.dest for action in actions) == sorted(fields)  # one each, none twice
    names = [action.option_strings[0] for action in actions]
    assert len(names) == len(set(names)) == len(fields)
    assert set(names) == EARLIER_OPTIONS | ADDED_OPTIONS
    aliases = {alias: action.option_strings[0] for action in actions for alias in action.option_strings[1:]}
    assert aliases == {"--learning-rate": "--lr"}  # the spelled-out name a user types first
    for action in actions:
        assert action.default is argparse.SUPPRESS  # "not given" until given, so --resume can tell
        assert action.help.count("default:") == 1, action.help  # each default shown once
        assert "(default: None)" not in action.help and "(default: True)" not in action.help
        section, name = action.dest.split(".")
        assert config_options.CONFIG_OPTIONS[(section, name)][0] == action.option_strings[0]
    assert config_options.option_name("data.path") == "--data" and config_options.option_name("kid_batch_size") == "--kid-batch-size"


def test_help_shows_yes_no_and_comma_defaults(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for expected in ("--skip-unreadable [yes/no]", "stopping at the first (default: no)",
                     "--channels-last [yes/no] NHWC memory layout for the convolutions (default: yes)",
                     "(default: 32,64,96,128)", "--config FILE", "(default: $DDIM_CACHE_DIR or ~/.cache/ddim)"):
        assert expected in text
    assert "default: None" not in text and "default: False" not in text


def test_choices_come_from_the_config() -> None:
    choices = {action.dest: action.choices for action in config_actions(parse("train").parser) if action.choices}
    assert choices == {"model.prediction": config_module.PREDICTION_TARGETS, "train.loss": config_module.LOSSES,
                       "train.precision": config_module.PRECISIONS, "train.compile": config_module.COMPILE_MODES,
                       "train.batchnorm": config_module.BATCHNORM_MODES, "train.lr_schedule": config_module.LR_SCHEDULES,
                       "model.class_conditioning": config_module.CLASS_CONDITIONING}
    from ddim import runtime

    assert (runtime.PRECISIONS, runtime.COMPILE_MODES) == (config_module.PRECISIONS, config_module.COMPILE_MODES)


def test_the_argparse_type_comes_from_the_annotation() -> None:
    optional_float, optional_int = config_options.argument_type(float | None), config_options.argument_type(typing.Optional[int])
    assert optional_float("0.5") == 0.5 and optional_int("3") == 3  # parsed as the type, and 'none' is the default
    assert optional_float("none") is None and optional_int("None") is None
    assert (optional_float.__name__, optional_int.__name__) == ("float", "int")  # argparse's "invalid int value"
    assert config_options.argument_type(bool) is argtypes.yes_no
    assert config_options.argument_type(tuple[int, ...]) is argtypes.int_list
    with pytest.raises(TypeError, match="no command-line type"):
        config_options.argument_type(dict[str, int])


def test_a_new_optional_float_field_gets_its_option() -> None:
    """A ``float | None`` field added to (a copy of) a config section needs nothing but its declaration."""
    extended = dataclasses.make_dataclass(
        "ExtendedTrainConfig", [("grad_clip", float | None, option(None, "clip gradients to this norm (default: off)"))],
        bases=(TrainConfig,), frozen=True)
    parser = argparse.ArgumentParser()
    config_options.add_field_options(parser, extended, "train")
    args = parser.parse_args(["--grad-clip", "0.5", "--batch-size", "8"])
    assert vars(args) == {"train.grad_clip": 0.5, "train.batch_size": 8}
    assert parser.parse_args([]) == argparse.Namespace()  # nothing given, nothing set
    help_text = " ".join(parser.format_help().split())
    assert "clip gradients to this norm (default: off)" in help_text and "default: None" not in help_text


def test_the_options_that_had_none_before(tmp_path: Path, capsys) -> None:
    args = parse("train", "--embedding-min-frequency", "2", "--embedding-max-frequency", "500",
                 "--adam-epsilon", "1e-8", "--kid-batch-size", "32", "--skip-unreadable", "yes", "--channels-last", "no")
    config = config_options.config_from_args(args)
    assert (config.model.embedding_min_frequency, config.model.embedding_max_frequency) == (2.0, 500.0)
    assert (config.train.adam_epsilon, config.train.kid_batch_size) == (1e-8, 32)
    assert config.data.skip_unreadable and not config.train.channels_last
    for option_value, message in [(["--kid-batch-size", "1"], "--kid-batch-size: KID needs batches of at least 2"),
                                  (["--embedding-max-frequency", "0.5"], "--embedding-max-frequency: frequencies"),
                                  (["--adam-epsilon", "0"], "--adam-epsilon: must be positive")]:
        with pytest.raises(SystemExit) as exit_info:
            main(["train", "--data", str(tmp_path / "never-read"), "--run-dir", str(tmp_path / "run"), *option_value])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_config_file_is_the_base_and_the_command_line_overrides_it(tmp_path: Path) -> None:
    saved = RunConfig(model=TINY, train=TrainConfig(epochs=3, lr=2e-3, seed=5))
    saved.save(tmp_path / "config.json")
    args = parse("train", "--config", str(tmp_path / "config.json"), "--epochs", "7", "--widths", "8,32")
    assert config_options.given_options(args) == {("train", "epochs"): 7, ("model", "widths"): (8, 32)}
    config = config_options.config_from_args(args)
    assert config == dataclasses.replace(saved, model=dataclasses.replace(TINY, widths=(8, 32)),
                                         train=dataclasses.replace(saved.train, epochs=7))
    old = saved.to_dict()  # version 1 (no "version" key): PyTorch's weight decay, converted as for a resumed run
    del old["version"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    config = config_options.config_from_args(parse("train", "--config", str(tmp_path / "old.json")))
    assert config.train.weight_decay == pytest.approx(2e-3 * 1e-4, rel=1e-12) and config.model == TINY


def test_a_partial_config_file_keeps_the_other_defaults(tmp_path: Path) -> None:
    (tmp_path / "partial.json").write_text(json.dumps({"model": {"image_size": 32}, "train": {"epochs": 3}}))
    config = config_options.config_from_args(parse("train", "--config", str(tmp_path / "partial.json"), "--seed", "2"))
    assert config == RunConfig(model=ModelConfig(image_size=32), train=TrainConfig(epochs=3, seed=2))
    (tmp_path / "decay.json").write_text(json.dumps({"version": 2, "train": {"weight_decay": 1e-3}}))
    config = config_options.config_from_args(parse("train", "--config", str(tmp_path / "decay.json")))
    assert config == RunConfig(train=TrainConfig(weight_decay=1e-3))


@pytest.mark.parametrize("content, message", [
    (None, "cannot read it (No such file or directory)"),
    ("{not json", "not a ddim configuration file: is not valid JSON"),
    ("[1, 2]", "must be an object of sections"),
    ('{"model": 5}', "model: must be an object of fields, got int"),
    ('{"train": []}', "train: must be an object of fields, got list"),
    ('{"optimizer": {}}', "optimizer: unknown configuration section"),
    ('{"train": {"learning_rate": 1}}', "train.learning_rate: unknown configuration field"),
    ('{"train": {"batch_size": 0}}', "train.batch_size: must be a positive integer"),
    ('{"model": {"widths": 8}}', "model.widths: must be a list of integers"),
    ('{"train": {"weight_decay": 0.01}}', 'train.weight_decay is given without a "version"'),
    ("[" * 100_000 + "]" * 100_000, "nests too deep to be a file ddim wrote"),
    ('{"model": "\udcff"}', "is not UTF-8 text"),
])
def test_a_bad_config_file_is_a_clear_error(content: str | None, message: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_bytes(content.encode("utf-8", "surrogateescape"))  # \udcff: the single byte 0xff
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", str(path), "--run-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --config: {path}: " in err and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_config_and_resume_are_not_combined(tmp_path: Path, capsys) -> None:
    RunConfig().save(tmp_path / "config.json")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--resume", str(tmp_path / "run"), "--config", str(tmp_path / "config.json")])
    assert exit_info.value.code == 2
    assert "--config and --resume cannot be combined" in capsys.readouterr().err


def test_bench_takes_the_model_defaults_from_the_config() -> None:
    args = parse("bench", "--widths", "8,16")
    assert config_options.config_from_args(args).model == dataclasses.replace(ModelConfig(), widths=(8, 16))
    assert {action.dest for action in config_actions(args.parser)} == {"model.image_size", "model.widths",
                                                                       "model.block_depth", "model.conditional"}
    recipe = config_options.config_from_args(parse("bench", "--recipe", "improved", "--conditional"))
    assert recipe == dataclasses.replace(load_recipe("improved").config(),
                                         model=dataclasses.replace(ModelConfig(), conditional=True))


def test_a_run_trained_from_a_config_file_records_it_with_the_overrides(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 20, size=(20, 20))
    file_config = RunConfig(model=TINY, data=config_module.DataConfig(path=str(tmp_path / "imgs"),
                                                                      cache_dir=str(tmp_path / "cache")),
                            train=TrainConfig(batch_size=4, max_steps=1, kid_every=0, plot_images=4, plot_steps=2,
                                              device="cpu", seed=1))
    file_config.save(tmp_path / "base.json")
    assert main(["train", "--config", str(tmp_path / "base.json"), "--seed", "7", "--run-dir", str(tmp_path / "run"),
                 "--no-progress"]) == 0
    written = RunConfig.load(tmp_path / "run" / "config.json")
    assert written == dataclasses.replace(file_config, train=dataclasses.replace(file_config.train, seed=7))


@pytest.mark.parametrize("command, option, dest, default", [
    (["train", "--data", "x"], "conditional", "model.conditional", argparse.SUPPRESS),
    (["train", "--data", "x"], "flip", "data.flip", argparse.SUPPRESS),
    (["train", "--data", "x"], "progress", "progress", True),
    (["train", "--data", "x"], "tensorboard", "tensorboard", True),
    (["bench"], "channels-last", "channels_last", True),
    (["bench"], "sampling", "sampling", True),
    (["sample", "--checkpoint", "c", "--out", "o"], "overwrite", "overwrite", False),
    (["interpolate", "--checkpoint", "c", "--out", "o"], "progress", "progress", True),
    (["evaluate", "--checkpoint", "c"], "per-class", "per_class", False),
    (["study", "--checkpoint", "c", "--out", "o"], "recompute", "recompute", False),
])
def test_every_yes_no_option_takes_one_style_and_the_old_spellings(command: list[str], option: str, dest: str,
                                                                  default) -> None:
    def value(*extra: str):
        return getattr(parse(*command, *extra), dest, argparse.SUPPRESS)

    assert value() == default
    assert value(f"--{option}") is True and value(f"--{option}", "yes") is True and value(f"--{option}=on") is True
    assert value(f"--{option}", "no") is False and value(f"--no-{option}") is False
