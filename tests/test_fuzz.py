"""Fuzzing (Hypothesis): damaged config.json files and arbitrary option values never give a traceback or a
silently wrong result: exit 1 or 2 with one line naming the file or the option, or exit 0 with the intended model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import CONFIG, loaded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddim import checkpoint as ckpt
from ddim.cli import main
from ddim.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ddim.model import DiffusionModel

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) |
                           st.text(max_size=8), lambda inner: st.lists(inner, max_size=3) |
                           st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
FIELDS = [(section, name) for section, cls in SECTIONS.items() for name in cls.__dataclass_fields__]


@st.composite
def mutations(draw) -> tuple[str, tuple]:
    """One change to a config dictionary: drop, retype or add a key, or replace the whole document."""
    kind = draw(st.sampled_from(["drop_field", "drop_section", "set_field", "add_field", "replace", "set_section"]))
    if kind in ("drop_field", "set_field"):
        return kind, (draw(st.sampled_from(FIELDS)), draw(JSON_VALUES))
    if kind in ("drop_section", "set_section"):
        return kind, (draw(st.sampled_from([*SECTIONS, "version"])), draw(JSON_VALUES))
    if kind == "add_field":
        return kind, (draw(st.sampled_from([*SECTIONS, None])), draw(st.text(min_size=1, max_size=8)),
                      draw(JSON_VALUES))
    return kind, (draw(JSON_VALUES),)


def mutate(config: dict, mutation: tuple[str, tuple]):
    kind, args = mutation
    config = json.loads(json.dumps(config))
    if kind == "drop_field":
        (section, name), _ = args
        config[section].pop(name)
    elif kind == "set_field":
        (section, name), value = args
        config[section][name] = value
    elif kind == "drop_section":
        config.pop(args[0], None)
    elif kind == "set_section":
        config[args[0]] = args[1]
    elif kind == "add_field":
        section, name, value = args
        (config[section] if section else config)[name] = value
    else:
        return args[0]
    return config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = DiffusionModel(ModelConfig(image_size=16, widths=(8, 16), block_depth=1))
    config = RunConfig(model=model.config)
    return ckpt.write_checkpoint(tmp_path_factory.mktemp("fuzz") / "run" / "checkpoints" / "step_000000001",
                                 model, config, None)


def assert_clean_failure(code: int, err: str, names: tuple[str, ...]) -> None:
    assert code in (1, 2), code
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if not line.startswith("usage:") and line.startswith("ddim")]
    assert len(lines) == 1, err
    assert any(name in lines[0] for name in names), err


@FUZZ
@given(mutation=mutations())
def test_a_mutated_checkpoint_config_is_refused_by_name_or_loads_the_same_model(checkpoint: Path, tmp_path_factory,
                                                                                 mutation, capsys) -> None:
    folder = tmp_path_factory.mktemp("case") / "step_000000001"
    shutil.copytree(checkpoint, folder)
    original = json.loads((folder / CONFIG).read_text())
    (folder / CONFIG).write_text(json.dumps(mutate(original, mutation)))
    capsys.readouterr()
    code = main(["sample", "--checkpoint", str(folder), "--num", "1", "--steps", "1", "--device", "cpu",
                 "--out", str(folder.parent / "out")])
    err = capsys.readouterr().err
    if code == 0:  # accepted: it must be the very model the weights were written with
        _, config, _ = loaded(folder)
        assert config.model == RunConfig.from_dict(original).model
    else:
        assert_clean_failure(code, err, ("config.json", "model.safetensors"))


OPTIONS = {
    "train": ["--epochs", "--batch-size", "--lr", "--weight-decay", "--ema", "--widths", "--image-size",
              "--prediction", "--loss", "--seed", "--device", "--max-steps", "--kid-every", "--channels-last",
              "--train-fraction", "--compile", "--embedding-max-frequency", "--adam-epsilon", "--kid-batch-size"],
    "sample": ["--num", "--steps", "--seed", "--eta", "--sampler", "--batch-size", "--device", "--precision"],
    "evaluate": ["--num", "--steps", "--seed", "--kid-size", "--subsets", "--reference", "--batch-size"],
    "interpolate": ["--pairs", "--frames", "--steps", "--seed", "--frame-ms"],
    "invert": ["--num", "--steps"],
    "study": ["--evaluations", "--num", "--seed", "--kid-size", "--samplers"],
    "export": ["--dtype"],
}


@FUZZ
@given(data=st.data())
def test_any_option_value_gives_a_clean_error_naming_the_option_or_the_missing_input(tmp_path_factory, data,
                                                                                     capsys) -> None:
    command = data.draw(st.sampled_from(sorted(OPTIONS)))
    option = data.draw(st.sampled_from(OPTIONS[command]))
    value = data.draw(st.text(min_size=1, max_size=12) | st.integers(-10**12, 10**12).map(str) |
                      st.floats(allow_nan=True).map(str))
    where = tmp_path_factory.mktemp("cli")
    missing = str(where / "missing")  # every command then stops at its input: nothing heavy runs
    base = {"train": ["--data", missing, "--run-dir", str(where / "run")],
            "export": ["--checkpoint", missing, "--out", str(where / "m.safetensors")],
            "evaluate": ["--checkpoint", missing]}.get(command, ["--checkpoint", missing, "--out", str(where / "o")])
    capsys.readouterr()
    try:
        code = main([command, *base, f"{option}={value}"])
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert_clean_failure(code, err, (option, "missing"))


@pytest.fixture(scope="module")
def small_model(checkpoint: Path):
    import ddim

    return ddim.load(checkpoint, device="cpu")


API_VALUES = (st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=True) |
              st.text(max_size=6) | st.lists(st.integers(-3, 3), max_size=3))


@FUZZ
@given(data=st.data())
def test_any_api_argument_gives_an_image_batch_or_a_value_error_naming_it(small_model, data) -> None:
    """ddim.generate and ddim.interpolate with one argument replaced by anything: either the images the
    arguments ask for, or a ValueError/TypeError whose message names the argument; never NaN images, an empty
    batch, a hang or an error from deep inside."""
    import ddim

    call = data.draw(st.sampled_from(["generate", "interpolate"]))
    names = {"generate": ["num", "steps", "seed", "batch_size", "guidance", "eta", "classes"],
             "interpolate": ["seed", "start", "end", "frames", "steps", "guidance", "classes"]}[call]
    name = data.draw(st.sampled_from(names))
    value = data.draw(API_VALUES | st.sampled_from([0, -1, 1, 2, 10**6, 10**7, float("nan"), float("inf"), 1e30,
                                                    -5.0, True, "3"]))
    arguments = {"generate": {"num": 1, "steps": 1}, "interpolate": {"frames": 2, "steps": 1}}[call]
    arguments[name] = value
    if (name in ("num", "frames", "batch_size", "steps") and isinstance(value, int) and not isinstance(value, bool)
            and value > 64) or (name in ("start", "end") and isinstance(value, int) and value > 10**5):
        arguments[name] = 10**12  # far past every bound: refused at once, never drawn
    try:
        images = getattr(ddim, call)(small_model, **arguments)
    except (ValueError, TypeError) as error:
        message = str(error)
        shown = {"batch_size": "batch_size", "classes": "class"}.get(name, name)
        assert shown in message or (name == "classes" and "unconditional" in message), message
        assert len(message) < 400 and "\n" not in message
        return
    assert images.dim() == 4 and images.shape[0] >= 1 and torch.isfinite(images).all()
    assert 0 <= images.min() and images.max() <= 1
