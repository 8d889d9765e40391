"""scripts/epoch_kid.py: the per-epoch KID measured after training, from checkpoints or exports of chosen epochs, is
the KID training itself measures (a tiny conditional run of shapes at 16 px, guidance 0, 75 px Inception)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
from conftest import write_shapes
from test_conditional import TRAIN
from test_results_section import load_script

from ddim.cli import main
from ddim.config import RunConfig
from ddim.layout import RunLayout
from ddim.reports import read_history

epoch_kid = load_script("epoch_kid")


def without_kid(history: Path) -> None:
    """Rewrite a history CSV with its val_kid column empty, as a run trained with --kid-every 0 has it."""
    with open(history, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["val_kid"] = ""
    with open(history, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.slow
def test_kid_measured_afterwards_is_the_kid_training_measured(tmp_path: Path, monkeypatch, capsys) -> None:
    data, run = write_shapes(tmp_path / "data", per_class=24), tmp_path / "run"
    assert main(["train", "--data", str(data), "--run-dir", str(run), *TRAIN, "--epochs", "2", "--kid-every", "1",
                 "--guidance", "0", "--keep-checkpoints", "5"]) == 0
    layout = RunLayout(run)
    measured = {int(row["epoch"]): row["val_kid"] for row in read_history(layout.history)}
    assert len(measured) == 2
    checkpoints = sorted((run / "checkpoints").glob("step_*"))
    assert len(checkpoints) == 2
    exported = tmp_path / "last-fp16.safetensors"
    assert main(["export", "--checkpoint", str(checkpoints[-1]), "--out", str(exported)]) == 0

    without_kid(layout.history)
    monkeypatch.setattr(sys, "argv", ["epoch_kid.py", str(run), *map(str, checkpoints), "--device", "cpu"])
    epoch_kid.main()
    rows = read_history(layout.history)
    assert {int(row["epoch"]): row["val_kid"] for row in rows} == pytest.approx(measured, abs=1e-6)
    assert "epoch 2 (step" in capsys.readouterr().out
    with open(layout.history, newline="") as handle:  # epochs and steps stay whole numbers in the file
        assert next(csv.DictReader(handle))["epoch"] == "1"

    # The fp16 export a GPU machine brings back: the same measurement within a small fraction of the KID.
    without_kid(layout.history)
    kids = epoch_kid.epoch_kids(run, [str(exported)], device="cpu")
    assert list(kids) == [2]
    assert kids[2] == pytest.approx(measured[2], rel=0.02)
    assert [row.get("val_kid") for row in read_history(layout.history)] == [None, kids[2]]

    # Another sampler than the protocol's: measured and printed, the history left as it is.
    before = layout.history.read_text()
    more_steps = epoch_kid.epoch_kids(run, [str(checkpoints[-1])], device="cpu", kid_steps=10)
    assert list(more_steps) == [2] and more_steps[2] != pytest.approx(measured[2], abs=1e-6)
    assert layout.history.read_text() == before

    # Another guidance weight (the run's history is at guidance 0): the conditional samples' KID, printed only.
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["epoch_kid.py", str(run), str(checkpoints[-1]), "--device", "cpu",
                                      "--guidance", "1"])
    epoch_kid.main()
    printed = capsys.readouterr().out
    assert "with guidance 1 (not written into the history)" in printed
    guided = float(printed.split("KID ")[1].split()[0])
    assert guided != pytest.approx(measured[2], abs=1e-4)
    assert layout.history.read_text() == before

    # --csv records every measurement, printed-only or not; one measured again replaces its row.
    table = tmp_path / "guided-kid.csv"
    monkeypatch.setattr(sys, "argv", ["epoch_kid.py", str(run), *map(str, checkpoints), "--device", "cpu",
                                      "--guidance", "1", "--csv", str(table)])
    epoch_kid.main()
    epoch_kid.epoch_kids(run, [str(checkpoints[-1])], device="cpu", csv_file=table)  # the run's protocol
    epoch_kid.epoch_kids(run, [str(checkpoints[-1])], device="cpu", guidance=1.0, csv_file=table)  # again
    with open(table, newline="") as handle:
        rows = [(row["epoch"], row["step"], row["guidance"], row["kid_steps"], float(row["kid"]))
                for row in csv.DictReader(handle)]
    step = str(int(read_history(layout.history)[-1]["step"]))
    assert [row[:4] for row in rows] == [("2", step, "0", "5"), ("1", str(int(step) // 2), "1", "5"),
                                         ("2", step, "1", "5")]
    assert rows[0][4] == pytest.approx(measured[2], abs=1e-6) and rows[2][4] == pytest.approx(guided, abs=1e-4)
    foreign = tmp_path / "other.csv"
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit, match=r"--csv .*other.csv: not a file this script wrote \(its columns are a, b"):
        epoch_kid.epoch_kids(run, [str(checkpoints[-1])], device="cpu", csv_file=foreign)
    assert foreign.read_text() == "a,b\n1,2\n"


def test_a_folder_that_is_not_the_run_is_named(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="history.csv does not exist"):
        epoch_kid.epoch_kids(tmp_path, ["pretrained"], device="cpu")


def test_guidance_is_refused_for_an_unconditional_run_and_bad_values_by_name(tmp_path: Path, monkeypatch,
                                                                              capsys) -> None:
    layout = RunLayout(tmp_path)
    RunConfig().save(layout.config)
    layout.history.write_text("epoch,step,val_kid\n1,511,2.0\n")
    with pytest.raises(SystemExit, match="is not a conditional run"):
        epoch_kid.epoch_kids(tmp_path, ["pretrained"], device="cpu", guidance=1.0)
    monkeypatch.setattr(sys, "argv", ["epoch_kid.py", str(tmp_path), "pretrained", "--guidance", "nan"])
    with pytest.raises(SystemExit):
        epoch_kid.main()
    assert "--guidance must be a finite number of at least 0, got nan" in capsys.readouterr().err


def test_data_that_cannot_be_read_is_one_line_naming_it(tmp_path: Path, monkeypatch) -> None:
    layout = RunLayout(tmp_path)
    RunConfig().save(layout.config)
    layout.history.write_text("epoch,step,val_kid\n1,511,2.0\n")
    missing = tmp_path / "no-such-images"
    monkeypatch.setattr(sys, "argv", ["epoch_kid.py", str(tmp_path), "pretrained", "--device", "cpu",
                                      "--data", str(missing)])
    with pytest.raises(SystemExit, match=f"epoch_kid.py: error: .*{missing.name}"):
        epoch_kid.main()


@pytest.mark.slow
def test_the_gpu_scripts_recipe_runs_come_back_as_exports_whose_kid_is_measured_here(tmp_path: Path) -> None:
    """``CHECK=recipe bash scripts/gpu_check.sh`` on the CPU with tiny runs: the files it returns hold each run's
    history and the asked epochs' exports, a second call resumes (nothing to redo), and epoch_kid.py measures the
    exports here against the data's own images."""
    import os
    import subprocess
    import tarfile

    data = write_shapes(tmp_path / "data", per_class=24)
    out, runs, back = tmp_path / "out", tmp_path / "runs", tmp_path / "back"
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "CHECK": "recipe",
                   "DEVICE": "cpu", "TRAIN_LIMIT": "300", "DATA": str(data), "OUT": str(out), "RUNS_DIR": str(runs),
                   "RECIPE_RUNS": "arm;1 2;--recipe improved --epochs 2 --no-flip\n"
                                  "cond;2;--recipe improved --conditional --guidance 0 --epochs 2",
                   "TRAIN": "--widths 8,16 --block-depth 1 --image-size 16 --batch-size 16 --repeats 1 "
                            "--plot-images 4 --plot-steps 2"}
    script = Path(epoch_kid.__file__).parent / "gpu_check.sh"
    for call in range(2):
        finished = subprocess.run(["bash", str(script)], env=environment, capture_output=True, text=True, timeout=600)
        assert finished.returncode == 0, finished.stdout + finished.stderr
        assert "cond: 2 epochs finished" in finished.stdout
    assert "done: 0 steps" in (runs / "cond.log").read_text()  # the second call resumed a finished run
    assert sorted(path.name for path in out.iterdir()) == ["exports0.tar", "results.tar"]
    for bundle in out.iterdir():
        with tarfile.open(bundle) as tar:
            tar.extractall(back)
    assert sorted(path.name for path in (back / "exports").iterdir()) == [
        "arm-e1.safetensors", "arm-e2.safetensors", "cond-e2.safetensors"]
    assert (back / "runs" / "cond" / "config.json").is_file()

    kids = epoch_kid.epoch_kids(back / "runs" / "cond", [str(back / "exports" / "cond-e2.safetensors")],
                                data=str(data), device="cpu")
    assert list(kids) == [2] and 0 < kids[2] < 10
    assert [row.get("val_kid") for row in read_history(back / "runs" / "cond" / "history.csv")] == [None, kids[2]]


