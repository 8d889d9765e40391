"""A new user's first hour: what a short run, a resume and the end of a run say, and what the loop reports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import TINY_SYNTHETIC_TRAIN

from ddim.cli import main
from ddim.data import DataError
from ddim.data.flowers import download_flowers102
from ddim.training.callbacks import Callback

TINY = [*TINY_SYNTHETIC_TRAIN, "--no-tensorboard"]


def test_a_short_run_says_why_its_grids_look_like_noise_and_how_to_change_it(images: Path, tmp_path: Path,
                                                                            capsys) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY, "--max-steps", "2"]) == 0
    err = capsys.readouterr().err
    assert "is too short for --ema 0.999" in err and "--ema-warmup yes" in err
    assert "100% of its initial weights" in err
    assert main(["train", "--data", str(images), "--run-dir", str(tmp_path / "warm"), *TINY, "--max-steps", "2",
                 "--ema-warmup", "yes"]) == 0
    assert "too short" not in capsys.readouterr().err


def test_the_bar_respects_max_steps_and_a_resume_says_where_it_stands(images: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    common = [*TINY, "--log-every", "1", "--log-format", "bar"]  # capsys is no terminal: ask for the bar
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *common, "--max-steps", "2",
                 "--epochs", "50"]) == 0
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "2/2" in err and "epoch 1/50" not in err and "/150" not in err
    assert main(["train", "--resume", str(run_dir), "--max-steps", "4", "--log-format", "bar"]) == 0
    err = capsys.readouterr().err
    assert f"resuming {run_dir} at step 2 of 4" in err and "epoch 2/2" in err
    assert main(["train", "--resume", str(run_dir), "--max-steps", "4"]) == 0
    err = capsys.readouterr().err
    assert f"nothing to do: the run in {run_dir} is complete (4 steps)" in err
    assert f"resume it with a larger length: ddim train --resume {run_dir} --max-steps 8" in err


def test_a_young_ema_is_explained_at_sampling_and_a_resume_that_changes_it_says_what_to_do(images: Path,
                                                                                         tmp_path: Path,
                                                                                         capsys) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY, "--max-steps", "2"]) == 0
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(run_dir), "--num", "2", "--steps", "1", "--device", "cpu",
                 "--out", str(tmp_path / "noise"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "ddim sample: warning: checkpoint " in err and "after 2 steps the EMA network (--ema 0.999) still holds" in err
    assert "look like noise" in err and "--ema-std 0.1" in err

    assert main(["train", "--resume", str(run_dir), "--max-steps", "4", "--ema-warmup", "yes"]) == 1
    err = capsys.readouterr().err
    assert "--ema-warmup was no, now yes" in err and "how the EMA network" in err
    assert "data order or the objective" not in err  # the reason of the data and loss fields, not of this one
    suggested = err.split("start a new run from this one's settings: ")[1].split()
    assert suggested[:3] == ["ddim", "train", "--config"] and Path(suggested[3]).name == "config.json"
    assert Path(suggested[3]).is_relative_to(run_dir) and suggested[4:6] == ["--ema-warmup", "yes"]
    suggested[suggested.index("NEW_FOLDER")] = str(tmp_path / "warm")
    assert main(suggested[1:]) == 0  # the command it gives works as written
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(tmp_path / "warm"), "--num", "2", "--steps", "1", "--device", "cpu",
                 "--out", str(tmp_path / "flowers"), "--no-progress"]) == 0
    assert "warning" not in capsys.readouterr().err  # the warmed-up EMA holds none of its initial weights


def test_the_end_of_a_run_summarises_it_with_the_next_commands(images: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY, "--epochs", "1",
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "done: 3 steps in" in err and "(step 3 of 3)" in err
    assert f"next: ddim sample --checkpoint {run_dir} --num 64 --out {run_dir / 'final'}" in err
    assert f"ddim evaluate --checkpoint {run_dir}" in err


def test_each_log_carries_the_learning_rate_and_throughput(images: Path, tmp_path: Path) -> None:
    from ddim import config_with
    from ddim.training import fit

    class Record(Callback):
        logs: list = []

        def on_log(self, step: int, metrics: dict) -> None:
            self.logs.append(metrics)

    config = config_with(data=str(images), image_size=16, widths=(8, 16), block_depth=1, batch_size=8, repeats=1,
                         kid_every=0, device="cpu", max_steps=2, log_every=1, lr=3e-4)
    fit(config, tmp_path / "run", callbacks=[Record()])
    assert len(Record.logs) == 2
    assert all(log["lr"] == 3e-4 and log["images_per_second"] > 0 for log in Record.logs)


def test_an_offline_download_failure_says_how_to_use_a_local_copy(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="point --data at a local copy"):
        download_flowers102(tmp_path / "cache", f"file://{tmp_path}/no-such-mirror/")


def test_an_unreadable_image_names_the_way_past_it_and_a_failed_start_leaves_no_run_folder(tmp_path: Path,
                                                                                           capsys) -> None:
    from conftest import write_images

    folder = tmp_path / "mine"
    write_images(folder, 32, size=(20, 18))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    run_dir = tmp_path / "runs" / "first"
    assert main(["train", "--data", str(folder), "--run-dir", str(run_dir), *TINY, "--max-steps", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read image" in err and "broken.jpg" in err
    assert "ddim train --skip-unreadable yes leaves unreadable images out" in err
    assert not run_dir.exists()  # not a folder holding only .lock, which would look like a run
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")  # a folder the user made is kept, with what it holds
    assert main(["train", "--data", str(folder), "--run-dir", str(tmp_path / "kept"), *TINY, "--max-steps", "1"]) == 1
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == [".lock", "notes.txt"]
    capsys.readouterr()
    assert main(["train", "--data", str(folder), "--run-dir", str(run_dir), *TINY, "--max-steps", "1",
                 "--skip-unreadable", "yes"]) == 0
    assert "skipped 1 unreadable images" in capsys.readouterr().err


def test_a_log_file_gets_plain_lines_one_per_epoch_with_the_time_left(images: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    def train(run: str, *extra: str) -> str:
        result = subprocess.run([sys.executable, "-m", "ddim", "train", "--data", str(images), "--run-dir",
                                 str(tmp_path / run), *TINY, "--epochs", "2", *extra],
                                capture_output=True, timeout=600)  # bytes: text mode would turn \r into \n
        assert result.returncode == 0, result.stderr
        return result.stderr.decode()

    log = train("auto")  # standard error is a pipe here, as when redirected to a file: plain lines
    assert "\r" not in log
    epochs = [line for line in log.splitlines() if line.startswith("ddim: epoch ")]
    assert [line.split()[2] for line in epochs] == ["1/2", "2/2"]
    assert all("train_noise_loss=" in line and "img/s" in line for line in epochs)
    assert epochs[0].endswith(" left") and not epochs[1].endswith(" left")  # nothing is left after the last
    assert re.search(rf"ddim: training on \d+ images \(\d+ for validation\) from {re.escape(str(images))}", log)
    assert train("quiet", "--no-progress").count("ddim: epoch ") == 2  # --no-progress: plain lines, not silence
    assert "\r" in train("bar", "--log-format", "bar")  # asked for: the live bar, even into a pipe


def test_the_time_left_after_a_resume_is_not_swollen_by_the_start(monkeypatch) -> None:
    """A resumed run's first line comes after a few steps and the start (loading, compiling): its time left comes
    from the epoch's images/s and evaluation time, the later lines from the pace since that first line."""
    import io
    from types import SimpleNamespace

    from ddim.training import callbacks

    clock = iter([0.0, 1000.0, 1010.0, 1100.0])  # start; 1st epoch end (after 2 steps); 2nd; 3rd
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    bar = callbacks.ProgressBar(file=out, style="plain")
    config = SimpleNamespace(train=SimpleNamespace(batch_size=16))
    bar.on_train_start(SimpleNamespace(state=SimpleNamespace(step=38), total_steps=100, steps_per_epoch=10,
                                       notices=(), description="resumed", config=config))
    for epoch, step in ((4, 40), (5, 50), (10, 100)):
        row = {"step": step, "seconds": 60.0, "images_per_second": 32.0, "eval_seconds": 5.0}  # 2 steps/s
        bar.on_epoch_end(epoch, row, None, None)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("ddim: epoch")]
    assert lines[0].endswith("| 0:01:00 left")  # 60 steps at 2/s, and 6 evaluations of 5 s (not 1000 s / 2 x 60)
    assert lines[1].endswith("| 0:00:50 left")  # 10 s for the last 10 steps: 50 steps left
    assert not lines[2].endswith(" left")


