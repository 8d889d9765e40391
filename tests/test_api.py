"""The Python API: the README's example runs as written; fit and evaluate work through the commands' code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import REPO, write_images

import ddim


def readme_example() -> str:
    """The first python block of the README's "Python API" section."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def builtin_or_stand_in(name: str, tmp_path: Path, monkeypatch) -> Path:
    """The built-in model ``name``, or, in a checkout that does not ship it yet, a stand-in of the same shape (a
    64 px unconditional model with narrow widths, exported as the built-in file would be) so the API's path is
    still tested."""
    from ddim import export
    from ddim.config import ModelConfig, RunConfig
    from ddim.model import DiffusionModel

    if export.BUILTIN_MODELS[name].is_file():
        return export.BUILTIN_MODELS[name]
    model = DiffusionModel(ModelConfig(widths=(8, 16)))
    stand_in = export.export_model(model, RunConfig(model=model.config), tmp_path / "stand-in.safetensors")
    monkeypatch.setitem(export.BUILTIN_MODELS, name, stand_in)
    return stand_in


@pytest.fixture
def pretrained(tmp_path: Path, monkeypatch) -> Path:
    """The default built-in model (conditional or not), or its stand-in."""
    return builtin_or_stand_in("pretrained", tmp_path, monkeypatch)


@pytest.fixture
def keras_example(tmp_path: Path, monkeypatch) -> Path:
    """The Keras example's built-in model (unconditional, whichever model ``pretrained`` names), or its stand-in."""
    return builtin_or_stand_in("keras-example", tmp_path, monkeypatch)


def test_the_readme_example_runs_as_written(tmp_path: Path, monkeypatch, pretrained: Path) -> None:
    code = readme_example()
    assert len([line for line in code.splitlines() if line.strip()]) <= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    images = namespace["images"]
    assert images.shape == (16, 3, 64, 64) and 0 <= images.min() and images.max() <= 1
    assert (tmp_path / "flowers.png").is_file()


def test_generate_is_reproducible_and_takes_every_sampler(pretrained: Path) -> None:
    model = ddim.load("pretrained")
    first = ddim.generate(model, 2, steps=2, seed=3)
    assert torch.equal(first, ddim.generate(model, 2, steps=2, seed=3, batch_size=1))
    for sampler, options in [("ddpm", {}), ("dpmpp-2m", {}), ("heun", {}), ("ddim", {"eta": 1.0})]:
        assert ddim.generate(model, 1, steps=2, sampler=sampler, **options).shape == (1, 3, 64, 64)


def test_fit_writes_the_commands_artefacts_and_evaluate_reports_kid_and_fid(tmp_path: Path, capsys) -> None:
    images = tmp_path / "images"
    write_images(images, 40, size=(20, 18))
    run_dir = tmp_path / "run"
    model, state = ddim.fit(run_dir, data=images, image_size=16, widths=(8, 16), block_depth=1, batch_size=8,
                            repeats=1, epochs=1, kid_every=0, plot_images=4, plot_steps=2, device="cpu",
                            progress=False)
    assert state.step == 4
    for name in ("config.json", "history.csv", "losses.png", "metrics.jsonl", "samples/epoch_0001.png"):
        assert (run_dir / name).exists(), name
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    loaded = ddim.load(run_dir)
    assert loaded.run_config.model.widths == (8, 16)
    results = ddim.evaluate(loaded, num=8, steps=2, kid_size=75)
    assert {"kid", "kid_std", "fid"} <= set(results) and results["num_generated"] == 8
    # a resume continues with the run's own saved configuration (not the defaults, which would fetch Flowers 102)
    capsys.readouterr()
    _, state = ddim.fit(run_dir, resume=True, epochs=2, progress=False, tensorboard=False)
    assert state.step == 8 and ddim.load(run_dir).run_config.train.epochs == 2
    said = capsys.readouterr().err  # what to do next, in Python for a Python caller
    assert f"next: model = ddim.load({str(run_dir)!r})" in said and "ddim sample" not in said


