"""Bad or unusual input data: 16-bit images, small images, decompression bombs, broken .mat files and
broken ``evaluate --generated`` inputs. Everything is synthetic and made in tmp_path."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import write_images
from PIL import Image, ImageFile
from scipy.io import savemat

from ddim.config import DataConfig
from ddim.data import DataError, DataWarning, load_splits
from ddim.data import dataset as dataset_module
from ddim.data.flowers import read_index
from ddim.data.generated import read_generated
from ddim.data.images import load_image, to_rgb


def png_bytes(width: int, height: int, color_type: int, bit_depth: int, rows: bytes) -> bytes:
    """A PNG file written by hand (Pillow cannot write 16-bit RGB), from already-filtered ``rows``."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def gradients(height: int = 48, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """An 8-bit RGB gradient and a 16-bit version of it (with low bits that round away)."""
    y, x = np.mgrid[0:height, 0:width]
    eight = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (x + y) * 255 // (width + height - 2)], -1)
    noise = np.random.default_rng(0).integers(-128, 129, size=eight.shape)
    sixteen = np.clip(eight * 257 + noise, 0, 65535)
    return eight.astype(np.uint8), sixteen.astype(np.uint16)


# -- 16-bit images ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["I;16 png", "I;16B tiff", "I tiff", "RGB 16-bit png"])
def test_16_bit_images_decode_like_their_8_bit_versions(tmp_path: Path, kind: str) -> None:
    eight, sixteen = gradients()
    if kind == "RGB 16-bit png":
        rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in sixteen)
        (tmp_path / "16.png").write_bytes(png_bytes(64, 48, 2, 16, rows))
        Image.fromarray(eight).save(tmp_path / "8.png")
        path = tmp_path / "16.png"
    else:
        eight, sixteen = eight[..., 0], sixteen[..., 0]
        Image.fromarray(eight).save(tmp_path / "8.png")
        if kind == "I;16 png":
            path = tmp_path / "16.png"
            Image.fromarray(sixteen).save(path)
        elif kind == "I;16B tiff":
            path = tmp_path / "16.tif"
            Image.frombytes("I;16B", (64, 48), sixteen.astype(">u2").tobytes()).save(path)
        else:
            path = tmp_path / "32.tif"
            Image.fromarray(sixteen.astype(np.int32)).save(path)
        with Image.open(path) as image:
            assert image.mode == kind.split()[0]
    for size in (48, 16):
        ours, reference = load_image(path, size).astype(int), load_image(tmp_path / "8.png", size).astype(int)
        assert np.abs(ours - reference).max() <= 1, size


def test_32_bit_integer_images_take_their_bit_depth_from_the_data() -> None:
    eight, _ = gradients()
    as_8_bit = Image.fromarray(eight[..., 0].astype(np.int32))  # mode I holding 0..255: 8-bit values
    assert np.array_equal(np.asarray(to_rgb(as_8_bit))[..., 0], eight[..., 0])
    wide = Image.fromarray(eight[..., 0].astype(np.int32) * 1_000_000)  # beyond 16 bits: scaled to the maximum
    assert np.abs(np.asarray(to_rgb(wide))[..., 0].astype(int) - eight[..., 0]).max() <= 1
    negative = Image.fromarray(np.full((4, 4), -5, dtype=np.int32))
    assert np.all(np.asarray(to_rgb(negative)) == 0)


# -- images smaller than the training size --------------------------------------------------------------------


def test_upscaled_images_are_counted_and_said_once_also_from_the_cache(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write_images(tmp_path / "imgs", 6, size=(40, 30))
    write_images(tmp_path / "imgs" / "small", 4, size=(12, 20), seed=1)  # shorter side 12 < 16
    write_images(tmp_path / "imgs" / "exact", 1, size=(16, 24), seed=2)  # shorter side 16: not upscaled
    config = DataConfig(path=str(tmp_path / "imgs"), cache_dir=str(tmp_path / "cache"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = load_splits(config, 16)
    assert splits.upscaled == 4
    said = [w for w in caught if issubclass(w.category, DataWarning)]
    assert len(said) == 1 and "4 of 11 images" in str(said[0].message) and "16x16" in str(said[0].message)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is current")

    monkeypatch.setattr(dataset_module, "load_images", no_decoding)
    with pytest.warns(DataWarning, match="4 of 11"):
        again = load_splits(config, 16)
    assert again.upscaled == 4 and np.array_equal(again.train, splits.train)
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assert load_splits(DataConfig(path=str(tmp_path / "imgs" / "small"), cache_dir=str(tmp_path / "cache")),
                           8).upscaled == 0
    with pytest.warns(DataWarning, match="2 of 2 images"):
        limited = load_splits(DataConfig(path=str(tmp_path / "imgs"), cache_dir=str(tmp_path / "cache"),
                                         train_images=1, validation_images=1), 64)
    assert limited.upscaled == 2  # only the images actually used are counted
    import dataclasses

    assert dataclasses.replace(limited, upscaled=1).upscaled_note().endswith(
        "1 of 2 images from " + str(tmp_path / "imgs") + " is smaller than 64x64 px and was upscaled")  # one wording


# -- decompression bombs --------------------------------------------------------------------------------------


def write_bomb(path: Path, side: int) -> Path:
    """A small PNG declaring ``side`` x ``side`` grey pixels (only its first rows are present)."""
    path.write_bytes(png_bytes(side, side, 0, 8, b"\x00" * (side + 1) * 4))
    return path


@pytest.mark.parametrize("side", [20_000, 10_000])  # above Pillow's error limit; between its warning and error
def test_a_decompression_bomb_is_refused_by_name_without_decoding_it(tmp_path: Path, side: int,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = write_bomb(tmp_path / "bomb.png", side)
    original = ImageFile.ImageFile.load

    def guarded_load(self):
        assert self.width * self.height < 10**7, "decoded the bomb"
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", guarded_load)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(DataError, match=r"bomb\.png.*decompression bomb"):
            load_image(bomb, 16)


def test_a_decompression_bomb_in_a_folder_stops_or_is_skipped_and_counted(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 6, size=(20, 20))
    bomb = write_bomb(tmp_path / "imgs" / "bomb.png", 20_000)
    config = DataConfig(path=str(tmp_path / "imgs"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"cannot read image .*bomb\.png"):
        load_splits(config, 16)
    splits = load_splits(DataConfig(path=config.path, cache_dir=config.cache_dir, skip_unreadable=True), 16)
    assert splits.skipped == (str(bomb),)
    assert len(splits.train) + len(splits.validation) == 6


# -- Oxford Flowers 102 index files ---------------------------------------------------------------------------


def flowers_folder(tmp_path: Path, labels=None, setid=None) -> Path:
    """A 4-image folder in the official layout, with the given (or valid) .mat contents."""
    folder = tmp_path / "flowers"
    (folder / "jpg").mkdir(parents=True)
    for i in range(1, 5):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folder / "jpg" / f"image_{i:05d}.jpg")
    savemat(folder / "imagelabels.mat", labels if labels is not None else {"labels": np.array([[1, 1, 2, 2]])})
    valid_setid = {"trnid": np.array([[1]]), "valid": np.array([[2]]), "tstid": np.array([[3, 4]])}
    savemat(folder / "setid.mat", {**valid_setid, **(setid or {})})
    return folder


def test_a_valid_synthetic_flowers_index_is_read(tmp_path: Path) -> None:
    index = read_index(flowers_folder(tmp_path))
    assert index.labels.tolist() == [1, 1, 2, 2]
    assert {k: v.tolist() for k, v in index.splits.items()} == {"train": [1], "validation": [2], "test": [3, 4]}


@pytest.mark.parametrize("labels", [
    {"labels": np.array(["a", "b", "c", "d"])},  # strings
    {"labels": np.array(["1", "1", "2", "2"])},  # digits as strings are still strings
    {"labels": np.array([[1, 1], [2, 2]])},  # a matrix, not a vector
    {"labels": np.array([[1.5, 1, 2, 2]])},  # not whole numbers
    {"labels": np.array([[0, 1, 2, 2]])},  # classes start at 1
    {"labels": np.array([np.zeros(2), "x"], dtype=object)},  # a cell array
    {"labels": np.zeros((1, 0))},  # empty
])
def test_bad_imagelabels_mat_is_a_clear_error(tmp_path: Path, labels: dict) -> None:
    with pytest.raises(DataError, match=r"imagelabels\.mat: 'labels' must"):
        read_index(flowers_folder(tmp_path, labels=labels))


@pytest.mark.parametrize("setid, message", [
    ({"trnid": np.array(["one"])}, "'trnid' must be a vector"),
    ({"valid": np.array([[1, 2], [3, 4]])}, "'valid' must be a vector"),
    ({"tstid": np.array([[3.5, 4]])}, "'tstid' must hold whole numbers"),
    ({"tstid": np.array([[3, 9]])}, r"tstid ids outside 1\.\.4"),
    ({"tstid": np.array([[1, 4]])}, "image id 1 is listed more than once"),
    ({"trnid": {"nested": np.array([1])}}, "'trnid' must be a vector"),  # a struct
])
def test_bad_setid_mat_is_a_clear_error(tmp_path: Path, setid: dict, message: str) -> None:
    with pytest.raises(DataError, match=r"setid\.mat: " + message):
        read_index(flowers_folder(tmp_path, setid=setid))


def test_a_flowers_folder_with_bad_labels_fails_through_load_splits(tmp_path: Path) -> None:
    folder = flowers_folder(tmp_path, labels={"labels": np.array(["a", "b", "c", "d"])})
    with pytest.raises(DataError, match="imagelabels.mat"):
        load_splits(DataConfig(path=str(folder), cache_dir=str(tmp_path / "cache")), 8)


# -- evaluate --generated inputs ------------------------------------------------------------------------------


def random_images(count: int, size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)


def save_pngs(folder: Path, images: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index:03d}.png")
    return folder


def test_generated_images_from_npz_and_folders_are_read(tmp_path: Path) -> None:
    images = random_images(5)
    np.savez(tmp_path / "a.npz", images=images[:3])
    save_pngs(tmp_path / "pngs", images[3:])
    assert np.array_equal(read_generated([tmp_path / "a.npz", tmp_path / "pngs"]), images)


def test_fewer_than_two_generated_images_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "none.npz", images=random_images(0))
    with pytest.raises(DataError, match=r"none\.npz holds no images"):
        read_generated([tmp_path / "none.npz"])
    save_pngs(tmp_path / "one", random_images(1))
    with pytest.raises(DataError, match=r"one holds 1 image.*at least 2"):
        read_generated([tmp_path / "one"])
    assert len(read_generated([tmp_path / "one", tmp_path / "one"])) == 2


@pytest.mark.parametrize("images, message", [
    (np.array([random_images(1)[0], random_images(1, size=4)[0]], dtype=object), "cannot read .*bad\\.npz"),
    (random_images(3).astype(np.float32), r"bad\.npz: generated images must be square uint8"),
    (random_images(3)[..., 0], r"bad\.npz: generated images must be square uint8"),  # (N, H, W)
    (random_images(3)[:, :, :4], r"bad\.npz: generated images must be square uint8"),  # not square
    (np.uint8(7), r"bad\.npz: generated images must be square uint8"),  # a scalar
])
def test_bad_npz_contents_are_refused_naming_the_file(tmp_path: Path, images: np.ndarray, message: str) -> None:
    np.savez(tmp_path / "bad.npz", images=images)
    with pytest.raises(DataError, match=message):
        read_generated([tmp_path / "bad.npz"])


class Exploit:
    """An object whose unpickling would create a folder (it must never be unpickled)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return os.mkdir, (self.target,)


