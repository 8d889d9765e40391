"""Oxford Flowers 102 (Nilsback & Zisserman 2008): the official layout, its download, the Keras example's split.

Official layout: ``jpg/image_00001.jpg`` ... ``jpg/image_08189.jpg``, ``imagelabels.mat`` (a class per
image) and ``setid.mat`` (1-based image ids of the train / validation / test splits).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchvision.datasets import Flowers102
from torchvision.datasets.utils import download_url, extract_archive

from ..reading import regular_file_size
from .errors import DataError

DEFAULT_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
URL_ENVIRONMENT_VARIABLE = "DDIM_FLOWERS102_URL"  # a mirror, e.g. file:///mnt/mirror/ or http://host/
FILES = {  # name -> official md5
    "102flowers.tgz": "52808999861908f626f3c1f4e79d11fa",
    "imagelabels.mat": "e0620be6f572b9609742df49c70aed4d",
    "setid.mat": "a5357ecc9cb78c4bef273ce3793fc85c",
}
OFFICIAL_SPLITS = (("trnid", "train"), ("valid", "validation"), ("tstid", "test"))


def is_flowers_layout(folder: Path) -> bool:
    """Whether ``folder`` holds the official layout (``jpg/``, ``imagelabels.mat``, ``setid.mat``)."""
    return (folder / "jpg").is_dir() and (folder / "imagelabels.mat").is_file() and (folder / "setid.mat").is_file()


def image_path(folder: Path, image_id: int) -> Path:
    """The file of 1-based image id ``image_id``."""
    return folder / "jpg" / f"image_{image_id:05d}.jpg"


@dataclass(frozen=True)
class FlowersIndex:
    """Labels per image (index i is image id i + 1) and the official splits as 1-based ids."""

    labels: np.ndarray  # (N,) int, classes 1..102
    splits: dict[str, np.ndarray]  # "train" / "validation" / "test" -> 1-based ids, as in setid.mat


MAX_MAT_BYTES = 64 * 2**20  #: the official imagelabels.mat and setid.mat are 0.5 and 15 KiB
MAX_MAT_ELEMENTS = 10**7  #: one label or id per image: far more images than any data set of this layout


def _loadmat(path: Path) -> dict:
    """A MATLAB file's variables, after checking what it declares: a compressed file of a few hundred bytes can
    declare gigabytes (a decompression bomb), so the declared sizes are read first (``whosmat``) and bounded."""
    from scipy.io import loadmat, whosmat  # scipy reads MATLAB files; imported here to keep startup light

    try:
        regular_file_size(path, MAX_MAT_BYTES)
        for name, shape, _ in whosmat(path):
            if math.prod(shape) > MAX_MAT_ELEMENTS:
                raise DataError(f"{path}: its {name!r} declares {math.prod(shape):,} values, more than the "
                                f"{MAX_MAT_ELEMENTS:,} a Flowers 102 index may hold; it is damaged or not the official file")
        return loadmat(path)
    except DataError:
        raise
    except Exception as error:  # scipy raises several unrelated types for a damaged file; ReadError: not a file
        raise DataError(f"cannot read {path}: {error}") from error


def _id_vector(mat: dict, key: str, path: Path, allow_empty: bool = False) -> np.ndarray:
    """The entry ``key`` of a loaded MATLAB file as int64 (N,) of numbers >= 1, or a DataError naming the file."""
    if key not in mat:
        raise DataError(f"{path} has no {key!r} entry")
    array = np.asarray(mat[key])
    numeric = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    if not numeric or sum(n > 1 for n in array.shape) > 1 or not (array.size or allow_empty):
        raise DataError(f"{path}: {key!r} must be a vector of numbers, got a {array.dtype} array of shape {array.shape}")
    values = array.ravel()
    bad = values[~np.isfinite(values) | (values != np.round(values)) | (values < 1)]
    if bad.size:
        raise DataError(f"{path}: {key!r} must hold whole numbers from 1 up, got {bad[0]}")
    return values.astype(np.int64)


def read_index(folder: Path) -> FlowersIndex:
    """Read ``imagelabels.mat`` and ``setid.mat`` and check they agree with the ``jpg/`` folder."""
    labels_path, setid_path = folder / "imagelabels.mat", folder / "setid.mat"
    labels = _id_vector(_loadmat(labels_path), "labels", labels_path)
    setid_mat = _loadmat(setid_path)
    splits = {}
    for key, name in OFFICIAL_SPLITS:
        ids = _id_vector(setid_mat, key, setid_path, allow_empty=True)
        if ids.size and ids.max() > labels.size:
            raise DataError(f"{setid_path}: {key} ids outside 1..{labels.size}")
        splits[name] = ids
    every, counts = np.unique(np.concatenate(list(splits.values())), return_counts=True)
    if np.any(counts > 1):
        raise DataError(f"{setid_path}: image id {every[counts > 1][0]} is listed more than once")
    missing = [image_path(folder, i) for i in range(1, labels.size + 1) if not image_path(folder, i).is_file()]
    if missing:
        raise DataError(f"{len(missing)} of {labels.size} images listed in {folder / 'imagelabels.mat'} "
                        f"are missing, e.g. {missing[0]}")
    return FlowersIndex(labels=labels, splits=splits)


def class_names() -> tuple[str, ...]:
    """The 102 category names, by label - 1 (torchvision's ``Flowers102.classes``)."""
    return tuple(Flowers102.classes)


def keras_split(index: FlowersIndex, split_seed: int, train_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The Keras example's split as 1-based ids: ``train[:80%]+validation[:80%]+test[:80%]`` and the rest.

    ``setid.mat`` lists each split sorted by class, so each official split is shuffled with a fixed
    seed before it is cut (as tfds slices its own shuffled order); otherwise whole classes would be
    missing from one side.
    """
    rng = np.random.default_rng(split_seed)
    train, validation = [], []
    for _, name in OFFICIAL_SPLITS:
        ids = rng.permutation(index.splits[name])
        cut = int(round(len(ids) * train_fraction))
        train.append(ids[:cut])
        validation.append(ids[cut:])
    return np.concatenate(train), np.concatenate(validation)


def md5sum(path: Path, chunk_size: int = 1 << 20) -> str:
    """The md5 hex digest of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def download_flowers102(root: Path, base_url: str | None = None) -> Path:
    """Download and unpack the official files into ``root`` (checking md5s); returns the data folder.

    Uses torchvision's download helpers. ``base_url`` (or ``$DDIM_FLOWERS102_URL``) may point to a
    mirror, including a ``file://`` folder. A file whose md5 does not match is deleted and reported.
    """
    base_url = base_url or os.environ.get(URL_ENVIRONMENT_VARIABLE) or DEFAULT_URL
    if not base_url.endswith("/"):
        base_url += "/"
    root = Path(root)
    downloads = root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    for name, expected in FILES.items():
        target = downloads / name
        try:
            download_url(base_url + name, str(downloads), filename=name, md5=expected)
        except RuntimeError as error:  # torchvision: "File not found or corrupted."
            actual = md5sum(target) if target.exists() else "no file"
            target.unlink(missing_ok=True)
            raise DataError(f"download of {base_url + name} failed its integrity check: md5 {actual}, "
                            f"expected {expected}; the file was removed ({error})") from error
        except OSError as error:
            raise DataError(f"cannot download {base_url + name}: {error}. Without internet, point --data at a "
                            "local copy of Oxford Flowers 102 (a folder holding jpg/, imagelabels.mat and setid.mat) "
                            "or at any folder of images") from error
    staging = root / ".unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    extract_archive(str(downloads / "102flowers.tgz"), str(staging))
    for name in ("imagelabels.mat", "setid.mat"):
        shutil.copyfile(downloads / name, staging / name)
    if not is_flowers_layout(staging):
        raise DataError(f"the archive {downloads / '102flowers.tgz'} does not contain a jpg/ folder")
    folder = root / "flowers102"
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)  # the finished folder appears at once or not at all
    return folder
