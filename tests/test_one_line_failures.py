"""Failures found by the crash-safety audit (issue 27 item 10) that ended in a traceback: each is now one line
naming the file, the path or the value, and nothing is half done."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SYNTHETIC_TRAIN

from ddim import checkpoint as ckpt
from ddim.cli import main
from ddim.data import DataError
from ddim.data.generated import read_generated
from ddim.evaluation.partial import PartialFeatures
from ddim.loading import load_model


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("ddim ") and ": error:" in line]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def run(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("failures") / "run"
    assert main(["train", "--data", str(images), "--run-dir", str(run_dir), *TINY_SYNTHETIC_TRAIN, "--no-progress",
                 "--max-steps", "1"]) == 0
    return run_dir


LONG = "a" * 300  # a path part longer than the 255 bytes a file name may have


def test_path_parts_longer_than_a_file_name_may_be_are_one_line(run: Path, images: Path, tmp_path: Path,
                                                              capsys) -> None:
    assert main(["train", "--data", str(images / LONG), "--run-dir", str(tmp_path / "r")]) == 1
    assert "File name too long" in one_line(capsys)
    assert not (tmp_path / "r").exists()
    with pytest.raises(SystemExit):
        main(["sample", "--checkpoint", str(run), "--out", str(tmp_path / LONG), "--num", "1"])
    assert "is longer than 255 bytes, too long for a file name" in one_line(capsys)
    assert main(["sample", "--checkpoint", str(run / LONG), "--out", str(tmp_path / "s"), "--num", "1"]) == 1
    line = one_line(capsys)
    assert "File name too long" in line and len(line) < 250  # the path is shortened, not echoed in full
    assert main(["evaluate", "--generated", str(tmp_path / LONG), "--data", str(images)]) == 1
    assert one_line(capsys)


def test_a_negative_split_seed_is_refused_before_anything_is_decoded_or_created(images: Path, tmp_path: Path,
                                                                                capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train", "--data", str(images), "--run-dir", str(tmp_path / "r"), "--split-seed", "-1"])
    assert stop.value.code == 2
    assert "--split-seed: must be an integer from 0 to" in one_line(capsys)
    assert not (tmp_path / "r").exists()


def test_weights_beyond_fp16_say_to_export_in_fp32(run: Path, tmp_path: Path, capsys) -> None:
    model = load_model(run)
    with torch.no_grad():
        next(model.ema_network.parameters()).mul_(1e6)  # finite in fp32, infinite in fp16
    ckpt.write_checkpoint(tmp_path / "big" / "checkpoints" / "step_000000001", model, model.origin.config)
    assert main(["export", "--checkpoint", str(tmp_path / "big"), "--out", str(tmp_path / "m.safetensors")]) == 1
    assert "they exceed fp16's range: export with --dtype fp32" in one_line(capsys)
    assert not (tmp_path / "m.safetensors").exists()
    assert main(["export", "--checkpoint", str(tmp_path / "big"), "--out", str(tmp_path / "m.safetensors"),
                 "--dtype", "fp32"]) == 0


def bomb_npz(path: Path, shape: tuple[int, ...]) -> Path:
    """An .npz of a few hundred bytes whose 'images' header declares ``shape`` (uint8)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("images.npy", header.getvalue() + bytes(4096))
    return path


def test_an_npz_declaring_more_than_memory_is_refused_before_it_is_read(tmp_path: Path) -> None:
    bomb = bomb_npz(tmp_path / "bomb.npz", (100_000, 512, 512, 3))  # 78.6 GB declared
    assert bomb.stat().st_size < 1000
    with pytest.raises(DataError, match=r"bomb\.npz.*declares 78,643,200,000 bytes"):
        read_generated([bomb])


def test_a_decoding_cache_declaring_too_much_is_rebuilt_not_read(images: Path, tmp_path: Path, monkeypatch) -> None:
    from ddim.data import dataset
    from ddim.data.images import list_images

    files = list_images(images)
    cache = tmp_path / "cache"
    first = dataset._decode_cached(images, files, 16, cache, False, None)
    (cached,) = (cache / "images").glob("*.npz")
    bomb_npz(cached, (100_000, 512, 512, 3))  # planted under the cache's own name
    again = dataset._decode_cached(images, files, 16, cache, False, None)  # refused, decoded again, rewritten
    assert np.array_equal(again[0], first[0])
    assert np.array_equal(dataset._decode_cached(images, files, 16, cache, False, None)[0], first[0])


def test_a_flowers_index_declaring_millions_of_labels_is_refused_before_it_is_loaded(tmp_path: Path,
                                                                                   capsys) -> None:
    from scipy.io import savemat

    folder = tmp_path / "flowers102"
    (folder / "jpg").mkdir(parents=True)
    savemat(folder / "imagelabels.mat", {"labels": np.ones((1, 20_000_000), np.uint8)}, do_compression=True)
    savemat(folder / "setid.mat", {"trnid": [1], "valid": [1], "tstid": [1]})
    assert (folder / "imagelabels.mat").stat().st_size < 100_000  # 20 MB declared, compressed to a few KB
    assert main(["train", "--data", str(folder), "--run-dir", str(tmp_path / "r")]) == 1
    assert "imagelabels.mat: its 'labels' declares 20,000,000 values, more than the 10,000,000" in one_line(capsys)


def test_a_stray_file_in_the_partial_batch_folder_is_ignored(tmp_path: Path) -> None:
    partial = PartialFeatures(tmp_path, {"weights": "ab"})
    partial.save(0, np.zeros((4, 2048), np.float32))
    (partial.folder / "images-abc-def.npy").write_text("stray")
    (partial.folder / "images-0000004-0000007.npy").mkdir()  # a folder under a batch's name
    assert partial.count() == 4 + 4  # the folder is named like a batch; load refuses it
    assert partial.load(4, 4) is None and partial.load(0, 4).shape == (4, 2048)


def test_sample_overwrite_onto_a_folder_named_like_an_image_is_one_line(run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["sample", "--checkpoint", str(run), "--out", str(out), "--num", "2", "--steps", "1",
                 "--no-progress"]) == 0
    (out / "image_00001.png").unlink()
    (out / "image_00001.png").mkdir()
    assert main(["sample", "--checkpoint", str(run), "--out", str(out), "--num", "2", "--steps", "1",
                 "--no-progress", "--overwrite"]) == 1
    assert "image_00001.png" in one_line(capsys)
