"""Run-folder safety on small synthetic image folders: locks, unreadable checkpoints, config and weights
that disagree, non-finite weights, other data on resume, a full disk, bad training states."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import (
    CONFIG,
    STATE,
    TINY_SYNTHETIC_TRAIN,
    WEIGHTS,
    loaded,
    step_checkpoints,
    step_dir_name,
    training_state,
    write_images,
)
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ddim import checkpoint as ckpt
from ddim.cli import main
from ddim.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ddim.files import FolderLock
from ddim.training import TrainingError, fit

TINY = [*TINY_SYNTHETIC_TRAIN, "--no-progress"]


def config(images: Path, **train) -> RunConfig:
    options = dict(epochs=2, batch_size=8, seed=1, device="cpu", kid_every=0, plot_images=4, plot_steps=2,
                   checkpoint_every=1, keep_checkpoints=2, log_every=1)
    options.update(train)
    return RunConfig(model=ModelConfig(image_size=16, widths=(8, 16), block_depth=1),
                     data=DataConfig(path=str(images), repeats=1), train=TrainConfig(**options))


def test_a_second_process_on_the_same_run_folder_is_refused_with_the_holders_pid(images: Path, tmp_path: Path,
                                                                                capsys) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from ddim.files import FolderLock; "
                               f"lock = FolderLock({str(run_dir)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY]) == 1
        err = capsys.readouterr().err
        assert f"is in use by another ddim process (pid {holder.pid})" in err and "Traceback" not in err
        assert not (run_dir / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY, "--max-steps", "1"]) == 0


def test_the_lock_is_held_for_the_whole_run_and_released_after(images: Path, tmp_path: Path) -> None:
    from ddim.training.callbacks import Callback

    class TryLock(Callback):
        def on_log(self, step: int, metrics: dict) -> None:
            with pytest.raises(RuntimeError, match="in use"):
                FolderLock(tmp_path / "run").acquire()
            self.tried = True

    probe = TryLock()
    fit(config(images, max_steps=1), tmp_path / "run", callbacks=[probe])
    assert probe.tried
    FolderLock(tmp_path / "run").acquire().release()  # free again after fit returned


def test_an_unreadable_newest_checkpoint_is_set_aside_said_and_never_costs_the_readable_ones(
        images: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY, "--max-steps", "4",
                 "--checkpoint-every", "1", "--keep-checkpoints", "2"]) == 0
    newest = step_checkpoints(run_dir)[-1]
    assert newest.name == step_dir_name(4)
    (newest / WEIGHTS).write_bytes(b"damaged")  # e.g. a disk error after the write
    capsys.readouterr()
    # keep 2: the unreadable step 4 must not count, or the readable step 3 would be pruned too early
    assert main(["train", "--resume", str(run_dir), "--max-steps", "5", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "checkpoint step_000000004 is unreadable" in err and "resumed from the one before" in err
    assert [p.name for p in step_checkpoints(run_dir)] == [step_dir_name(4), step_dir_name(5)]
    assert (run_dir / "checkpoints" / "unreadable-step_000000004").is_dir()  # kept for inspection
    for folder in step_checkpoints(run_dir):
        loaded(folder)  # every kept checkpoint is readable
    (step_checkpoints(run_dir)[-1] / WEIGHTS).write_bytes(b"damaged again")  # a second failure
    assert main(["train", "--resume", str(run_dir), "--max-steps", "6", "--no-progress"]) == 0
    assert (run_dir / "checkpoints" / "unreadable-step_000000005").is_dir()


def test_a_checkpoint_config_that_disagrees_with_its_weights_is_refused(images: Path, tmp_path: Path) -> None:
    fit(config(images, max_steps=1), tmp_path / "run")
    folder = step_checkpoints(tmp_path / "run")[-1]
    original = (folder / CONFIG).read_text()
    for change, message in [(lambda c: c["model"].pop("prediction"), "model.prediction"),
                            (lambda c: c["model"].update(image_size=32), "model.image_size is 32 there, 16 when"),
                            (lambda c: c["model"].update(prediction="velocity"), "model.prediction is 'velocity'"),
                            (lambda c: c["train"].pop("lr"), "train.lr: is missing")]:
        edited = json.loads(original)
        change(edited)
        (folder / CONFIG).write_text(json.dumps(edited))
        with pytest.raises(ckpt.CheckpointError, match=message):
            loaded(folder)


def test_non_finite_or_damaged_weights_are_refused_at_load_and_never_saved(images: Path, tmp_path: Path,
                                                                          capsys) -> None:
    fit(config(images, max_steps=1), tmp_path / "run")
    folder = step_checkpoints(tmp_path / "run")[-1]
    weights = folder / WEIGHTS
    with safe_open(str(weights), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(weights))
    name = next(n for n, t in tensors.items() if n.startswith("ema_network.") and t.is_floating_point() and t.any())
    zeroed = dict(tensors, **{name: torch.zeros_like(tensors[name])})
    save_file(zeroed, weights, metadata=metadata)  # zeroed bytes: caught by the checksum
    assert main(["sample", "--checkpoint", str(folder), "--num", "1", "--steps", "1", "--out",
                 str(tmp_path / "s")]) == 1
    assert "damaged: its weights do not match the sha256" in capsys.readouterr().err
    poisoned = dict(tensors, **{name: torch.full_like(tensors[name], float("nan"))})
    save_file(poisoned, weights, metadata={k: v for k, v in metadata.items() if k != "sha256"})  # as ddim 0.1 wrote
    assert main(["sample", "--checkpoint", str(folder), "--num", "1", "--steps", "1", "--out",
                 str(tmp_path / "s")]) == 1
    assert "holds NaN or infinite weights" in capsys.readouterr().err
    from ddim.model import DiffusionModel

    model = DiffusionModel(config(images).model)
    with torch.no_grad():
        next(model.ema_network.parameters()).fill_(float("inf"))
    with pytest.raises(ckpt.CheckpointError, match="refusing to write .* NaN or infinity"):
        ckpt.write_checkpoint(tmp_path / "never", model, config(images))
    assert not (tmp_path / "never").exists()


def test_resume_with_other_images_is_refused(images: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY, "--max-steps", "2"]) == 0
    before = (run_dir / "config.json").read_text()
    other = tmp_path / "other"
    write_images(other, 32, size=(20, 18), seed=7)
    assert main(["train", "--resume", str(run_dir), "--data", str(other), "--max-steps", "4", "--no-progress"]) == 1
    assert "are not the ones the run was trained on" in capsys.readouterr().err
    assert (run_dir / "config.json").read_text() == before  # not rewritten
    moved = tmp_path / "moved"
    shutil.copytree(images, moved)  # the same images elsewhere (new mtimes): fine
    assert main(["train", "--resume", str(run_dir), "--data", str(moved), "--max-steps", "3", "--no-progress"]) == 0


def test_a_training_state_of_another_model_is_refused_before_the_optimiser_sees_it(images: Path,
                                                                                  tmp_path: Path) -> None:
    fit(config(images, max_steps=1), tmp_path / "a")
    wider = config(images, max_steps=1)
    wider = RunConfig(model=ModelConfig(image_size=16, widths=(8, 32), block_depth=1), data=wider.data,
                      train=wider.train)
    fit(wider, tmp_path / "b")
    target = step_checkpoints(tmp_path / "a")[-1] / STATE
    shutil.copyfile(step_checkpoints(tmp_path / "b")[-1] / STATE, target)
    with pytest.raises(TrainingError, match=f"its {STATE} does not belong to its model.safetensors"):
        fit(config(images, max_steps=2), tmp_path / "a", resume=True)
    foreign = torch.load(target, weights_only=True)
    del foreign["weights_sha256"]  # as ddim 0.3 wrote it, unbound: the optimiser's shapes still give it away
    torch.save(foreign, target)
    with pytest.raises(TrainingError, match="optimiser state .* does not have this model's shape"):
        fit(config(images, max_steps=2), tmp_path / "a", resume=True)
    torch.save({"step": 1}, target)  # missing entries
    with pytest.raises(TrainingError, match="lacks the history, optimizer, noise_generators entries"):
        fit(config(images, max_steps=2), tmp_path / "a", resume=True)


def test_a_batch_larger_than_the_training_set_is_a_clear_error(images: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", "--data", str(images), "--run-dir", str(tmp_path / "run"),
                 *TINY, "--batch-size", "64"]) == 1
    err = capsys.readouterr().err
    assert "--batch-size 64 is too large for this data" in err and "Traceback" not in err


def leftovers(folder: Path) -> list[Path]:
    """Temporary files or folders a failed write left behind."""
    return [p for p in folder.rglob("*") if p.name.startswith((".tmp-", ".old-", ".trash-")) or
            (p.is_file() and p.stat().st_size == 0 and p.name != ".lock")]


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 1 MiB tmpfs (root only): a real full disk."""
    import os

    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root (CI runs as root)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_stops_training_with_one_message_and_the_run_resumes_elsewhere(images: Path, tmp_path: Path,
                                                                                  tiny_disk: Path, capsys) -> None:
    args = [*TINY, "--epochs", "3", "--checkpoint-every", "1"]
    straight = tmp_path / "straight"
    assert main(["train", "--data", str(images), "--run-dir", str(straight), *args]) == 0
    run_dir = tiny_disk / "run"
    capsys.readouterr()
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *args, "--keep-checkpoints", "100"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ddim train: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in err
    assert not leftovers(run_dir)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(run_dir, elsewhere)
    assert main(["train", "--resume", str(elsewhere), "--no-progress", "--keep-checkpoints", "2"]) == 0
    for epoch in (1, 2, 3):
        assert (elsewhere / "samples" / f"epoch_{epoch:04d}.png").is_file()
    assert (elsewhere / "history.csv").read_text().count("\n") == 4  # header + 3 epochs
    a, b = (load_file(str(step_checkpoints(r)[-1] / WEIGHTS)) for r in (straight, elsewhere))
    assert all(torch.equal(a[name], b[name]) for name in a)  # the same run as without the full disk


