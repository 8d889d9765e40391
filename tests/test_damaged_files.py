"""Every file a checkpoint holds, damaged or planted (issue 27 item 2): a config.json that is not UTF-8, a folder,
a link to /dev/zero or a FIFO; a training state whose entries are wrong; weights of a foreign type. Each is one
line naming the file (sample, export, ddim.load) or, on resume, the checkpoint is set aside and the one before
is used; nothing hangs, nothing is cast silently."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
import torch
from conftest import CONFIG, STATE, WEIGHTS, step_checkpoints, step_dir_name
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import ddim
from ddim.cli import main
from ddim.integrity import CheckpointError, tensors_sha256
from ddim.reading import ReadError, read_json


@pytest.fixture(scope="module")
def run(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run with checkpoints after steps 1 and 2."""
    from conftest import TINY_SYNTHETIC_TRAIN

    run_dir = tmp_path_factory.mktemp("damaged") / "run"
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY_SYNTHETIC_TRAIN, "--no-progress",
                 "--max-steps", "2", "--checkpoint-every", "1", "--keep-checkpoints", "2"]) == 0
    return run_dir


@pytest.fixture
def copy(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run, target, symlinks=True)
    return target


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def damage_config(path: Path, how: str) -> None:
    path.unlink()
    if how == "not UTF-8":
        path.write_bytes(b'{"model": {"widths": "\xff"}}')
    elif how == "a folder":
        path.mkdir()
    elif how == "a link to /dev/zero":
        path.symlink_to("/dev/zero")
    elif how == "a FIFO":
        os.mkfifo(path)
    elif how == "nested 100,000 deep":
        path.write_text("[" * 100_000 + "]" * 100_000)


HOW = ["not UTF-8", "a folder", "a link to /dev/zero", "a FIFO", "nested 100,000 deep"]
SAYS = {"not UTF-8": "is not UTF-8 text (byte 22 is 0xff)", "a folder": "is a folder, not a file",
        "a link to /dev/zero": "is a device, not a regular file", "a FIFO": "is a pipe, not a regular file",
        "nested 100,000 deep": "nests too deep"}


def finishes(call, seconds: float = 120.0):
    """``call()``'s result, failing the test (instead of hanging it) if it has not returned in ``seconds``."""
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = call()
        except BaseException as error:  # noqa: BLE001 (handed back to the test)
            result["error"] = error
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "it hung (a FIFO must never be opened for a blocking read)"
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.mark.parametrize("how", HOW)
def test_a_damaged_checkpoint_config_is_one_line_for_sample_export_and_load_and_set_aside_on_resume(
        copy: Path, tmp_path: Path, capsys, how: str) -> None:
    newest = step_checkpoints(copy)[-1]
    damage_config(newest / CONFIG, how)
    assert finishes(lambda: main(["sample", "--checkpoint", str(newest), "--num", "1", "--steps", "1", "--out",
                                  str(tmp_path / "s")])) == 1
    err = one_line(capsys)
    assert str(newest / CONFIG) in err and SAYS[how] in err
    assert finishes(lambda: main(["export", "--checkpoint", str(newest), "--out", str(tmp_path / "m.safetensors")])) == 1
    assert SAYS[how] in one_line(capsys)
    with pytest.raises(CheckpointError, match=SAYS[how].replace("(", r"\(").replace(")", r"\)")):
        finishes(lambda: ddim.load(newest))
    assert finishes(lambda: main(["train", "--resume", str(copy), "--max-steps", "3", "--no-progress"])) == 0
    err = capsys.readouterr().err
    assert f"checkpoint {step_dir_name(2)} is unreadable" in err and SAYS[how] in err
    assert (newest.parent / f"unreadable-{newest.name}").exists()
    assert [p.name for p in step_checkpoints(copy)] == [step_dir_name(2), step_dir_name(3)]  # resumed at 1


@pytest.mark.parametrize("how", HOW)
def test_a_damaged_run_config_stops_resume_with_one_line(copy: Path, capsys, how: str) -> None:
    damage_config(copy / CONFIG, how)
    assert finishes(lambda: main(["train", "--resume", str(copy), "--max-steps", "3", "--no-progress"])) == 1
    err = one_line(capsys)
    assert f"cannot resume {copy}" in err and SAYS[how] in err


