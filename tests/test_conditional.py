"""Class-conditional training with classifier-free guidance: a tiny model really learns to draw the asked class.

The data: red discs and blue squares on grey backgrounds (one subfolder per class). The class of a generated
image is read from its colour: red minus blue over the image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    CONFIG,
    WEIGHTS,
    redness,
    step_checkpoints,
    write_images,
    write_shapes,
)
from conftest import SHAPE_CLASSES as CLASSES
from PIL import Image

import ddim
from ddim.classes import ClassError, class_index, labels_for
from ddim.cli import main
from ddim.config import DataConfig, ModelConfig, RunConfig
from ddim.data import load_splits
from ddim.data.images import list_images, load_images
from ddim.diffusion import guided, make_denoiser
from ddim.export import export_model
from ddim.model import DiffusionModel
from ddim.network import NO_CLASS, ResidualBlock, UNet, count_parameters

TRAIN = ["--conditional", "--widths", "16,32", "--block-depth", "1", "--image-size", "16", "--batch-size", "16",
         "--repeats", "1", "--kid-every", "0", "--plot-images", "4", "--plot-steps", "3", "--device", "cpu",
         "--epochs", "1000", "--ema-warmup", "yes", "--lr", "3e-3", "--no-progress", "--no-tensorboard"]
STEPS = 400  # 96 images, 77 for training: 4 steps of 16 an epoch; about 30 s on an idle 2-core CPU


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("shapes") / "data")


@pytest.fixture(scope="module")
def trained(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny conditional model trained through the CLI for a few hundred steps."""
    run_dir = tmp_path_factory.mktemp("conditional") / "run"
    assert main(["train", "--data", str(shapes), "--run-dir", str(run_dir), "--max-steps", str(STEPS), *TRAIN]) == 0
    return run_dir


def sample_rates(run_dir: Path, out: Path, guidance: float) -> tuple[dict[str, float], np.ndarray]:
    """Through ``ddim sample``: the share of images of each asked class that read as that class, and the images."""
    assert main(["sample", "--checkpoint", str(run_dir), "--num", "48", "--class", "red discs", "0", "--steps", "10",
                 "--guidance", str(guidance), "--format", "npz", "--out", str(out), "--no-progress"]) == 0
    with np.load(out / "samples.npz") as data:
        images, labels = data["images"], data["labels"]
    assert labels.tolist() == [1] * 48 + [0] * 48  # one block of --num per asked class, in the order asked
    red = redness(images) > 0
    return {"red discs": float(red[labels == 1].mean()), "blue squares": float((~red[labels == 0]).mean())}, images


def test_class_signal_finds_what_the_trained_model_learned_of_its_classes(trained: Path, capsys) -> None:
    """scripts/class_signal.py: on the toy model, which draws the asked class (test below), telling it the true class
    denoises better than a wrong one; an untrained conditional model scores about 0."""
    from test_results_section import load_script

    probe = load_script("class_signal")
    assert probe.main([str(trained), "--num", "16", "--times", "0.6"]) == 0
    row = capsys.readouterr().out.splitlines()[-1]
    gain = float(row.split("|")[-2].strip().rstrip("%"))
    assert gain > 10.0, row  # measured: 27%
    from ddim.loading import load_model

    fresh = DiffusionModel(load_model(trained).config).eval()  # the same network, untrained
    fresh.normalizer.load_state_dict(load_model(trained).normalizer.state_dict())
    images, labels = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 2
    assert abs(probe.class_errors(fresh, images, labels, 0.6)["gain"]) < 0.5 * gain / 100


