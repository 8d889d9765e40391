"""A run that explains itself: TensorBoard events and metrics.jsonl from the callbacks (read back with
TensorBoard's own reader), the fixed history.csv columns, and readable history and study plots."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import captured_figures, header, write_images
from PIL import Image

from ddim.checkpoint import TrainState
from ddim.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ddim.layout import RunLayout
from ddim.plots import plot_history
from ddim.reports import HISTORY_COLUMNS, save_grid, write_history
from ddim.training import TrainingError
from ddim.training.callbacks import RunInfo, SampleGrid
from ddim.training.monitoring import (
    MetricsLog,
    TensorBoardLogger,
    TensorBoardUnavailable,
    read_metrics,
)

CONFIG = RunConfig(model=ModelConfig(image_size=16, widths=(8, 16), block_depth=1),
                   data=DataConfig(path="unused", repeats=1),
                   train=TrainConfig(epochs=2, batch_size=8, seed=1, device="cpu", kid_every=0, plot_images=4,
                                     plot_steps=2, log_every=1))


def run_info(run_dir: Path, step: int = 0) -> RunInfo:
    """What fit would tell the callbacks, without a model."""
    return RunInfo(layout=RunLayout(run_dir), config=CONFIG, state=TrainState(step=step), runtime=None, steps_per_epoch=2,
                   total_steps=4, description="training on fake images")


def metrics(step: int, offset: float = 0.0) -> dict[str, float]:
    return {"loss": 0.5 + step + offset, "noise_loss": 0.25 + step + offset, "image_loss": 0.125 + step + offset,
            "lr": 1e-3, "images_per_second": 100.0 * step}


ROW = {"epoch": 1, "step": 2, "train_loss": 0.75, "train_noise_loss": 0.75, "train_image_loss": 0.5,
       "val_loss": 0.625, "val_noise_loss": 0.625, "val_image_loss": 0.375, "val_kid": 0.25, "seconds": 3.0,
       "eval_seconds": 1.5, "images_per_second": 5.25}


def events(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def scalars(accumulator: Any, tag: str) -> dict[int, float]:
    return {event.step: event.value for event in accumulator.Scalars(tag)}


def test_tensorboard_logger_writes_step_and_epoch_scalars_and_the_sample_grid(tmp_path: Path) -> None:
    grid_pixels = torch.rand(4, 3, 16, 16)
    save_grid(grid_pixels, tmp_path / "samples" / "epoch_0001.png")  # what SampleGrid wrote before
    logger = TensorBoardLogger()
    logger.on_train_start(run_info(tmp_path))
    for step in (1, 2):
        logger.on_log(step, metrics(step))
    logger.on_epoch_end(1, ROW, None, TrainState(step=2))
    logger.on_train_end(TrainState(step=2))

    accumulator = events(tmp_path / "tensorboard")
    tags = set(accumulator.Tags()["scalars"])
    assert {"train/loss", "train/noise_loss", "train/image_loss", "train/lr", "train/images_per_second"} <= tags
    assert {"val/noise_loss", "val/image_loss", "val/loss", "val/kid_75px", "epoch/seconds", "epoch/eval_seconds",
            "epoch/images_per_second", "epoch/train_noise_loss", "epoch/epoch"} <= tags
    assert scalars(accumulator, "train/noise_loss") == {1: 1.25, 2: 2.25}
    assert scalars(accumulator, "train/lr") == {1: pytest.approx(1e-3), 2: pytest.approx(1e-3)}
    assert scalars(accumulator, "val/kid_75px") == {2: 0.25}
    assert scalars(accumulator, "epoch/seconds") == {2: 3.0}
    [image] = accumulator.Images("samples")
    assert image.step == 2
    stored = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB"))
    assert np.array_equal(stored, np.asarray(Image.open(tmp_path / "samples" / "epoch_0001.png").convert("RGB")))
    assert "training on fake images" in accumulator.Tensors("run/text_summary")[0].tensor_proto.string_val[0].decode()


def test_an_epoch_without_a_grid_or_kid_logs_its_scalars_only(tmp_path: Path) -> None:
    logger = TensorBoardLogger()
    logger.on_train_start(run_info(tmp_path))
    logger.on_epoch_end(1, {k: v for k, v in ROW.items() if k != "val_kid"}, None, TrainState(step=2))
    logger.on_train_end(TrainState(step=2))
    accumulator = events(tmp_path / "tensorboard")
    assert "val/kid_75px" not in accumulator.Tags()["scalars"] and accumulator.Tags()["images"] == []


def test_a_resumed_run_appends_and_hides_what_was_logged_after_its_checkpoint(tmp_path: Path) -> None:
    first = TensorBoardLogger()
    first.on_train_start(run_info(tmp_path))
    for step in (1, 2, 3):  # interrupted after step 3; its checkpoint is at step 2
        first.on_log(step, metrics(step))
    first.on_train_end(TrainState(step=3))
    second = TensorBoardLogger()
    second.on_train_start(run_info(tmp_path, step=2))
    for step in (3, 4):
        second.on_log(step, metrics(step, offset=10.0))
    second.on_train_end(TrainState(step=4))

    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 2  # the same folder, one run
    assert scalars(events(tmp_path / "tensorboard"), "train/loss") == {1: 1.5, 2: 2.5, 3: 13.5, 4: 14.5}


def test_tensorboard_missing_is_a_clear_error_before_training_and_the_module_imports_it_lazily(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if the package were not installed
    with pytest.raises(TensorBoardUnavailable, match="pip install tensorboard.*--no-tensorboard") as error:
        TensorBoardLogger()
    assert isinstance(error.value, TrainingError)  # the CLI prints it as one line, exit status 1
    log = MetricsLog()  # needs nothing beyond the standard library
    log.on_train_start(run_info(tmp_path))
    log.on_log(1, metrics(1))
    log.on_train_end(TrainState(step=1))
    assert read_metrics(tmp_path / "metrics.jsonl")[0]["loss"] == 1.5
    code = "import sys, ddim.training.monitoring; print('tensorboard' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_metrics_log_round_trips_steps_and_epochs_and_a_resume_continues_from_its_step(tmp_path: Path) -> None:
    log = MetricsLog()
    log.on_train_start(run_info(tmp_path))
    for step in (1, 2):
        log.on_log(step, metrics(step))
        assert len(read_metrics(tmp_path / "metrics.jsonl")) == step  # flushed line by line
    log.on_epoch_end(1, ROW, None, TrainState(step=2))
    log.on_log(3, metrics(3))
    log.on_train_end(TrainState(step=3))
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["kind"], r["step"]) for r in records] == [("step", 1), ("step", 2), ("epoch", 2), ("step", 3)]
    assert {k: v for k, v in records[0].items() if k != "time"} == {"kind": "step", "step": 1, **metrics(1)}
    assert {k: v for k, v in records[2].items() if k not in ("kind", "time")} == ROW

    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "step", "st')  # torn by a crash
    resumed = MetricsLog()
    resumed.on_train_start(run_info(tmp_path, step=2))
    resumed.on_log(3, metrics(3, offset=10.0))
    resumed.on_train_end(TrainState(step=3))
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["kind"], r["step"]) for r in records] == [("step", 1), ("step", 2), ("epoch", 2), ("step", 3)]
    assert records[-1]["loss"] == 13.5


def test_a_tiny_real_run_writes_events_grids_and_metrics(tmp_path: Path) -> None:
    from ddim.training import fit

    images = write_images(tmp_path / "images", 16, size=(20, 18))[0].parent
    config = RunConfig(model=ModelConfig(image_size=16, widths=(8, 16), block_depth=1),
                       data=DataConfig(path=str(images), repeats=1),
                       train=TrainConfig(epochs=2, batch_size=8, seed=1, device="cpu", kid_every=0, plot_images=4,
                                         plot_steps=2, log_every=1))
    fit(config, tmp_path / "run", callbacks=[SampleGrid(), TensorBoardLogger(), MetricsLog()])
    accumulator = events(tmp_path / "run" / "tensorboard")
    steps = sorted(scalars(accumulator, "train/loss"))
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2
    assert {"train/lr", "train/images_per_second", "val/noise_loss", "epoch/seconds"} <= set(accumulator.Tags()["scalars"])
    assert [image.step for image in accumulator.Images("samples")] == sorted(scalars(accumulator, "val/noise_loss"))
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]
    assert all(np.isfinite(r["noise_loss"]) for r in records if r["kind"] == "step")


# --- history.csv and the plots ---

def history(kid_every: int, epochs: int = 4) -> list[dict[str, float]]:
    rows = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "step": 3 * epoch, "train_loss": 0.3, "train_noise_loss": 0.3,
               "train_image_loss": 0.2, "val_loss": 0.3, "val_noise_loss": 0.3, "val_image_loss": 0.2}
        if kid_every and epoch % kid_every == 0:
            row["val_kid"] = 0.1 / epoch
        row.update(seconds=2.0, eval_seconds=1.0, images_per_second=50.0)
        rows.append(row)
    return rows


def test_history_columns_are_fixed_whatever_the_kid_cadence(tmp_path: Path) -> None:
    from ddim.reports import read_history

    for name, rows in {"every": history(1), "every2": history(2), "one": history(2, epochs=1),
                       "never": history(0)}.items():
        write_history(rows, tmp_path / f"{name}.csv")
        assert header(tmp_path / f"{name}.csv") == list(HISTORY_COLUMNS), name
        assert read_history(tmp_path / f"{name}.csv") == rows  # empty cells read back as absent
    write_history([{**history(1, epochs=1)[0], "extra": 1.0}], tmp_path / "extra.csv")
    assert header(tmp_path / "extra.csv") == [*HISTORY_COLUMNS, "extra"]


def test_a_one_epoch_history_plot_has_visible_markers_labels_and_titles(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:

    figures = captured_figures(monkeypatch)
    plot_history(history(1, epochs=1), tmp_path / "losses.png", title="run flowers-64", subtitle="seed 1",
                 kid_size=75, kid_num=1638, kid_sampler="ddim, 5 steps")
    assert Image.open(tmp_path / "losses.png").size[0] > 100
    [figure] = figures
    assert figure["texts"] == ["run flowers-64", "seed 1"]
    noise, _, kid = figure["axes"]
    assert noise[0] == (0.5, 1.5)  # the single epoch sits in the middle of a sensible x range
    assert noise[3] == "epoch" and "mean absolute error" in noise[4]
    assert kid[4] == "KID (75 px Inception, N = 1638)"
    for axis in figure["axes"]:
        assert any(axis[1]) and any(axis[2])  # tick labels on every panel
    assert noise[5][0] != noise[5][1]  # train and validation coincide here, yet differ in marker and dashes
    assert all(marker not in ("", "None") for marker, _ in noise[5])


def test_a_grid_caption_goes_in_a_strip_below_and_leaves_the_images_alone(tmp_path: Path) -> None:
    images = torch.rand(9, 3, 16, 16)
    save_grid(images, tmp_path / "plain.png")
    save_grid(images, tmp_path / "captioned.png", caption="EMA still 95% initial weights (see --ema-warmup)")
    plain, captioned = (np.asarray(Image.open(tmp_path / name)) for name in ("plain.png", "captioned.png"))
    assert captioned.shape[1] == plain.shape[1] and captioned.shape[0] > plain.shape[0]
    assert np.array_equal(captioned[:plain.shape[0]], plain)
    assert (captioned[plain.shape[0]:] < 128).any()  # some text was drawn


def test_a_run_resumed_inside_an_epoch_logs_that_epoch_once(images: Path, tmp_path: Path) -> None:
    """--max-steps 2 ends inside the first epoch (3 steps): its partial row is replaced when the epoch completes,
    in the history, metrics.jsonl and TensorBoard alike."""
    import json

    from conftest import TINY_SYNTHETIC_TRAIN

    from ddim.cli import main

    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY_SYNTHETIC_TRAIN, "--max-steps", "2",
                 "--log-every", "1"]) == 0
    assert main(["train", "--resume", str(run_dir), "--max-steps", "6"]) == 0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"]) for r in records if r["kind"] == "epoch"] == [(1, 3), (2, 6)]
    assert [r["step"] for r in records if r["kind"] == "step"] == [1, 2, 3, 4, 5, 6]
    accumulator = events(run_dir / "tensorboard")
    assert sorted(scalars(accumulator, "epoch/train_noise_loss")) == [3, 6]
    assert sorted(scalars(accumulator, "val/noise_loss")) == [3, 6]