def test_fit_refuses_to_resume_what_is_not_a_run(tmp_path: Path) -> None:
    from ddim.integrity import CheckpointError
    from ddim.training import TrainingError

    with pytest.raises(CheckpointError, match=f"cannot resume {tmp_path / 'missing'}: there is no such folder"):
        ddim.fit(tmp_path / "missing", resume=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match="holds no config.json, so it is not a ddim run folder"):
        ddim.fit(tmp_path / "empty", ddim.config_with(data=str(tmp_path)), resume=True)
    assert list((tmp_path / "empty").iterdir()) == []  # nothing trained from scratch there


@pytest.fixture(scope="module")
def conditional():
    from ddim.config import ModelConfig
    from ddim.model import DiffusionModel

    return DiffusionModel(ModelConfig(image_size=16, widths=(8, 16), block_depth=1, conditional=True,
                                     class_names=("rose", "tulip")))


@pytest.mark.parametrize("arguments, says", [
    ({"num": -1}, "num must be between 1 and 1,000,000, got -1"),
    ({"num": 0}, "num must be between 1 and"),
    ({"batch_size": -1}, "batch_size must be between 1 and"),
    ({"steps": 10**6}, "steps must be between 1 and 10,000, got 1,000,000"),
    ({"eta": float("nan")}, "eta must be a finite number >= 0, got nan"),
    ({"guidance": float("nan")}, "guidance must be a number from 0 to 20, got nan"),
    ({"guidance": -5}, "guidance must be a number from 0 to 20, got -5"),
    ({"guidance": 1e30}, "guidance must be a number from 0 to 20, got 1e+30"),
    ({"classes": True}, "a class is a name or an index, got True"),
    ({"classes": [True, 0]}, "a class is a name or an index, got True"),
    ({"seed": -1}, "seed must be between 0 and"),
    ({"seed": 1.5}, "seed must be a whole number, got 1.5"),
    ({"tau": 1}, "unknown sampler option 'tau'"),
])
def test_generate_refuses_out_of_bounds_values_naming_them(conditional, arguments: dict, says: str) -> None:
    with pytest.raises((ValueError, TypeError), match=re.escape(says)):
        ddim.generate(conditional, **{"num": 2, "steps": 1, **arguments})


def test_interpolate_refuses_out_of_bounds_values_naming_them(conditional) -> None:
    for arguments, says in [({"frames": 1}, "frames must be between 2 and 240, got 1"),
                            ({"frames": 10**9}, "frames must be between 2 and 240"),
                            ({"start": -1}, "start must be between 0 and"),
                            ({"guidance": float("inf")}, "guidance must be a number from 0 to 20, got inf")]:
        with pytest.raises(ValueError, match=re.escape(says)):
            ddim.interpolate(conditional, **{"steps": 1, **arguments})
    images = ddim.interpolate(conditional, frames=2, steps=1, classes="tulip", guidance=2)
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()


def test_config_with_names_fields_across_sections() -> None:
    config = ddim.config_with(epochs=3, data="somewhere", widths=(16, 32), ema_warmup=True)
    assert (config.train.epochs, config.data.path, config.model.widths, config.train.ema_warmup) == \
        (3, "somewhere", (16, 32), True)
    with pytest.raises(TypeError, match="'epoch' is not a configuration field"):
        ddim.config_with(epoch=3)


def test_interpolate_matches_the_command_and_reaches_both_ends(keras_example: Path) -> None:
    from ddim.interpolation import interpolate as interpolate_noises
    from ddim.runtime import resolve_runtime

    model = ddim.load(keras_example)
    frames = ddim.interpolate(model, seed=3, start=0, end=1, frames=4, steps=3)
    assert frames.shape == (4, 3, 64, 64) and 0.0 <= frames.min() and frames.max() <= 1.0
    same = interpolate_noises(model, seed=3, start_index=0, end_index=1, frames=4, steps=3,
                              runtime=resolve_runtime("cpu"))  # the API's runtime settings (bf16 where the CPU has it)
    assert torch.equal(frames, same)
    ends = ddim.generate(model, 2, steps=3, seed=3)  # frame 0 is image 0 of the seed, the last frame image 1
    assert torch.allclose(frames[0], ends[0], atol=1e-5) and torch.allclose(frames[-1], ends[1], atol=1e-5)
    with pytest.raises(ValueError, match="frames must be between 2 and 240, got 1"):
        ddim.interpolate(model, frames=1)
    assert model.class_names == ()
