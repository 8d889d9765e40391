"""Samplers (DDIM with eta, DDPM, DPM-Solver++(2M), Heun), inversion, interpolation, prediction targets."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddim.cli import main
from ddim.config import ModelConfig
from ddim.diffusion import Schedule
from ddim.interpolation import slerp
from ddim.model import DiffusionModel, generate_images
from ddim.samplers import (SAMPLERS, ImageNoise, ddim, ddim_invert, ddpm, network_evaluations,
                           steps_for_evaluations)

SCHEDULE = Schedule()


def oracle(clean: torch.Tensor):
    """A perfect denoiser for a single known image per slot: the true noise of x_t and the true x0."""
    def denoise(noisy_images, noise_rates, signal_rates):
        return (noisy_images - signal_rates * clean) / noise_rates, clean.expand_as(noisy_images)
    return denoise


def gaussian_denoiser(variance: float):
    """The exact posterior-mean denoiser for data ~ N(0, variance I): x0_hat = s c^2 / (s^2 c^2 + n^2) x_t."""
    def denoise(noisy_images, noise_rates, signal_rates):
        pred_images = signal_rates * variance / (signal_rates**2 * variance + noise_rates**2) * noisy_images
        return (noisy_images - signal_rates * pred_images) / noise_rates, pred_images
    return denoise


def sampler_kwargs(name: str, seed: int = 0, count: int = 4, shape=(3, 8, 8)) -> dict:
    return {"noise": ImageNoise(seed, range(count), shape)} if name in ("ddpm",) else {}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("steps", [1, 2, 5, 20])
def test_every_sampler_recovers_the_clean_images_with_an_oracle(name: str, steps: int) -> None:
    generator = torch.Generator().manual_seed(steps)
    clean = torch.randn(4, 3, 8, 8, generator=generator)
    latents = torch.randn(4, 3, 8, 8, generator=generator)
    images = SAMPLERS[name](oracle(clean), latents, steps=steps, schedule=SCHEDULE, **sampler_kwargs(name))
    torch.testing.assert_close(images, clean, rtol=1e-5, atol=1e-5)


def test_stochastic_ddim_with_an_oracle_also_recovers_the_clean_images() -> None:
    clean, latents = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    images = ddim(oracle(clean), latents, steps=10, schedule=SCHEDULE, eta=0.7, noise=ImageNoise(0, range(4), (3, 8, 8)))
    torch.testing.assert_close(images, clean, rtol=1e-5, atol=1e-5)


def counting(denoiser):
    calls = []

    def wrapped(*args):
        calls.append(1)
        return denoiser(*args)
    return wrapped, calls


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_network_evaluation_counts(name: str) -> None:
    for steps in (1, 3, 10):
        denoiser, calls = counting(gaussian_denoiser(1.0))
        SAMPLERS[name](denoiser, torch.randn(4, 3, 8, 8), steps=steps, schedule=SCHEDULE, **sampler_kwargs(name))
        assert len(calls) == network_evaluations(name, steps)
        assert steps_for_evaluations(name, len(calls)) == steps
    for budget in range(1, 60):  # the most steps within any budget
        steps = steps_for_evaluations(name, budget)
        assert network_evaluations(name, steps) <= budget < network_evaluations(name, steps + 1)
    with pytest.raises(ValueError, match="at least 1"):
        steps_for_evaluations(name, 0)


def test_eta_zero_is_deterministic_and_eta_positive_is_not() -> None:
    denoiser, latents = gaussian_denoiser(1.0), torch.randn(4, 3, 8, 8)
    first = ddim(denoiser, latents, steps=8, schedule=SCHEDULE, eta=0.0)
    assert torch.equal(first, ddim(denoiser, latents, steps=8, schedule=SCHEDULE, eta=0.0))
    stochastic = [ddim(denoiser, latents, steps=8, schedule=SCHEDULE, eta=1.0, noise=ImageNoise(seed, range(4), (3, 8, 8)))
                  for seed in (1, 1, 2)]
    assert torch.equal(stochastic[0], stochastic[1])  # the same noise seed reproduces
    assert not torch.equal(stochastic[0], stochastic[2])  # another seed gives other images
    assert not torch.allclose(stochastic[0], first)
    with pytest.raises(ValueError, match="stochastic"):
        ddim(denoiser, latents, steps=8, schedule=SCHEDULE, eta=0.5)


def test_ddpm_equals_ddim_with_eta_one_given_the_same_noise() -> None:
    """DDIM's eta = 1 is DDPM's posterior (Song et al. 2021, sec. 4.1): same noise, same images."""
    denoiser, latents = gaussian_denoiser(0.8), torch.randn(4, 3, 8, 8)
    a = ddpm(denoiser, latents, steps=12, schedule=SCHEDULE, noise=ImageNoise(5, range(4), (3, 8, 8)))
    b = ddim(denoiser, latents, steps=12, schedule=SCHEDULE, eta=1.0, noise=ImageNoise(5, range(4), (3, 8, 8)))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_higher_order_samplers_converge_faster_on_exact_gaussian_data() -> None:
    """With the exact denoiser for Gaussian data the probability-flow ODE has a closed form; the
    second-order solvers' error at few evaluations is below DDIM's (first order)."""
    variance, latents = 0.5, torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    denoiser = gaussian_denoiser(variance)
    reference = ddim(denoiser, latents, steps=2000, schedule=SCHEDULE)
    errors = {name: (SAMPLERS[name](denoiser, latents, steps=steps_for_evaluations(name, 9), schedule=SCHEDULE)
                     - reference).abs().mean().item() for name in ("ddim", "dpmpp-2m", "heun")}
    assert errors["dpmpp-2m"] < errors["ddim"] and errors["heun"] < errors["ddim"]


def test_inversion_with_an_oracle_is_exact() -> None:
    clean = torch.randn(4, 3, 8, 8)
    for steps in (1, 4, 25):
        latents = ddim_invert(oracle(clean), clean, steps=steps, schedule=SCHEDULE)
        torch.testing.assert_close(ddim(oracle(clean), latents, steps=steps, schedule=SCHEDULE), clean,
                                   rtol=1e-5, atol=1e-5)


def test_inversion_error_shrinks_with_more_steps() -> None:
    denoiser = gaussian_denoiser(0.5)
    clean = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 0.5**0.5
    errors = [(ddim(denoiser, ddim_invert(denoiser, clean, steps=s, schedule=SCHEDULE), steps=s, schedule=SCHEDULE)
               - clean).abs().mean().item() for s in (2, 10, 50)]
    assert errors[0] > errors[1] > errors[2]


def test_slerp_keeps_the_endpoints_and_the_norm() -> None:
    a, b = torch.randn(3, 16, 16), torch.randn(3, 16, 16)
    path = slerp(a, b, torch.linspace(0, 1, 7))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    norms = path.flatten(1).norm(dim=1)
    assert (norms.min() / norms.max()) > 0.9  # a straight line would dip to ~0.7 halfway
    assert torch.allclose(slerp(a, a, torch.tensor([0.5]))[0], a)


@pytest.mark.parametrize("target", ["noise", "velocity", "signal"])
def test_every_prediction_target_samples_with_every_sampler_and_batch_size_does_not_matter(target: str) -> None:
    torch.manual_seed(0)
    model = DiffusionModel(ModelConfig(image_size=8, widths=(4, 8), block_depth=1, prediction=target))
    torch.nn.init.normal_(model.ema_network.output_conv.weight, std=0.05)
    for name in SAMPLERS:
        options = {"eta": 0.5} if name == "ddim" else {}
        whole = generate_images(model, seed=4, indices=range(6), steps=3, batch_size=6, sampler=name, **options)
        split = generate_images(model, seed=4, indices=range(6), steps=3, batch_size=4, sampler=name, **options)
        assert whole.shape == (6, 3, 8, 8) and torch.isfinite(whole).all(), name
        torch.testing.assert_close(whole, split, rtol=1e-5, atol=1e-6)


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


def test_study_writes_kid_against_evaluations(tiny_run: Path, tmp_path: Path, monkeypatch) -> None:
    import ddim.study

    titles, plot = [], ddim.study.plot_study

    def plotted(rows, path, **options):
        titles.append(options.get("title"))
        return plot(rows, path, **options)

    monkeypatch.setattr(ddim.study, "plot_study", plotted)
    assert main(["study", "--checkpoint", str(tiny_run), "--samplers", "ddim,heun,ddim:eta=1", "--evaluations", "1,2,4",
                 "--num", "12", "--subsets", "3", "--subset-size", "10", "--out", str(tmp_path), "--device", "cpu",
                 "--no-progress", "--title", "tiny flowers"]) == 0
    with open(tmp_path / "study.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["sampler"], int(r["evaluations"])) for r in rows] == [
        ("ddim", 1), ("ddim", 2), ("ddim", 4), ("heun", 1), ("heun", 3), ("ddim eta=1", 1), ("ddim eta=1", 2),
        ("ddim eta=1", 4)]  # heun spends 2 * steps - 1: the most steps within 2 is 1 (measured once), within 4 is 2
    assert all(np.isfinite(float(r["kid"])) and np.isfinite(float(r["fid"])) for r in rows)
    assert (tmp_path / "study.png").is_file() and titles == ["tiny flowers"]  # --title reaches the plot


def test_an_interrupted_study_continues_where_it_stopped(tiny_run: Path, tmp_path: Path, monkeypatch,
                                                          capsys) -> None:
    import ddim.study

    measure = ["--samplers", "ddim,heun", "--evaluations", "1,3", "--num", "12", "--subsets", "3", "--subset-size",
               "10", "--device", "cpu", "--no-progress"]
    generate = ddim.study.generated_features
    calls: list[int] = []

    def counted(*args, **kwargs):
        calls.append(kwargs["steps"])
        # a point's finished batches are kept where an interrupted point continues (tested with ddim evaluate's)
        assert kwargs["partial_dir"] == Path(os.environ["DDIM_CACHE_DIR"]) / "partial"
        if len(calls) == 3 and interrupt:
            raise KeyboardInterrupt  # as if stopped while measuring the third point
        return generate(*args, **kwargs)

    monkeypatch.setattr(ddim.study, "generated_features", counted)
    study = tmp_path / "study"
    interrupt = True
    assert main(["study", "--checkpoint", str(tiny_run), *measure, "--out", str(study)]) == 130  # Ctrl-C's status
    saved = json.loads((study / "study.json").read_text())
    assert saved["finished"] is False and [(p["sampler"], p["steps"]) for p in saved["points"]] == [("ddim", 1), ("ddim", 3)]
    assert len(list(csv.DictReader((study / "study.csv").open()))) == 2

    interrupt, calls[:] = False, []
    assert main(["study", "--checkpoint", str(tiny_run), *measure, "--out", str(study)]) == 0
    assert calls == [1, 2]  # only heun's two points are measured
    printed = capsys.readouterr().out
    assert "2 points measured earlier with these settings" in printed and printed.count("(measured earlier)") == 2
    resumed = json.loads((study / "study.json").read_text())
    assert resumed["finished"] is True and (study / "study.png").is_file()

    calls[:] = []
    assert main(["study", "--checkpoint", str(tiny_run), *measure, "--out", str(tmp_path / "whole")]) == 0
    whole = json.loads((tmp_path / "whole" / "study.json").read_text())
    assert len(calls) == 4
    keys = ("sampler", "steps", "evaluations", "kid", "kid_std", "fid")
    assert [[p[k] for k in keys] for p in resumed["points"]] == [[p[k] for k in keys] for p in whole["points"]]

    calls[:] = []  # other settings, other weights or --recompute: every point is measured again
    assert main(["study", "--checkpoint", str(tiny_run), *measure, "--seed", "5", "--out", str(study)]) == 0
    assert len(calls) == 4 and "measured other settings (seed was 0, now 5)" in capsys.readouterr().out
    earlier_weights = sorted((tiny_run / "checkpoints").glob("step_*"))[0]
    calls[:] = []
    assert main(["study", "--checkpoint", str(earlier_weights), *measure, "--seed", "5", "--out", str(study)]) == 0
    assert len(calls) == 4 and "measured other settings (other weights)" in capsys.readouterr().out
    calls[:] = []
    assert main(["study", "--checkpoint", str(earlier_weights), *measure, "--seed", "5", "--recompute",
                 "--out", str(study)]) == 0
    assert len(calls) == 4 and "measured earlier" not in capsys.readouterr().out


def test_earlier_points_come_only_from_a_readable_study_of_the_same_protocol(tmp_path: Path) -> None:
    from ddim.study import earlier_points

    protocol = {"weights_sha256": "ab", "num": 8}
    path = tmp_path / "study.json"
    assert earlier_points(path, protocol) == ([], "")
    point = {"sampler": "ddim", "steps": 5, "kid": 0.1, "fid": 20.0}
    path.write_text(json.dumps({"points": [point]}))  # written before studies recorded their protocol
    assert earlier_points(path, protocol)[1].endswith("does not record its settings (an older ddim wrote it); "
                                                      "measuring every point")
    path.write_text(json.dumps({"protocol": protocol, "points": [point, {"sampler": "heun"}]}))
    assert earlier_points(path, protocol) == ([point], f"{path}: 1 point measured earlier with these settings")
    path.write_text('{"protocol": ')
    assert earlier_points(path, protocol)[0] == [] and "cannot be read" in earlier_points(path, protocol)[1]


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