def test_a_grid_that_cannot_be_written_stops_cleanly_and_the_resumed_run_draws_it(images: Path, tmp_path: Path,
                                                                                 monkeypatch, capsys) -> None:
    import errno

    from ddim import reports

    original = reports.save_image

    def disk_full(tensor, path, **kwargs):
        Path(path).write_bytes(b"")  # a writer that dies after creating its file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(reports, "save_image", disk_full)
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY, "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ddim train: error:")]
    assert len(errors) == 1 and "Traceback" not in err
    assert "epoch_0001.png: No space left on device" in errors[0] and "ddim train --resume" in errors[0]
    assert not leftovers(run_dir) and not (run_dir / "samples" / "epoch_0001.png").exists()
    monkeypatch.setattr(reports, "save_image", original)
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    assert (run_dir / "samples" / "epoch_0001.png").is_file() and (run_dir / "samples" / "epoch_0002.png").is_file()


# Runs ddim with every rename that replaces the best checkpoint counted; the K-th kills the process (SIGKILL, so no
# cleanup runs) just before it happens, as `strace -e inject=rename:signal=KILL:when=K` did in the audit.
KILL_AT_BEST_RENAME = """
import os, signal, sys
from pathlib import Path
kill_at, count, rename = int(sys.argv[1]), [0], Path.rename
def counted(self, target):
    if "best" in Path(self).name or "best" in Path(target).name:
        count[0] += 1
        print("best rename", count[0], Path(self).name, "->", Path(target).name, file=sys.stderr, flush=True)
        if count[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    return rename(self, target)
Path.rename = counted
from ddim.cli import main
sys.exit(main(sys.argv[2:]))
"""


