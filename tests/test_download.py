"""The Flowers 102 download: md5-checked, tested against a local HTTP server (no internet needed)."""

from __future__ import annotations

import hashlib
import http.server
import io
import shutil
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ddim.config import DataConfig
from ddim.data import DataError, DataWarning, load_splits
from ddim.data import flowers as flowers_module
from ddim.data.flowers import download_flowers102, is_flowers_layout


@pytest.fixture()
def mirror(tmp_path: Path, flowers: Path):
    """A local HTTP server holding a small 102flowers.tgz and the real .mat files."""
    root = tmp_path / "mirror"
    root.mkdir()
    labels = flowers_module.read_index(flowers).labels
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for image_id in range(1, labels.size + 1):  # tiny stand-ins for the 8,189 images
            data = io.BytesIO()
            Image.fromarray(np.full((6, 8, 3), image_id % 256, dtype=np.uint8)).save(data, format="JPEG")
            info = tarfile.TarInfo(f"jpg/image_{image_id:05d}.jpg")
            info.size = data.tell()
            data.seek(0)
            archive.addfile(info, data)
    (root / "102flowers.tgz").write_bytes(buffer.getvalue())
    for name in ("imagelabels.mat", "setid.mat"):
        shutil.copyfile(flowers / name, root / name)

    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(root))  # noqa: E731
    handler_class = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler_class(*a, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    del handler
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_checks_md5s_and_unpacks_the_official_layout(mirror, tmp_path: Path, monkeypatch) -> None:
    root, url = mirror
    # the real .mat files carry the official md5s; the stand-in archive has its own
    assert md5(root / "imagelabels.mat") == flowers_module.FILES["imagelabels.mat"]
    assert md5(root / "setid.mat") == flowers_module.FILES["setid.mat"]
    monkeypatch.setitem(flowers_module.FILES, "102flowers.tgz", md5(root / "102flowers.tgz"))
    folder = download_flowers102(tmp_path / "cache", url)
    assert is_flowers_layout(folder)
    assert len(list((folder / "jpg").glob("*.jpg"))) == 8189
    # --data flowers102 with no local copy uses the same download, into the cache folder
    monkeypatch.setenv(flowers_module.URL_ENVIRONMENT_VARIABLE, url)
    with pytest.warns(DataWarning, match="8,189 of 8,189 images .* are smaller than 8x8 px and were upscaled"):
        splits = load_splits(DataConfig(path="flowers102", cache_dir=str(tmp_path / "cache2")), 8)  # tiny stand-ins
    assert (len(splits.train), len(splits.validation)) == (6551, 1638)
    assert splits.folder == tmp_path / "cache2" / "flowers102"


def test_a_corrupted_download_is_reported_and_removed(mirror, tmp_path: Path) -> None:
    _, url = mirror  # the stand-in archive does not have the official md5
    with pytest.raises(DataError, match=r"102flowers\.tgz failed its integrity check: md5 [0-9a-f]{32}, "
                                        r"expected 52808999861908f626f3c1f4e79d11fa"):
        download_flowers102(tmp_path / "cache", url)
    assert not (tmp_path / "cache" / "downloads" / "102flowers.tgz").exists()
    assert not (tmp_path / "cache" / "flowers102").exists()


def test_an_unreachable_mirror_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot download"):
        download_flowers102(tmp_path / "cache", f"file://{tmp_path}/no-such-mirror/")