def test_generated_npz_files_are_never_unpickled(tmp_path: Path) -> None:
    target = tmp_path / "exploited"
    np.savez(tmp_path / "evil.npz", images=np.array([Exploit(str(target)), 1], dtype=object))
    with pytest.raises(DataError, match=r"evil\.npz"):
        read_generated([tmp_path / "evil.npz"])
    assert not target.exists()


def test_files_that_are_not_npz_archives_are_refused_naming_them(tmp_path: Path) -> None:
    (tmp_path / "text.npz").write_text("not an archive\n")
    (tmp_path / "empty.npz").write_bytes(b"")
    np.savez(tmp_path / "good.npz", images=random_images(3))
    (tmp_path / "truncated.npz").write_bytes((tmp_path / "good.npz").read_bytes()[:200])
    with open(tmp_path / "array.npz", "wb") as handle:
        np.save(handle, random_images(3))  # an .npy file under an .npz name
    np.savez(tmp_path / "other.npz", pictures=random_images(3))
    Image.fromarray(random_images(1)[0]).save(tmp_path / "single.png")
    for name, message in [("text.npz", "cannot read"), ("empty.npz", "cannot read"), ("truncated.npz", "cannot read"),
                          ("array.npz", "holds a single array"), ("other.npz", "holds no 'images' array"),
                          ("single.png", "is neither a folder of images nor an .npz file"),
                          ("missing.npz", "does not exist")]:
        with pytest.raises(DataError, match=message) as error:
            read_generated([tmp_path / name])
        assert str(tmp_path / name) in str(error.value), name