def test_the_gpu_scripts_loop_profile_returns_the_recipes_bench_step_and_the_loops_host_time(tmp_path: Path) -> None:
    """``CHECK=profile bash scripts/gpu_check.sh`` on the CPU, tiny: the improved conditional recipe's bench step, the
    training loop's history and its profile (the loop's step among the profiled functions) come back in $OUT."""
    import json
    import os
    import pstats
    import subprocess

    data = write_shapes(tmp_path / "data", per_class=12)
    out = tmp_path / "out"
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "CHECK": "profile",
                   "DEVICE": "cpu", "DATA": str(data), "OUT": str(out), "PROFILE_STEPS": "3",
                   "BENCH": "--rounds 1 --iterations 1 --warmup 1 --widths 8,16 --block-depth 1 --image-size 16",
                   "TRAIN": "--widths 8,16 --block-depth 1 --image-size 16 --batch-size 8 --repeats 1 "
                            "--plot-images 2 --plot-steps 2"}
    script = Path(epoch_kid.__file__).parent / "gpu_check.sh"
    finished = subprocess.run(["bash", str(script)], env=environment, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert sorted(path.name for path in out.iterdir()) == ["bench-recipe.json", "profile-history.csv", "profile.txt",
                                                          "train.prof"]
    bench = json.loads((out / "bench-recipe.json").read_text())
    assert bench["config_changes"]["model.conditional"] is True and bench["config_changes"]["data.flip"] is True
    assert [row["task"] for row in bench["results"]] == ["train"]
    assert read_history(out / "profile-history.csv")[-1]["step"] == 3  # the loop ran PROFILE_STEPS steps
    profiled = pstats.Stats(str(out / "train.prof")).stats  # type: ignore[attr-defined]
    calls = {(Path(file).name, name): stat[1] for (file, _, name), stat in profiled.items()}
    assert calls[("step.py", "__call__")] == 3  # the loop's three training steps, profiled
    assert "ddim/(training|data|ema)" in (out / "profile.txt").read_text()


def test_every_run_the_gpu_script_trains_by_default_is_a_valid_training_command(tmp_path: Path) -> None:
    """The default RECIPE_RUNS of scripts/gpu_check.sh, each trained for one step at a tiny width: a wrong option
    combination (as `--lr-schedule constant` over the improved recipe's decay steps was) fails here, not on a lent
    GPU."""
    import re
    import shlex

    text = (Path(epoch_kid.__file__).parent / "gpu_check.sh").read_text()
    block = re.search(r'RECIPE_RUNS=\$\{RECIPE_RUNS:-"(.*?)"\}', text, re.DOTALL)
    assert block, "scripts/gpu_check.sh has no default RECIPE_RUNS"
    runs = [line.split(";") for line in block.group(1).splitlines() if line.strip()]
    assert len(runs) >= 3 and all(len(run) == 3 for run in runs)
    data = write_shapes(tmp_path / "data", per_class=12)
    tiny = ["--widths", "8,16", "--block-depth", "1", "--image-size", "16", "--batch-size", "8", "--repeats", "1",
            "--kid-every", "0", "--plot-images", "2", "--plot-steps", "2", "--max-steps", "1", "--device", "cpu",
            "--no-progress", "--no-tensorboard"]
    for name, _, options in runs:
        assert main(["train", "--data", str(data), "--run-dir", str(tmp_path / name), *shlex.split(options),
                     *tiny]) == 0, f"RECIPE_RUNS line {name}: {options}"