def test_the_model_draws_the_asked_class_far_more_often_than_chance_and_guidance_raises_it(
        trained: Path, tmp_path: Path) -> None:
    plain, images = sample_rates(trained, tmp_path / "w1", 1.0)
    strong, _ = sample_rates(trained, tmp_path / "w3", 3.0)
    plain_rate, strong_rate = np.mean(list(plain.values())), np.mean(list(strong.values()))
    assert plain_rate >= 0.85, plain  # chance: 0.5 (scripts/guidance_check.py: 0.97; 0.78 with input conditioning)
    assert strong_rate >= plain_rate and strong_rate >= 0.95, (plain, strong)
    assert not np.array_equal(images[:48], images[48:])  # the same noises, another class: other images
    _, unguided = sample_rates(trained, tmp_path / "w0", 0.0)  # w = 0 ignores the class: the same images
    assert np.array_equal(unguided[:48], unguided[48:])
    settings = json.loads((tmp_path / "w3" / "sample.json").read_text())
    assert settings["guidance"] == 3.0 and [c["class"] for c in settings["classes"]] == ["red discs", "blue squares"]


def test_class_names_round_trip_through_checkpoints_and_export(trained: Path, tmp_path: Path) -> None:
    model = ddim.load(trained)
    assert model.class_names == CLASSES and model.run_config.model.conditional
    config = json.loads((step_checkpoints(trained)[-1] / CONFIG).read_text())
    assert config["model"]["class_names"] == list(CLASSES)
    assert main(["export", "--checkpoint", str(trained), "--dtype", "fp32", "--out", str(tmp_path / "m.safetensors")]) == 0
    exported = ddim.load(tmp_path / "m.safetensors")
    assert exported.class_names == CLASSES
    a = ddim.generate(model, 2, steps=3, classes="Red Discs", guidance=2.0)
    b = ddim.generate(exported, 2, steps=3, classes=1, guidance=2.0)
    assert torch.equal(a, b)


def test_every_sampler_takes_guidance_and_one_call_can_mix_classes(trained: Path) -> None:
    model = ddim.load(trained)
    mixed = ddim.generate(model, 4, steps=3, classes=["red discs", "blue squares", 1, 0], guidance=2.0)
    separately = torch.cat([ddim.generate(model, 1, steps=3, classes=c, guidance=2.0, seed=0) for c in (1,)])
    assert torch.allclose(mixed[:1], separately, atol=1e-5)  # image 0 of seed 0, class 1, either way
    for sampler, extra in [("ddpm", {}), ("dpmpp-2m", {}), ("heun", {}), ("ddim", {"eta": 1.0})]:
        images = ddim.generate(model, 2, steps=3, sampler=sampler, classes="red discs", guidance=3.0, **extra)
        assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()
    in_turn = ddim.generate(model, 4, steps=2, guidance=2.0)  # no class asked: the classes in turn
    assert torch.equal(in_turn, ddim.generate(model, 4, steps=2, classes=[0, 1, 0, 1], guidance=2.0))
    ddim.generate(model, 2, steps=2, guidance=0)  # any class: the unconditional prediction


def test_the_per_epoch_grid_shows_one_labelled_row_per_class(trained: Path) -> None:
    grid = Image.open(sorted((trained / "samples").glob("epoch_*.png"))[-1])
    # 2 classes x 2 images of 16 px with 2 px gaps, and a 96 px column of class names on the left
    assert grid.size == (96 + 2 + 2 * 18, 2 + 2 * 18)
    column = np.asarray(grid.convert("L"))[:, :96]
    assert (column < 128).any(axis=1)[2:18].any() and (column < 128).any(axis=1)[20:36].any()  # a name per row


def test_with_guidance_0_the_grid_rows_are_drawn_at_1_and_the_kid_stays_unconditional(shapes: Path, tmp_path: Path,
                                                                                     monkeypatch) -> None:
    """``--guidance 0`` (an unconditional per-epoch KID) would make every class row of the grid the same images."""
    from ddim.training import callbacks, loop

    drawn = []
    for module, name in ((callbacks, "generate_images"), (loop, "keras_kid")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _o=original, _n=name, **k:
                            drawn.append((_n, k.get("guidance"), k.get("labels") is not None)) or _o(*a, **k))
    options = [*TRAIN, "--kid-every", "1", "--kid-steps", "2", "--kid-image-size", "75", "--guidance", "0"]
    assert main(["train", "--data", str(shapes), "--run-dir", str(tmp_path / "run"), "--max-steps", "4", *options]) == 0
    assert drawn == [("keras_kid", 0.0, True), ("generate_images", 1.0, True)]  # the KID, then the grid's class rows


