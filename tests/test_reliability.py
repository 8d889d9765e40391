"""Exact resume, signals, SIGKILL fault injection, non-finite losses, failed checkpoints, bad input, torchrun."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    CONFIG,
    STATE,
    TINY_TRAIN,
    WEIGHTS,
    loaded,
    real_flowers_or_skip,
    step_checkpoints,
    step_dir_name,
    training_state,
    write_images,
)
from safetensors.torch import load_file

from ddim import checkpoint as ckpt
from ddim.cli import main
from ddim.config import (
    CONFIG_VERSION,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from ddim.training import TrainingError, TrainingInterrupted, fit
from ddim.training import step as steps_module
from ddim.training.callbacks import Callback

TIMING = {"seconds", "eval_seconds", "images_per_second"}


@pytest.fixture(scope="module", params=["real flowers", "synthetic images"])
def flowers(request, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test here runs on the real flowers and on a small synthetic folder (80 random images), so the
    reliability logic is tested wherever the real data is missing too."""
    if request.param == "real flowers":
        return real_flowers_or_skip()
    folder = tmp_path_factory.mktemp("synthetic") / "images"
    write_images(folder, 80, size=(20, 18))
    return folder


def tiny_config(flowers: Path, **train) -> RunConfig:
    """6 steps per epoch on 48 images at 16 px, checkpoints every 2 steps, KID on 16 images."""
    options = dict(epochs=2, batch_size=16, seed=3, device="cpu", plot_images=4, plot_steps=2, kid_steps=2,
                   checkpoint_every=2, keep_checkpoints=3, log_every=2)
    options.update(train)
    return RunConfig(model=ModelConfig(image_size=16, widths=(8, 16), block_depth=1),
                     data=DataConfig(path=str(flowers), repeats=2, train_images=48, validation_images=16),
                     train=TrainConfig(**options))