def own_images_commands() -> list[list[str]]:
    """The commands of the README's "Train on your own images" section, as written (its first bash block)."""
    import re
    import shlex

    from conftest import REPO

    text = (REPO / "README.md").read_text()
    section = text[text.index("## Train on your own images"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


def test_the_own_images_section_of_the_readme_runs_as_written_on_a_small_folder(tmp_path: Path, monkeypatch,
                                                                                capsys) -> None:
    """The section's commands, run in a folder holding ``mine``; training gets only the options that make it
    tiny (narrow, 16 px, 4 steps) appended, which override the recipe's as on any command line."""
    from conftest import write_images

    commands = own_images_commands()
    assert [command[:2] for command in commands] == [["ddim", "train"], ["ddim", "sample"], ["ddim", "evaluate"]]
    assert commands[0][2:4] == ["--recipe", "laptop"]
    write_images(tmp_path / "mine", 40, size=(24, 20))
    monkeypatch.chdir(tmp_path)
    tiny = ["--widths", "8,16", "--block-depth", "1", "--image-size", "16", "--batch-size", "8", "--max-steps", "4",
            "--plot-images", "2", "--plot-steps", "2", "--device", "cpu", "--no-tensorboard"]
    assert main(commands[0][1:] + tiny) == 0
    err = capsys.readouterr().err
    assert "too short" not in err  # the recipe's power EMA: even 4 steps are not an average of random weights
    config = json.loads((tmp_path / "runs" / "mine" / "config.json").read_text())
    assert config["data"]["flip"] and config["data"]["repeats"] == 50 and config["train"]["ema_std"] == 0.1
    assert main(commands[1][1:] + ["--steps", "2", "--device", "cpu", "--no-progress"]) == 0
    assert len(list((tmp_path / "runs" / "mine" / "final").glob("*.png"))) >= 16
    capsys.readouterr()
    assert main(commands[2][1:] + ["--steps", "2", "--device", "cpu", "--no-progress"]) == 0
    results = json.loads((tmp_path / "runs" / "mine" / "evaluate.json").read_text())
    assert results["num_real"] == 40 and results["kid_subset_size"] == 40  # every image of the folder
    err = capsys.readouterr().err
    assert "warning: FID from 40 generated vs 40 real images is biased upwards" in err  # as the section says


def test_files_copied_in_from_another_run_are_named_as_such_not_blamed_on_the_data(images: Path, tmp_path: Path,
                                                                                  capsys) -> None:
    import shutil

    from conftest import STATE

    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", "--data", str(images), "--run-dir", str(first), *TINY, "--max-steps", "3"]) == 0
    assert main(["train", "--data", str(images), "--run-dir", str(second), *TINY, "--max-steps", "3",
                 "--seed", "7"]) == 0
    step = "step_000000003"
    shutil.copyfile(second / "checkpoints" / step / STATE, first / "checkpoints" / step / STATE)
    capsys.readouterr()
    assert main(["train", "--resume", str(first), "--max-steps", "6"]) == 1
    err = capsys.readouterr().err
    assert f"its {STATE} does not belong to its model.safetensors (it was written with other weights)" in err
    assert "are not the ones the run was trained on" not in err  # the data is right
    assert (first / "checkpoints" / step).is_dir()  # the user's files are left where they are

    other = tmp_path / "other"  # another image size, conditional or not: another model
    assert main(["train", "--data", str(images), "--run-dir", str(other), *TINY, "--max-steps", "4",
                 "--widths", "8,8"]) == 0
    shutil.copytree(other / "checkpoints" / "step_000000004", second / "checkpoints" / "step_000000004")
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(second), "--num", "1", "--steps", "1", "--device", "cpu",
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"the latest checkpoint of {second}, step_000000004, is not this run's model (model.widths" in err
    assert main(["sample", "--checkpoint", str(second / "checkpoints" / "step_000000004"), "--num", "1", "--steps",
                 "1", "--device", "cpu", "--out", str(tmp_path / "out"), "--no-progress"]) == 0  # asked for itself


def test_the_published_laptop_measurement_is_the_shipped_laptop_recipe_and_the_readme_quotes_it() -> None:
    """docs/results/laptop holds the README's "what to expect" run: it must have been made with the laptop recipe
    as shipped now (a changed recipe makes the published timings stale), run to the recipe's end, and the README's
    table must quote its history."""
    import csv

    from conftest import REPO

    from ddim.recipes import load_recipe

    folder = REPO / "docs" / "results" / "laptop"
    saved = json.loads((folder / "config.json").read_text())
    for section, field, value in load_recipe("laptop").changes():
        assert saved[section][field] == value, (section, field)
    rows = list(csv.DictReader((folder / "history.csv").open()))
    assert int(rows[-1]["step"]) == saved["train"]["max_steps"]
    section = (REPO / "README.md").read_text().split("## Train on your own images")[1].split("\n## ")[0]
    kid = {int(row["step"]): float(row["val_kid"]) for row in rows}
    for step, epoch in ((561, 3), (1496, 8), (2555, 14)):
        assert (folder / f"epoch_{epoch:04d}.png").is_file()
        assert f"{step:,} ({epoch}" in section and f"| {kid[step]:.2f}" in section
    assert f"best {min(kid.values()):.2f} at step {min(kid, key=kid.get):,}" in section