def test_the_api_evaluates_a_class_at_a_guidance_as_the_command_does(trained: Path, tmp_path: Path) -> None:
    import ddim

    assert main(["evaluate", "--checkpoint", str(trained), "--class", "red discs", "--guidance", "2", "--steps", "2",
                 "--kid-size", "75", "--json", str(tmp_path / "e.json"), "--no-progress"]) == 0
    command = json.loads((tmp_path / "e.json").read_text())
    model = ddim.load(trained, device="cpu")
    result = ddim.evaluate(model, classes="Red Discs", guidance=2, steps=2, kid_size=75)
    assert (result["kid"], result["fid"], result["num_real"]) == (command["kid"], command["fid"], 10)
    assert result["kid"] != ddim.evaluate(model, classes="red discs", steps=2, kid_size=75)["kid"]  # guidance 1
    with pytest.raises(ClassError, match="did you mean"):
        ddim.evaluate(model, classes="red disks", steps=2, kid_size=75)


def test_evaluate_interpolate_and_study_take_a_class(trained: Path, tmp_path: Path, capsys) -> None:
    assert main(["evaluate", "--checkpoint", str(trained), "--class", "red discs", "--per-class", "--steps", "2",
                 "--kid-size", "75", "--subsets", "5", "--json", str(tmp_path / "e.json"), "--no-progress"]) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["class"] == "red discs" and result["num_real"] == 10  # the red discs among the validation images
    assert [row["class"] for row in result["per_class"]] == list(CLASSES)
    assert all(row["num_real"] == 10 and row["kid"] is not None for row in result["per_class"])
    assert "class   1 red discs" in capsys.readouterr().out
    assert main(["interpolate", "--checkpoint", str(trained), "--class", "1", "--guidance", "2", "--pairs", "1",
                 "--frames", "3", "--steps", "2", "--out", str(tmp_path / "i")]) == 0
    assert json.loads((tmp_path / "i" / "interpolate.json").read_text())["class"] == "red discs"
    assert main(["study", "--checkpoint", str(trained), "--class", "blue squares", "--samplers", "ddim",
                 "--evaluations", "2", "--subsets", "5", "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    rows = json.loads((tmp_path / "s" / "study.json").read_text())["points"]
    assert rows[0]["class"] == "blue squares" and rows[0]["num_real"] == 10


def test_unknown_classes_and_classes_of_unconditional_models_are_refused_clearly(
        trained: Path, tmp_path: Path, capsys) -> None:
    code = main(["sample", "--checkpoint", str(trained), "--class", "red disc", "--out", str(tmp_path / "a")])
    assert code == 2 and "has no class 'red disc'; did you mean 'red discs'?" in capsys.readouterr().err
    code = main(["sample", "--checkpoint", str(trained), "--class", "7", "--out", str(tmp_path / "b")])
    assert code == 2 and "class index 7 is outside 0..1" in capsys.readouterr().err
    unconditional = tmp_path / "plain.safetensors"
    model = DiffusionModel(ModelConfig(image_size=16, widths=(8, 16), block_depth=1))
    export_model(model, RunConfig(model=model.config), unconditional)
    for extra in (["--class", "roses"], ["--guidance", "3"]):
        code = main(["sample", "--checkpoint", str(unconditional), *extra, "--out", str(tmp_path / "c")])
        err = capsys.readouterr().err
        assert code == 2 and "unconditional" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()


def test_class_names_match_case_insensitively_and_suggest_close_ones() -> None:
    names = ("pink primrose", "sunflower", "rose", "garden phlox")
    assert class_index(names, "SunFlower") == 1 and class_index(names, "  garden   phlox ") == 3
    assert class_index(names, 2) == 2 and class_index(names, "0") == 0
    with pytest.raises(ClassError, match="did you mean 'sunflower'"):
        class_index(names, "sunflowers")
    with pytest.raises(ClassError, match="did you mean 'garden phlox'"):
        class_index(names, "phlox")
    assert labels_for(names, "rose", 3) == [2, 2, 2]
    assert labels_for(names, None, 6) == [0, 1, 2, 3, 0, 1]  # no class asked: the classes in turn (the one policy)
    assert labels_for((), None, 3) is None  # an unconditional model takes none
    with pytest.raises(ClassError, match="2 classes given for 3 images"):
        labels_for(names, ["rose", 1], 3)


def test_training_needs_labels_and_two_images_a_class(tmp_path: Path, capsys) -> None:
    flat = tmp_path / "flat"
    write_images(flat, 8)
    assert main(["train", "--data", str(flat), "--run-dir", str(tmp_path / "r1"), *TRAIN]) == 1
    assert "outside class subfolders" in capsys.readouterr().err
    lonely = write_shapes(tmp_path / "lonely", per_class=4)
    (lonely / "violets").mkdir()
    Image.new("RGB", (16, 16), (90, 0, 120)).save(lonely / "violets" / "only.png")
    assert main(["train", "--data", str(lonely), "--run-dir", str(tmp_path / "r2"), *TRAIN]) == 1
    err = capsys.readouterr().err
    assert "class 'violets'" in err and "needs at least two" in err and "Traceback" not in err


def test_a_folder_split_by_class_keeps_every_class_on_both_sides_and_the_plain_split_is_unchanged(
        shapes: Path) -> None:
    config = DataConfig(path=str(shapes))
    by_class = load_splits(config, 16, classes=True)
    assert by_class.class_names == CLASSES
    for labels in (by_class.train_labels, by_class.validation_labels):
        assert sorted(set(labels.tolist())) == [0, 1]
    assert np.bincount(by_class.validation_labels).tolist() == [10, 10]  # 48 a class, 80/20
    assert set(by_class.train_labels[:8].tolist()) == {0, 1}  # the first N train images mix the classes
    plain = load_splits(config, 16)  # without classes, the split is the one a plain folder always had
    images, _, _ = load_images(list_images(shapes), 16)
    order = np.random.default_rng(42).permutation(96)
    assert np.array_equal(plain.validation, images[np.sort(order[77:])]) and plain.train_labels is None


def test_the_default_network_is_unchanged_and_draws_no_extra_random_numbers() -> None:
    default = UNet(ModelConfig())
    assert count_parameters(default) == 1_950_627 and not hasattr(default, "class_embedding")
    names = tuple(f"c{i}" for i in range(102))
    conditional = UNet(ModelConfig(conditional=True, class_names=names, class_conditioning="input"))
    assert count_parameters(conditional) == 1_950_627 + 103 * 32  # one embedding row per class and "no class"
    every_block = UNet(ModelConfig(conditional=True, class_names=names))  # the default: also a projection per block
    blocks = 2 * 3 + 2 + 2 * 3  # down, middle, up residual blocks of widths (32, 64, 96, 128) at depth 2
    widths = 2 * (32 + 64 + 96) + 2 * 128 + 2 * (96 + 64 + 32)
    assert sum(1 for m in every_block.modules() if isinstance(m, ResidualBlock) and m.condition is not None) == blocks
    assert count_parameters(every_block) == 1_950_627 + 103 * 32 + 32 * widths
    with pytest.raises(ValueError, match="unconditional"):
        default(torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 1, 1), torch.zeros(1, dtype=torch.long))
    # an unconditional training step draws only the noise and times: the random stream is the seed's
    from ddim.runtime import resolve_runtime
    from ddim.training.step import TrainStep, build_optimizer, draw_noise

    config = RunConfig(model=ModelConfig(image_size=16, widths=(8, 16), block_depth=1))
    model = DiffusionModel(config.model)
    runtime = resolve_runtime(torch.device("cpu"), "fp32", False, "off")
    step = TrainStep(model, build_optimizer(model, config, runtime), config, runtime)
    images = torch.rand(4, 3, 16, 16)
    used, expected = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    step(images, used)
    draw_noise(images, expected)
    assert torch.equal(used.get_state(), expected.get_state())


@pytest.mark.parametrize("conditioning", ["every-block", "input"])
def test_a_conditional_network_with_a_zero_class_embedding_is_the_unconditional_network(conditioning: str) -> None:
    names = ("a", "b", "c")
    plain = UNet(ModelConfig(image_size=16, widths=(8, 16), block_depth=1)).eval()
    conditional = UNet(ModelConfig(image_size=16, widths=(8, 16), block_depth=1, conditional=True,
                                   class_names=names, class_conditioning=conditioning)).eval()
    state = plain.state_dict()
    projections = {name: value for name, value in conditional.state_dict().items() if ".condition." in name}
    assert bool(projections) == (conditioning == "every-block")
    conditional.load_state_dict({**state, **projections, "class_embedding.weight": torch.zeros(4, 32)})
    x, variances = torch.randn(3, 3, 16, 16), torch.rand(3, 1, 1, 1)
    with torch.no_grad():
        expected = plain(x, variances)
        assert torch.equal(conditional(x, variances, torch.tensor([0, 2, NO_CLASS])), expected)
        assert torch.equal(conditional(x, variances), expected)  # no labels: "no class"


def test_guidance_combines_one_batched_pass_as_two_separate_ones() -> None:
    torch.manual_seed(0)
    network = UNet(ModelConfig(image_size=16, widths=(8, 16), block_depth=1, conditional=True,
                               class_names=("a", "b"))).eval()
    x, rates = torch.randn(2, 3, 16, 16), torch.full((2, 1, 1, 1), 0.6)
    signal = (1 - rates**2).sqrt()
    labels = torch.tensor([1, 0])
    calls = []

    def counted(*args):
        calls.append(args[0].shape[0])
        return network(*args)

    with torch.no_grad():
        conditional = network(x, rates**2, labels)
        unconditional = network(x, rates**2, torch.full_like(labels, NO_CLASS))
        for weight in (0.0, 1.0, 2.5):
            calls.clear()
            noises, _ = make_denoiser(counted, "noise", labels=labels, guidance=weight)(x, rates, signal)
            assert torch.allclose(noises, guided(conditional, unconditional, weight), atol=1e-5)
            assert calls == ([4] if weight == 2.5 else [2])  # one forward pass, doubled only when it must be
    assert torch.equal(guided(torch.ones(1), torch.zeros(1), 3.0), torch.full((1,), 3.0))


def test_a_conditional_run_resumes_bit_identically(shapes: Path, tmp_path: Path) -> None:
    def weights(run_dir: Path) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file
        return load_file(str(step_checkpoints(run_dir)[-1] / WEIGHTS))

    common = ["--data", str(shapes), *TRAIN, "--epochs", "2", "--checkpoint-every", "2"]
    assert main(["train", "--run-dir", str(tmp_path / "straight"), *common]) == 0
    assert main(["train", "--run-dir", str(tmp_path / "resumed"), *common, "--max-steps", "7"]) == 0
    assert main(["train", "--resume", str(tmp_path / "resumed"), "--max-steps", "12", "--no-progress"]) == 0
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and "network.class_embedding.weight" in a
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_a_checkpoint_of_a_conditional_model_without_its_class_names_is_refused_in_one_line(
        trained: Path, tmp_path: Path, capsys) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    for path in copy.rglob(CONFIG):
        config = json.loads(path.read_text())
        config["model"]["class_names"] = []
        path.write_text(json.dumps(config))
    assert main(["sample", "--checkpoint", str(copy), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "class_names" in err and len(err.strip().splitlines()) == 1
