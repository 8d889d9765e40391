"""Data: the real Oxford Flowers 102 split, preprocessing, plain folders, the cache, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_images
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from ddim.config import DataConfig
from ddim.data import DataError, TrainBatches, load_splits
from ddim.data import dataset as dataset_module
from ddim.data.flowers import keras_split, read_index
from ddim.data.images import load_image


def test_real_flowers_split_is_the_keras_examples(flowers: Path, flowers_splits) -> None:
    index = read_index(flowers)
    assert index.labels.size == 8189
    assert {k: len(v) for k, v in index.splits.items()} == {"train": 1020, "validation": 1020, "test": 6149}
    assert flowers_splits.layout == "flowers102"
    assert flowers_splits.train.shape == (6551, 64, 64, 3) and flowers_splits.train.dtype == np.uint8
    assert flowers_splits.validation.shape == (1638, 64, 64, 3)


def test_real_flowers_split_is_disjoint_deterministic_and_covers_every_class(flowers: Path, flowers_splits) -> None:
    index = read_index(flowers)
    train, validation = keras_split(index, 42, 0.8)
    assert len(train) == 816 + 816 + 4919 and len(validation) == 204 + 204 + 1230
    assert not set(train) & set(validation)
    assert sorted(np.concatenate([train, validation])) == list(range(1, 8190))
    again, _ = keras_split(index, 42, 0.8)
    assert np.array_equal(train, again)
    assert set(index.labels[train - 1]) == set(range(1, 103))
    assert set(index.labels[validation - 1]) == set(range(1, 103))
    assert set(flowers_splits.validation_labels) == set(range(102)) and len(flowers_splits.class_names) == 102
    # without the shuffle the sorted setid.mat would leave classes out of validation
    unshuffled = np.concatenate([ids[int(round(len(ids) * 0.8)):] for ids in index.splits.values()])
    assert len(set(index.labels[unshuffled - 1])) < 102


def test_real_flowers_preprocessing_matches_torchvision_crop_and_antialiased_resize(flowers: Path) -> None:
    for image_id in (1, 4000, 8189):
        path = flowers / "jpg" / f"image_{image_id:05d}.jpg"
        ours = load_image(path, 64)
        with Image.open(path) as image:
            tensor = TF.pil_to_tensor(image.convert("RGB"))
        height, width = tensor.shape[1:]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2  # tf.image.crop_to_bounding_box offsets
        reference = TF.resize(tensor[:, top:top + side, left:left + side], [64, 64], antialias=True)
        difference = np.abs(ours.astype(int) - reference.permute(1, 2, 0).numpy().astype(int))
        assert ours.shape == (64, 64, 3)
        assert difference.max() <= 1


def test_centre_crop_keeps_the_middle_square(tmp_path: Path) -> None:
    array = np.zeros((60, 120, 3), dtype=np.uint8)
    array[:, :30] = (255, 0, 0)
    array[:, 30:90] = (0, 255, 0)
    array[:, 90:] = (0, 0, 255)
    Image.fromarray(array).save(tmp_path / "wide.png")
    out = load_image(tmp_path / "wide.png", 20)
    assert out.shape == (20, 20, 3)
    assert np.all(out == (0, 255, 0))


def test_resize_is_antialiased(tmp_path: Path) -> None:
    checkerboard = ((np.indices((64, 64)).sum(axis=0) % 2) * 255).astype(np.uint8)
    Image.fromarray(np.stack([checkerboard] * 3, axis=-1)).save(tmp_path / "checker.png")
    out = load_image(tmp_path / "checker.png", 16).astype(float)
    assert np.abs(out - 127.5).max() < 3  # aliasing would keep a pattern of 0s and 255s


def test_plain_folder_gets_a_seeded_80_20_split(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs" / "nested", 10)
    config = DataConfig(path=str(tmp_path / "imgs"), cache_dir=str(tmp_path / "cache"))
    splits = load_splits(config, 16)
    assert splits.layout == "folder"
    assert len(splits.train) == 8 and len(splits.validation) == 2
    again = load_splits(config, 16)
    assert np.array_equal(splits.train, again.train)
    other = load_splits(DataConfig(path=str(tmp_path / "imgs"), cache_dir=str(tmp_path / "cache"), split_seed=1), 16)
    all_images = {img.tobytes() for img in np.concatenate([splits.train, splits.validation])}
    assert {img.tobytes() for img in np.concatenate([other.train, other.validation])} == all_images
    assert {img.tobytes() for img in other.validation} != {img.tobytes() for img in splits.validation}


def test_second_load_reads_the_cache_instead_of_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_images(tmp_path / "imgs", 6)
    config = DataConfig(path=str(tmp_path / "imgs"), cache_dir=str(tmp_path / "cache"))
    first = load_splits(config, 16)
    assert list((tmp_path / "cache" / "images").glob("*.npz"))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is current")

    monkeypatch.setattr(dataset_module, "load_images", no_decoding)
    second = load_splits(config, 16)
    assert np.array_equal(first.train, second.train)
    # a changed file invalidates the cache
    write_images(tmp_path / "imgs", 1, size=(50, 50), seed=9)
    with pytest.raises(AssertionError, match="decoded again"):
        load_splits(config, 16)


def test_the_split_fingerprint_follows_the_pixels_not_the_files_dates_or_place(tmp_path: Path) -> None:
    """A copied or re-extracted folder (new modification times, another path) is the same data for feature caches
    and studies; other pixels, another split or other labels are not."""
    import os
    import shutil

    write_images(tmp_path / "imgs" / "a", 6, seed=0)
    write_images(tmp_path / "imgs" / "b", 6, seed=1)

    def fingerprint(folder: Path, **options) -> str:
        return load_splits(DataConfig(path=str(folder), cache_dir=str(tmp_path / "cache"), **options), 16).fingerprint

    first = fingerprint(tmp_path / "imgs")
    shutil.copytree(tmp_path / "imgs", tmp_path / "copy")
    for path in (tmp_path / "copy").rglob("*.png"):
        os.utime(path, ns=(10**18, 10**18))  # a later extraction
    assert fingerprint(tmp_path / "copy") == first
    assert fingerprint(tmp_path / "copy", split_seed=1) != first
    labelled = load_splits(DataConfig(path=str(tmp_path / "copy"), cache_dir=str(tmp_path / "cache")), 16, classes=True)
    assert labelled.fingerprint != first  # the same images, now with class labels
    write_images(tmp_path / "copy" / "a", 1, seed=9)  # one image's pixels change
    assert fingerprint(tmp_path / "copy") != first


def test_missing_empty_and_file_data_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data folder .*nowhere does not exist"):
        load_splits(DataConfig(path=str(tmp_path / "nowhere")), 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no images found in .*empty"):
        load_splits(DataConfig(path=str(tmp_path / "empty")), 16)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        load_splits(DataConfig(path=str(tmp_path / "file.txt")), 16)


def test_a_corrupt_image_is_named(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 4)
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match=r"cannot read image .*broken\.jpg"):
        load_splits(DataConfig(path=str(tmp_path / "imgs"), cache_dir=str(tmp_path / "cache")), 16)


def test_epochs_repeat_shuffle_and_drop_the_last_partial_batch() -> None:
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, axis=-1)
    batches = TrainBatches(images, batch_size=4, repeats=5, seed=0)
    assert batches.steps_per_epoch == 12  # 10 * 5 // 4
    order = batches.epoch_indices(0)
    assert order.shape == (12, 4)
    counts = torch.bincount(order.flatten(), minlength=10)
    assert counts.sum() == 48 and counts.max() <= 5
    assert torch.equal(order, batches.epoch_indices(0))  # an epoch's order depends on (seed, epoch) only
    assert not torch.equal(order, batches.epoch_indices(1))
    assert torch.equal(batches.images(order[0])[:, 0, 0, 0] * 255, order[0].float())
    # the seed's recipe: 6,551 images x 5 repeats // 64 = 511 steps
    assert TrainBatches(np.zeros((6551, 1, 1, 3), np.uint8), batch_size=64, repeats=5, seed=0).steps_per_epoch == 511


def test_data_parallel_ranks_take_disjoint_slices_of_each_global_batch() -> None:
    images = np.zeros((20, 1, 1, 3), dtype=np.uint8)
    whole = TrainBatches(images, batch_size=8, repeats=1, seed=3).epoch_indices(2)
    parts = [TrainBatches(images, batch_size=8, repeats=1, seed=3, rank=r, world_size=2).epoch_indices(2)
             for r in range(2)]
    assert torch.equal(torch.cat(parts, dim=1), whole)