def best_is_consistent(run_dir: Path) -> None:
    """The best checkpoint exists, loads, and is the one whose KID the run's latest state calls the best."""
    latest = training_state(step_checkpoints(run_dir)[-1])
    best = run_dir / "checkpoints" / "best"
    assert best.is_dir(), sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    loaded(best)
    row = next(r for r in latest["history"] if r["step"] == training_state(best)["step"])
    assert row["val_kid"] == latest["best_kid"] == min(r["val_kid"] for r in latest["history"])
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith((".tmp-", ".old-"))]


def test_a_kill_at_any_rename_of_the_best_checkpoint_loses_no_best(flowers: Path, tmp_path: Path, capsys) -> None:
    # real flowers and a fast-following EMA: the KID improves every epoch, so the best is replaced every epoch
    arguments = ["train", "--data", str(flowers), "--widths", "8,16", "--block-depth", "1", "--image-size", "16",
                 "--batch-size", "16", "--repeats", "2", "--train-images", "48", "--validation-images", "16",
                 "--plot-images", "4", "--plot-steps", "2", "--device", "cpu", "--no-tensorboard", "--no-progress",
                 "--epochs", "3", "--kid-every", "1", "--kid-steps", "2", "--ema-std", "0.1", "--lr", "3e-3",
                 "--keep-checkpoints", "1"]

    def run(kill_at: int, run_dir: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", KILL_AT_BEST_RENAME, str(kill_at), *arguments, "--run-dir",
                               str(run_dir)], capture_output=True, text=True, timeout=600)

    straight = run(0, tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    renames = straight.stderr.count("best rename")
    assert renames >= 3  # a first best and at least one replacement (two renames each)
    best_is_consistent(tmp_path / "straight")
    for kill_at in range(1, renames + 1):
        run_dir = tmp_path / f"killed-{kill_at}"
        killed = run(kill_at, run_dir)
        assert killed.returncode == -9, killed.stderr  # SIGKILL
        capsys.readouterr()
        assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0, capsys.readouterr().err
        best_is_consistent(run_dir)


def test_a_link_planted_as_the_lock_file_is_refused_and_its_target_untouched(images: Path, tmp_path: Path,
                                                                              capsys) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run_dir / ".lock").symlink_to(victim)
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY, "--max-steps", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{run_dir / '.lock'} is a symbolic link, not ddim's lock file; remove it" in err
    assert victim.read_text() == "precious\n"
    (run_dir / ".lock").unlink()
    os.mkfifo(run_dir / ".lock")  # not a regular file either
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY, "--max-steps", "1"]) == 1
    assert "is not a regular file, so it is not ddim's lock file" in capsys.readouterr().err