def final_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    latest = step_checkpoints(run_dir)[-1]
    return load_file(str(latest / WEIGHTS)), training_state(latest)


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical weights (network, EMA, normaliser), optimiser, generator states and history."""
    weights_a, state_a = final_state(a)
    weights_b, state_b = final_state(b)
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name
    assert state_a["step"] == state_b["step"]
    for x, y in zip(state_a["noise_generators"], state_b["noise_generators"]):
        assert torch.equal(x, y)
    for key, value in state_a["optimizer"]["state"].items():
        for name, tensor in value.items():
            assert torch.equal(tensor, state_b["optimizer"]["state"][key][name]), (key, name)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert strip(state_a["history"]) == strip(state_b["history"])


@pytest.fixture(scope="module")
def uninterrupted(flowers: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    fit(tiny_config(flowers), run_dir)
    return run_dir


def test_a_run_stopped_mid_epoch_and_resumed_is_bit_identical(flowers: Path, uninterrupted: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    fit(tiny_config(flowers, max_steps=5), run_dir)  # stops inside epoch 1, after a partial evaluation
    _, state = final_state(run_dir)
    assert state["step"] == 5 and len(state["history"]) == 1
    fit(tiny_config(flowers), run_dir, resume=True)
    assert_same_run(uninterrupted, run_dir)


def test_a_resumed_epoch_reports_the_time_of_all_its_steps(flowers: Path, tmp_path: Path) -> None:
    """The epoch row's seconds and images/s cover the steps before the resume too (they travel in the
    checkpoint); a checkpoint without them (ddim 0.2) times only the steps after the resume."""
    for saved in ("with timing", "ddim 0.2"):
        run_dir = tmp_path / saved.replace(" ", "-")
        fit(tiny_config(flowers, max_steps=4, epochs=1), run_dir)  # 4 of the epoch's 6 steps
        latest = step_checkpoints(run_dir)[-1]
        state = training_state(latest)
        assert state["step"] == 4 and state["epoch_timed_steps"] == 4 and 0 < state["epoch_seconds"] < 1000
        if saved == "with timing":
            state["epoch_seconds"] = 1000.0  # as if the first 4 steps had taken 1,000 s
        else:
            del state["epoch_seconds"], state["epoch_timed_steps"]
        torch.save(state, latest / STATE)
        fit(tiny_config(flowers, epochs=1), run_dir, resume=True)
        row = training_state(step_checkpoints(run_dir)[-1])["history"][-1]
        assert row["epoch"] == 1 and row["step"] == 6
        if saved == "with timing":
            assert 1000 < row["seconds"] < 1100
            assert row["images_per_second"] == pytest.approx(6 * 16 / row["seconds"])
        else:
            assert row["seconds"] < 1000
            assert row["images_per_second"] == pytest.approx(2 * 16 / row["seconds"])


class InterruptAt(Callback):
    """A callback that sends this process a signal when training reaches a step."""

    def __init__(self, step: int, signal_number: int) -> None:
        self.step, self.signal_number = step, signal_number

    def on_log(self, step: int, metrics: dict) -> None:
        if step == self.step:
            os.kill(os.getpid(), self.signal_number)


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_save_a_checkpoint_and_stop_cleanly(flowers: Path, uninterrupted: Path, tmp_path: Path,
                                                              signal_number: int) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as stopped:
        fit(tiny_config(flowers), run_dir, callbacks=[InterruptAt(8, signal_number)])
    assert stopped.value.exit_code == (130 if signal_number == signal.SIGINT else 143)
    assert "continue with: ddim train --resume" in str(stopped.value)
    assert step_checkpoints(run_dir)[-1].name == step_dir_name(8)  # saved at the step it stopped
    fit(tiny_config(flowers), run_dir, resume=True)
    assert_same_run(uninterrupted, run_dir)


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(flowers: Path, tmp_path: Path,
                                                                            monkeypatch) -> None:
    original, calls = steps_module.diffusion_losses, []

    def poisoned(*args, **kwargs):
        losses = original(*args, **kwargs)
        calls.append(1)
        return losses * float("nan") if len(calls) == 5 else losses  # training step 5 diverges

    monkeypatch.setattr(steps_module, "diffusion_losses", poisoned)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"became NaN or infinite by step 6.*last good checkpoint .*step_000000004"):
        fit(tiny_config(flowers, kid_every=0), run_dir)
    assert [p.name for p in step_checkpoints(run_dir)] == ["step_000000002", "step_000000004"]
    weights, _ = final_state(run_dir)
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())


def test_a_disk_that_fills_during_a_checkpoint_leaves_the_previous_one_intact(flowers: Path, tmp_path: Path,
                                                                            monkeypatch) -> None:
    original, calls = ckpt.write_safetensors, []

    def fills_up(tensors, path, metadata=None):
        calls.append(1)
        if len(calls) == 2:  # the second checkpoint: half a file, then the disk is full
            Path(path).write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return original(tensors, path, metadata=metadata)

    monkeypatch.setattr(ckpt, "write_safetensors", fills_up)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"could not write checkpoint .*step_000000004: No space left on device; "
                                            r"training stopped and the previous checkpoint .*step_000000002 is intact"):
        fit(tiny_config(flowers, kid_every=0), run_dir)
    assert [p.name for p in step_checkpoints(run_dir)] == ["step_000000002"]
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))
    loaded(run_dir)  # still loads
    monkeypatch.setattr(ckpt, "write_safetensors", original)
    fit(tiny_config(flowers, kid_every=0), run_dir, resume=True)  # and the run resumes from it
    assert final_state(run_dir)[1]["step"] == 12


def test_resume_refuses_a_configuration_that_changes_the_computation(flowers: Path, uninterrupted: Path,
                                                                    tmp_path: Path, capsys) -> None:
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(uninterrupted, run_dir)
    with pytest.raises(TrainingError, match="--batch-size was 16, now 8; it fixes which images"):
        fit(tiny_config(flowers, batch_size=8, epochs=3), run_dir, resume=True)
    with pytest.raises(TrainingError, match=r"model configuration differs .*model.widths"):
        fit(dataclasses.replace(tiny_config(flowers), model=ModelConfig(image_size=16, widths=(8, 8), block_depth=1)),
            run_dir, resume=True)
    with pytest.raises(SystemExit):
        main(["train", "--resume", str(run_dir), "--widths", "8,32"])
    assert "--widths (8, 32) disagrees with the run being resumed" in capsys.readouterr().err
    assert main(["train", "--resume", str(run_dir), "--seed", "4", "--no-progress"]) == 1
    assert "--seed was 3, now 4" in capsys.readouterr().err


def test_resume_falls_back_from_a_truncated_checkpoint_and_names_an_unusable_run(flowers: Path, uninterrupted: Path,
                                                                                tmp_path: Path, capsys) -> None:
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(uninterrupted, run_dir)
    checkpoints = step_checkpoints(run_dir)
    latest_state = checkpoints[-1] / STATE
    latest_state.write_bytes(latest_state.read_bytes()[:200])  # truncated
    fit(tiny_config(flowers, epochs=3, kid_every=0), run_dir, resume=True)  # resumes from the one before
    assert final_state(run_dir)[1]["step"] == 18
    for folder in step_checkpoints(run_dir):
        (folder / STATE).write_bytes(b"garbage")
    assert main(["train", "--resume", str(run_dir), "--epochs", "4", "--no-progress", "--kid-every", "0"]) == 1
    assert "no readable checkpoint" in capsys.readouterr().err


def test_an_unwritable_run_folder_and_a_missing_run_are_clear_errors(tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("not a folder")
    assert main(["train", "--data", str(tmp_path), "--run-dir", str(tmp_path / "file" / "run")]) == 1
    assert "cannot write to run folder" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing-here")]) == 1
    assert "nothing-here: there is no such folder" in capsys.readouterr().err


def test_unreadable_images_stop_with_their_name_or_are_skipped_and_counted(tmp_path: Path, capsys) -> None:
    from conftest import write_images

    write_images(tmp_path / "imgs", 20, size=(20, 20))
    (tmp_path / "imgs" / "truncated.jpg").write_bytes((tmp_path / "imgs" / "img_001.jpg").read_bytes()[:60])
    arguments = ["train", "--data", str(tmp_path / "imgs"), *TINY_TRAIN, "--max-steps", "1", "--kid-every", "0",
                 "--batch-size", "4", "--cache-dir", str(tmp_path / "cache")]
    assert main([*arguments, "--run-dir", str(tmp_path / "a")]) == 1
    assert "truncated.jpg" in capsys.readouterr().err
    assert main([*arguments, "--run-dir", str(tmp_path / "b"), "--skip-unreadable", "yes"]) == 0
    assert "skipped 1 unreadable images" in capsys.readouterr().err


def test_a_run_trained_with_skip_unreadable_is_evaluated_studied_and_inverted_on_the_same_images(
        tmp_path: Path, capsys) -> None:
    """The data settings travel with the run: every command the end-of-run summary suggests (evaluate, study,
    invert, the API's evaluate) reads the run's images as training did, the broken file skipped and a conditional
    folder split class by class, instead of stopping at the broken file or splitting another way."""
    import numpy as np
    from conftest import write_images
    from PIL import Image

    import ddim
    from ddim.data import load_splits

    images = tmp_path / "imgs"
    for index, name in enumerate(("daisy", "rose")):
        write_images(images / name, 12, size=(20, 20), seed=index)
    (images / "rose" / "broken.jpg").write_bytes((images / "rose" / "img_001.jpg").read_bytes()[:60])
    run = tmp_path / "run"
    assert main(["train", "--data", str(images), "--run-dir", str(run), *TINY_TRAIN, "--max-steps", "2",
                 "--kid-every", "0", "--batch-size", "4", "--conditional", "--skip-unreadable", "yes",
                 "--no-tensorboard"]) == 0
    capsys.readouterr()
    tiny = ["--kid-size", "75", "--subsets", "2", "--subset-size", "3", "--steps", "2", "--device", "cpu", "--no-progress"]
    assert main(["evaluate", "--checkpoint", str(run), "--guidance", "0", *tiny,
                 "--json", str(tmp_path / "evaluate.json")]) == 0
    assert main(["study", "--checkpoint", str(run), "--evaluations", "2", "--samplers", "ddim", "--guidance", "0",
                 "--out", str(tmp_path / "study"), "--kid-size", "75", "--subsets", "2", "--subset-size", "3",
                 "--device", "cpu", "--no-progress"]) == 0
    assert main(["invert", "--checkpoint", str(run), "--num", "3", "--steps", "2", "--out", str(tmp_path / "invert"),
                 "--device", "cpu", "--no-progress"]) == 0
    model = ddim.load(run)
    result = ddim.evaluate(model, kid_size=75, steps=2)
    assert result["num_real"] == json.loads((tmp_path / "evaluate.json").read_text())["num_real"]
    # the images inverted are the first validation images of the run's own (class-by-class, skipping) split
    split = load_splits(DataConfig(path=str(images), skip_unreadable=True), 16, classes=True)
    assert len(split.train) + len(split.validation) == 24 and result["num_real"] == len(split.validation)
    originals = np.asarray(Image.open(tmp_path / "invert" / "originals.png").convert("RGB"))
    assert np.array_equal(originals[2:18, 2:18], split.validation[0])  # the grid's first cell, after its border


def train_command(flowers: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ddim", "train", "--data", str(flowers), "--run-dir", str(run_dir), *TINY_TRAIN,
            "--train-images", "48", "--validation-images", "16", "--repeats", "2", "--epochs", "3", "--seed", "5",
            "--checkpoint-every", "1", "--keep-checkpoints", "2", "--kid-every", "0", "--log-every", "1", *extra]


def test_sigkill_at_random_moments_then_resume_ends_with_the_same_weights(flowers: Path, tmp_path: Path) -> None:
    """Fault injection: kill -9 at random moments (mid-step, mid-checkpoint, mid-evaluation) over several trials."""
    reference = tmp_path / "reference"
    started = time.perf_counter()
    subprocess.run(train_command(flowers, reference), check=True, capture_output=True)
    duration = time.perf_counter() - started
    rng = random.Random(1234)
    interrupted = 0
    for trial in range(3):
        run_dir = tmp_path / f"trial{trial}"
        process = subprocess.Popen(train_command(flowers, run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.perf_counter() + 120
        while not step_checkpoints(run_dir) and process.poll() is None and time.perf_counter() < deadline:
            time.sleep(0.05)  # kill only once training is under way, so that there is progress to lose
        time.sleep(rng.uniform(0, duration * 0.6))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            interrupted += 1
        process.wait()
        resumed = subprocess.run(train_command(flowers, run_dir)[:4] + ["--resume", str(run_dir), "--no-progress"],
                                 capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr
        assert_same_run(reference, run_dir)
    assert interrupted >= 2  # the trials really killed training


def test_sigterm_to_the_command_saves_and_exits_143(flowers: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = subprocess.Popen(train_command(flowers, run_dir, "--epochs", "50"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    while len(step_checkpoints(run_dir)) < 2 and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "SIGTERM received: stopped after saving" in err and "Traceback" not in err


def test_torchrun_with_two_gloo_processes_keeps_ranks_identical_and_writes_once(flowers: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ddim",
               "train", "--data", str(flowers), "--run-dir", str(run_dir),
               *[a for a in TINY_TRAIN if a != "--no-progress"], "--train-images", "48",
               "--validation-images", "16", "--repeats", "2", "--epochs", "2", "--kid-steps", "2"]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((run_dir / "distributed.json").read_text())
    assert report["world_size"] == 2 and report["backend"] == "gloo"
    first, second = report["weights_fingerprint_per_rank"]
    assert first == second
    assert result.stderr.count("ddim: training on") == 1  # only rank 0 talks
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2  # header and one row per epoch, written once
    assert "val_kid" in history[0]
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    weights, state = final_state(run_dir)
    assert state["world_size"] == 2 and len(state["noise_generators"]) == 2
    assert not torch.equal(state["noise_generators"][0], state["noise_generators"][1])  # each rank its own noise


def test_a_run_written_by_ddim_0_1_resumes_bit_identically(flowers: Path, uninterrupted: Path, tmp_path: Path) -> None:
    """ddim 0.1 wrote config.json without a version, its weight decay in PyTorch's meaning (lr * wd per step);
    the training-state format is unchanged. Such a run resumes through the CLI and continues the same run."""
    run_dir = tmp_path / "old"
    fit(tiny_config(flowers, max_steps=5), run_dir)
    for path in [run_dir / "config.json", *(p / CONFIG for p in step_checkpoints(run_dir))]:
        config = as_written_by(json.loads(path.read_text()), 1)
        del config["version"]
        config["train"]["weight_decay"] = config["train"]["weight_decay"] / config["train"]["lr"]  # PyTorch's meaning
        path.write_text(json.dumps(config))
    _, old_config, _ = loaded(run_dir)  # an old checkpoint loads for sampling too
    assert old_config.train.weight_decay == pytest.approx(1e-4, rel=1e-12)
    assert main(["train", "--resume", str(run_dir), "--max-steps", "12", "--no-progress"]) == 0  # 2 epochs of 6
    assert_same_run(uninterrupted, run_dir)
    assert json.loads((run_dir / "config.json").read_text())["version"] == CONFIG_VERSION  # rewritten in today's format


def as_written_by(config: dict, version: int) -> dict:
    """A config dictionary as ddim's config ``version`` wrote it: without the fields later versions added (ddim 0.1's
    and 0.2's: without those of class-conditional training, the better recipes and every-block conditioning)."""
    from ddim.config.versions import ADDED_BY_VERSION

    for added_in, added in ADDED_BY_VERSION:
        for section, fields in added.items():
            for name in fields if added_in > version else ():
                del config[section][name]
    return config


def write_as_version(run_dir: Path, version: int) -> None:
    """Rewrite the configs of a run and its checkpoints as ddim's config ``version`` wrote them."""
    for folder in [run_dir, *step_checkpoints(run_dir)]:
        config = as_written_by(json.loads((folder / "config.json").read_text()), version)
        (folder / "config.json").write_text(json.dumps({**config, "version": version}))


def test_a_run_written_by_ddim_0_3_resumes_bit_identically(flowers: Path, uninterrupted: Path, tmp_path: Path) -> None:
    """ddim 0.3 wrote version-3 configs, without the levers of the better recipes (flips, power EMA, learning-rate
    schedule); such a run loads and resumes through the CLI as the Keras example's recipe it was."""
    run_dir = tmp_path / "v03"
    fit(tiny_config(flowers, max_steps=5), run_dir)
    write_as_version(run_dir, 3)
    _, old_config, _ = loaded(run_dir)
    assert not old_config.data.flip and old_config.train.ema_std is None and old_config.train.lr_schedule == "constant"
    assert main(["train", "--resume", str(run_dir), "--max-steps", "12", "--no-progress"]) == 0
    assert_same_run(uninterrupted, run_dir)


def test_a_conditional_run_written_before_every_block_conditioning_loads_samples_and_resumes_as_it_was(
        tmp_path: Path) -> None:
    """Version-4 configs (before ``model.class_conditioning``) describe conditional networks that take the class at
    the input only: such a run loads with that network (not today's default), draws what it drew, and resumes."""
    from conftest import write_shapes

    data, run = write_shapes(tmp_path / "data", per_class=16), tmp_path / "v4"
    tiny = ["--conditional", "--class-conditioning", "input", "--widths", "8,16", "--block-depth", "1", "--image-size",
            "16", "--batch-size", "8", "--repeats", "1", "--plot-images", "2", "--plot-steps", "2", "--kid-every", "0",
            "--device", "cpu", "--no-progress", "--no-tensorboard"]
    assert main(["train", "--data", str(data), "--run-dir", str(run), "--max-steps", "4", "--epochs", "4", *tiny]) == 0
    sample = ["sample", "--checkpoint", str(run), "--class", "red discs", "--num", "2", "--steps", "2", "--guidance", "2",
              "--device", "cpu", "--no-progress", "--format", "npz"]
    assert main([*sample, "--out", str(tmp_path / "before")]) == 0
    write_as_version(run, 4)
    model, old_config, _ = loaded(run)
    assert old_config.model.class_conditioning == "input" and ModelConfig().class_conditioning == "every-block"
    assert not any(".condition." in name for name in model.network.state_dict())
    assert main([*sample, "--out", str(tmp_path / "after")]) == 0
    with np.load(tmp_path / "before" / "samples.npz") as before, np.load(tmp_path / "after" / "samples.npz") as after:
        assert np.array_equal(before["images"], after["images"])
    assert main(["train", "--resume", str(run), "--max-steps", "6", "--no-progress"]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["class_conditioning"] == "input"


def test_a_run_of_the_improved_recipe_stopped_mid_epoch_resumes_bit_identically(flowers: Path, tmp_path: Path) -> None:
    """Flips, the power-function EMA and the learning-rate schedule are functions of (seed, step): a run stopped
    inside an epoch and resumed through the CLI ends with the weights of an uninterrupted one."""
    levers = ["--recipe", "improved", "--lr-warmup-steps", "3", "--lr-decay-steps", "6"]
    tiny = ["--data", str(flowers), "--image-size", "16", "--widths", "8,16", "--block-depth", "1", "--batch-size", "16",
            "--repeats", "2", "--train-images", "48", "--validation-images", "16", "--epochs", "2", "--seed", "3",
            "--device", "cpu", "--plot-images", "4", "--plot-steps", "2", "--kid-steps", "2", "--checkpoint-every", "2",
            "--log-every", "2", "--no-progress", "--no-tensorboard", *levers]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert main(["train", "--run-dir", str(straight), *tiny]) == 0
    assert main(["train", "--run-dir", str(stopped), *tiny, "--max-steps", "5"]) == 0
    assert main(["train", "--resume", str(stopped), "--max-steps", "12", "--no-progress"]) == 0
    assert_same_run(straight, stopped)
    plain = tmp_path / "plain"  # and the levers change the computation: without flips the weights differ
    assert main(["train", "--run-dir", str(plain), *tiny, "--flip", "no"]) == 0
    with_flips, without = final_state(straight)[0], final_state(plain)[0]
    assert any(not torch.equal(with_flips[name], without[name]) for name in with_flips)


def test_a_run_written_by_ddim_0_2_loads_and_resumes_bit_identically(flowers: Path, uninterrupted: Path,
                                                                      tmp_path: Path) -> None:
    """ddim 0.2 wrote version-2 configs and a model configuration in the weights' metadata, both without the
    class-conditional fields of version 3. Its checkpoints load (checksum and metadata checks included) and
    resume through the CLI, continuing the same computation."""
    from safetensors import safe_open

    from ddim.integrity import write_safetensors as save_file

    run_dir = tmp_path / "v02"
    fit(tiny_config(flowers, max_steps=5), run_dir)
    for folder in [run_dir, *step_checkpoints(run_dir)]:
        config = as_written_by(json.loads((folder / "config.json").read_text()), 2)
        (folder / "config.json").write_text(json.dumps({**config, "version": 2}))
        weights = folder / WEIGHTS
        if weights.is_file():
            with safe_open(str(weights), framework="pt") as handle:
                metadata = handle.metadata()
            model_config = json.loads(metadata["model_config"])
            del model_config["conditional"], model_config["class_names"]
            save_file(load_file(str(weights)), weights, metadata={**metadata, "model_config": json.dumps(model_config)})
    model, old_config, _ = loaded(run_dir)
    assert not old_config.model.conditional and model.class_names == () and old_config.train.class_dropout == 0.1
    assert main(["train", "--resume", str(run_dir), "--max-steps", "12", "--no-progress"]) == 0
    assert_same_run(uninterrupted, run_dir)