def edit_state(folder: Path, change) -> None:
    state = torch.load(folder / STATE, weights_only=True)
    change(state)
    torch.save(state, folder / STATE)


@pytest.mark.parametrize("change, says", [
    (lambda s: s.update(step=-100), "its step is -100, not a count of steps"),
    (lambda s: s["history"].append({"epoch": 1, "train_loss": 0.5}), "history row 1 has no valid epoch and step"),
    (lambda s: s.update(history="[]"), "its history is not a list of epochs"),
    (lambda s: s.update(epoch_totals=torch.zeros(3, 3, dtype=torch.float64)), "its epoch_totals are not finite sums"),
    (lambda s: s.update(noise_generators=["seed"]), "its noise_generators are not generator states"),
    (lambda s: s.update(best_kid="abc"), "its best_kid is 'abc', not a number"),
    (lambda s: s.pop("optimizer"), "it lacks the optimizer entry"),
])
def test_a_training_state_with_a_bad_entry_is_set_aside_and_the_run_resumes_from_the_one_before(
        copy: Path, capsys, change, says: str) -> None:
    newest = step_checkpoints(copy)[-1]
    edit_state(newest, change)
    assert main(["train", "--resume", str(copy), "--max-steps", "3", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"checkpoint {newest.name} is unreadable" in err and f"{newest / STATE} is damaged or foreign: {says}" in err
    assert (newest.parent / f"unreadable-{newest.name}").is_dir()


def test_a_generator_state_of_the_wrong_size_or_totals_of_the_wrong_length_stop_resume_with_one_line(
        copy: Path, capsys) -> None:
    newest = step_checkpoints(copy)[-1]
    original = (newest / STATE).read_bytes()
    edit_state(newest, lambda s: s.update(noise_generators=[torch.zeros(7, dtype=torch.uint8)]))
    assert main(["train", "--resume", str(copy), "--max-steps", "3", "--no-progress"]) == 1
    assert "its noise generator state is not one this device's generator takes" in one_line(capsys)
    (newest / STATE).write_bytes(original)
    edit_state(newest, lambda s: s.update(epoch_totals=torch.zeros(5, dtype=torch.float64)))
    assert main(["train", "--resume", str(copy), "--max-steps", "3", "--no-progress"]) == 1
    assert "its epoch_totals hold (5,) sums, this run keeps (3,)" in one_line(capsys)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.int8, torch.float64])
def test_weights_of_a_foreign_type_are_refused_even_with_a_matching_checksum(copy: Path, tmp_path: Path, capsys,
                                                                          dtype: torch.dtype) -> None:
    folder = step_checkpoints(copy)[-1]
    weights = folder / WEIGHTS
    with safe_open(str(weights), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = {name: (t.to(dtype) if t.is_floating_point() else t) for name, t in load_file(str(weights)).items()}
    save_file(tensors, weights, metadata={**metadata, "sha256": tensors_sha256(tensors)})
    assert main(["sample", "--checkpoint", str(folder), "--num", "1", "--steps", "1", "--out",
                 str(tmp_path / "s")]) == 1
    err = one_line(capsys)
    assert str(weights) in err and f"is {dtype}" in err and "ddim weights are float32, float16 or bfloat16" in err
    with pytest.raises(CheckpointError, match="is not a ddim model"):
        ddim.load(folder)


def test_an_integer_weight_where_the_model_has_a_float_is_refused(copy: Path) -> None:
    folder = step_checkpoints(copy)[-1]
    weights = folder / WEIGHTS
    with safe_open(str(weights), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(weights))
    name = next(n for n, t in tensors.items() if t.is_floating_point())
    tensors[name] = tensors[name].to(torch.int64)
    save_file(tensors, weights, metadata={**metadata, "sha256": tensors_sha256(tensors)})
    with pytest.raises(CheckpointError, match=f"{name} is torch.int64, the model's is torch.float32"):
        ddim.load(folder)


def test_read_json_refuses_what_is_not_a_small_regular_utf8_json_file(tmp_path: Path) -> None:
    (tmp_path / "big.json").write_text("[" + "0," * 100 + "0]")
    with pytest.raises(ReadError, match="bytes, more than the 50 a ddim file"):
        read_json(tmp_path / "big.json", limit=50)
    assert read_json(tmp_path / "big.json") == [0] * 101
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json")