def test_resume_with_a_new_learning_rate_and_weight_decay_trains_with_them(images: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY, "--max-steps", "2",
                 "--log-every", "1"]) == 0
    assert main(["train", "--resume", str(run_dir), "--max-steps", "4", "--lr", "0.5", "--weight-decay", "0.3"]) == 0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["lr"]) for r in records if r["kind"] == "step"] == [(1, 1e-3), (2, 1e-3), (3, 0.5), (4, 0.5)]
    state = training_state(step_checkpoints(run_dir)[-1])
    groups = state["optimizer"]["param_groups"]
    assert all(group["lr"] == 0.5 for group in groups)
    assert {group["weight_decay"] for group in groups} - {0.0} == {0.3 / 0.5}  # the Keras meaning: F / lr
    saved = json.loads((run_dir / "config.json").read_text())["train"]
    assert (saved["lr"], saved["weight_decay"]) == (0.5, 0.3)  # recorded because it was done


def test_a_full_disk_while_sampling_is_one_line_and_leaves_no_empty_image(images: Path, tmp_path: Path,
                                                                         tiny_disk: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY, "--max-steps", "1"]) == 0
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * (1024 * 1024 - 64 * 1024))  # leave room for a few images only
    capsys.readouterr()
    out = tiny_disk / "samples"
    code = main(["sample", "--checkpoint", str(run_dir), "--num", "400", "--steps", "1", "--device", "cpu",
                 "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert [line for line in err.splitlines() if "error" in line][0].startswith("ddim sample: error: cannot write ")
    assert "No space left on device" in err
    written = sorted(out.glob("*.png"))
    assert written and all(path.stat().st_size > 0 for path in written)  # what is there is whole
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_two_samplers_never_write_into_one_folder_at_once(images: Path, tmp_path: Path, capsys) -> None:
    from ddim.files import locked_folder

    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY, "--max-steps", "1"]) == 0
    out = tmp_path / "samples"
    sample = ["sample", "--checkpoint", str(run_dir), "--num", "2", "--steps", "1", "--device", "cpu",
              "--no-progress", "--out", str(out)]
    capsys.readouterr()
    with locked_folder(out, "--out"):  # as another ddim sample writing there holds it
        assert main(sample + ["--overwrite"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"ddim sample: error: --out {out} is in use by another ddim process (pid ")
    assert not out.exists()  # the holder created it and left it empty: removed
    assert main(sample) == 0
    assert not (out / ".lock").exists() and len(list(out.glob("image_*.png"))) == 2  # no lock file left behind
    assert main(sample + ["--overwrite"]) == 0


def test_what_a_killed_writer_left_is_cleaned_up_by_the_next_one(images: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY, "--max-steps", "1"]) == 0
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)  # a process id that has exited
    out = tmp_path / "samples"
    out.mkdir()
    (out / f".tmp-{dead}-samples.npz").write_bytes(b"half an npz")  # a sample killed while writing its npz
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(run_dir), "--num", "2", "--steps", "1", "--device", "cpu",
                 "--no-progress", "--format", "npz", "--out", str(out)]) == 0  # a plain rerun: not "not empty"
    assert not (out / f".tmp-{dead}-samples.npz").exists()

    exported = tmp_path / "model.safetensors"
    (tmp_path / f".tmp-{dead}-model.safetensors").write_bytes(b"half an export")  # an export killed mid-write
    live = tmp_path / f".tmp-{os.getppid()}-model.safetensors"  # a running process's file is not touched
    live.write_bytes(b"in progress")
    assert main(["export", "--checkpoint", str(run_dir), "--out", str(exported)]) == 0
    assert exported.is_file() and [p.name for p in tmp_path.glob(".tmp-*")] == [live.name]