def test_bad_folders_and_mismatched_inputs_are_refused_naming_them(tmp_path: Path) -> None:
    save_pngs(tmp_path / "mixed", random_images(2))
    Image.fromarray(random_images(1, size=6)[0]).save(tmp_path / "mixed" / "small.png")
    with pytest.raises(DataError, match=r"mixed holds images of different sizes: 000\.png is 8x8, small\.png is 6x6"):
        read_generated([tmp_path / "mixed"])
    save_pngs(tmp_path / "corrupt", random_images(2))
    (tmp_path / "corrupt" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match=r"cannot read image .*broken\.png"):
        read_generated([tmp_path / "corrupt"])
    save_pngs(tmp_path / "eight", random_images(2))
    np.savez(tmp_path / "sixteen.npz", images=random_images(2, size=16))
    with pytest.raises(DataError, match=r"sixteen\.npz holds 16x16 images but .*eight holds 8x8"):
        read_generated([tmp_path / "eight", tmp_path / "sixteen.npz"])
    (tmp_path / "bombs").mkdir()
    write_bomb(tmp_path / "bombs" / "bomb.png", 20_000)
    with pytest.raises(DataError, match=r"bomb\.png"):
        read_generated([tmp_path / "bombs"])
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match=r"no images found in .*nothing"):
        read_generated([tmp_path / "nothing"])


def test_phone_photos_come_out_upright_and_float_tiffs_are_not_black(tmp_path: Path) -> None:
    from PIL import Image

    from ddim.data.images import load_image, read_rgb

    upright = np.zeros((40, 20, 3), dtype=np.uint8)  # tall: red top half, blue bottom half
    upright[:20, :, 0] = 255
    upright[20:, :, 2] = 255
    stored = Image.fromarray(np.rot90(upright, k=1).copy())  # as a camera stores it, turned (20 tall, 40 wide)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view": np.rot90(k=1) turned it 90 counter-clockwise
    stored.save(tmp_path / "phone.png", exif=exif.tobytes())
    pixels = read_rgb(tmp_path / "phone.png")
    assert pixels.shape == (40, 20, 3)  # upright, as a viewer shows it
    assert pixels[5, 10, 0] == 255 and pixels[35, 10, 2] == 255  # red on top, blue below

    gradient = np.tile(np.linspace(0, 0.99, 32, dtype=np.float32), (32, 1))
    Image.fromarray(gradient, mode="F").save(tmp_path / "float.tif")
    decoded = load_image(tmp_path / "float.tif", 32)
    assert decoded[:, -1].mean() > 240 and decoded[:, 0].max() == 0  # [0, 1) spans black to white