def test_a_run_folder_inside_its_data_folder_is_left_out_of_the_images_and_resumes(tmp_path: Path, monkeypatch,
                                                                                   capsys) -> None:
    pictures = tmp_path / "pictures"
    write_images(pictures, 32, size=(20, 18))
    (pictures / "notes").mkdir()
    (pictures / "notes" / "config.json").write_text('{"name": "not a ddim run"}')  # someone else's config.json
    write_images(pictures / "notes", 2, size=(20, 18), seed=3)
    monkeypatch.chdir(pictures)  # cd pictures; ddim train --data . --run-dir runs/r1
    assert main(["train", "--data", ".", "--run-dir", "runs/r1", *TINY, "--max-steps", "3", "--plot-images", "4"]) == 0
    assert list(Path("runs/r1/samples").glob("*.png"))  # the run wrote grids into the data folder
    capsys.readouterr()
    assert main(["train", "--resume", "runs/r1", "--max-steps", "4", "--no-progress"]) == 0  # the same images
    err = capsys.readouterr().err
    assert "left out" in err and "images in ddim run folders inside" in err and "runs/r1" in err
    assert "pixels differ" not in err
    assert main(["train", "--data", ".", "--run-dir", "runs/r2", *TINY, "--max-steps", "1"]) == 0
    assert "training on 27 images (7 for validation)" in capsys.readouterr().err  # the 34 pictures, no grid


@pytest.mark.parametrize("crash", ["old moved aside", "new staged, old still in place"])
def test_a_step_folder_written_again_is_recovered_after_a_crash_between_its_renames(images: Path, tmp_path: Path,
                                                                                   crash: str) -> None:
    """A step folder written a second time (the same step, e.g. after a resume) is replaced with the same two
    renames as the best checkpoint; the state a kill between them leaves is finished on the next resume."""
    run_dir = tmp_path / "run"
    fit(config(images, max_steps=2, checkpoint_every=1), run_dir)
    target = step_checkpoints(run_dir)[-1]
    first = (target / WEIGHTS).read_bytes()
    model = loaded(target)[0]
    with torch.no_grad():
        next(model.network.parameters()).add_(1.0)  # the second write of this step: other weights
    state = training_state(target)
    staged = ckpt.write_checkpoint(target.parent / f".tmp-{target.name}-x1y2", model, loaded(target)[1], state)
    if crash == "old moved aside":
        target.rename(target.parent / f".old-{target.name}-999")
    fit(config(images, max_steps=3, checkpoint_every=1), run_dir, resume=True)
    assert not staged.exists()
    assert not [p for p in target.parent.iterdir() if p.name.startswith((".tmp-", ".old-"))]
    assert (target / WEIGHTS).read_bytes() != first  # the complete new write won, as it would have without a kill
    loaded(target)
