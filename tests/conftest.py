"""Shared fixtures: the real Oxford Flowers 102 images and a per-session preprocessing cache.

The real images are found through ``$DDIM_FLOWERS_DIR`` (default: ``../shared/data/flowers102``
next to the repository). Elsewhere the tests that need them skip, saying so; under CI (``$CI`` set)
a missing data folder is a failure, not a skip.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ddim.checkpoint import load_training_state
from ddim.layout import CheckpointLayout, RunLayout
from ddim.loading import load_model

REPO = Path(__file__).resolve().parents[1]
FLOWERS_ENVIRONMENT_VARIABLE = "DDIM_FLOWERS_DIR"
DEFAULT_FLOWERS_DIR = REPO.parent / "shared" / "data" / "flowers102"


def flowers_dir() -> Path:
    """Where the real flowers are expected."""
    return Path(os.environ.get(FLOWERS_ENVIRONMENT_VARIABLE) or DEFAULT_FLOWERS_DIR)


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the preprocessing cache inside the test session, never in the user's home."""
    os.environ["DDIM_CACHE_DIR"] = str(tmp_path_factory.mktemp("ddim-cache"))


@pytest.fixture(scope="session")
def flowers() -> Path:
    """The real Oxford Flowers 102 folder, or a skip (a failure under CI) saying where it was looked for."""
    return real_flowers_or_skip()


def real_flowers_or_skip() -> Path:
    """The real flowers folder; a skip where it is missing (a failure under CI)."""
    folder = flowers_dir()
    if not (folder / "jpg").is_dir():
        message = (f"the real Oxford Flowers 102 images are not at {folder}; set ${FLOWERS_ENVIRONMENT_VARIABLE} "
                   "to the folder holding jpg/, imagelabels.mat and setid.mat")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def flowers_splits(flowers: Path):
    """The seed's split of the real flowers at 64 px (decoded once per session)."""
    from ddim.config import DataConfig
    from ddim.data import load_splits

    return load_splits(DataConfig(path=str(flowers)), 64)


def write_images(folder: Path, count: int, size: tuple[int, int] = (40, 30), seed: int = 0) -> list[Path]:
    """``count`` random RGB images as PNG and JPEG files (alternating) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        array = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        path = folder / f"img_{i:03d}.{'png' if i % 2 == 0 else 'jpg'}"
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


TINY_TRAIN = ["--widths", "8,16", "--block-depth", "1", "--image-size", "16", "--batch-size", "16",
              "--plot-images", "4", "--plot-steps", "3", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="session")
def tiny_run(flowers: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) training run on the real flowers through the CLI: 48 train images, 2 epochs of 3 steps."""
    from ddim.cli import main

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    code = main(["train", "--data", str(flowers), "--run-dir", str(run_dir), *TINY_TRAIN,
                 "--repeats", "1", "--epochs", "3", "--max-steps", "6", "--seed", "1",
                 "--train-images", "48", "--validation-images", "40"])
    assert code == 0
    return run_dir


# Tiny training on the ``images`` fixture: 3 steps of 8 per epoch at 16 px, no KID.
TINY_SYNTHETIC_TRAIN = ["--widths", "8,16", "--block-depth", "1", "--image-size", "16", "--batch-size", "8",
                        "--repeats", "1", "--kid-every", "0", "--plot-images", "4", "--plot-steps", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 random images in a plain folder: 25 train (3 steps of 8 per epoch), 7 validation."""
    folder = tmp_path_factory.mktemp("synthetic") / "images"
    write_images(folder, 32, size=(20, 18))
    return folder


SHAPE_CLASSES = ("blue squares", "red discs")  # the two classes of write_shapes, by label


def write_shapes(root: Path, per_class: int = 48, size: int = 16, seed: int = 0) -> Path:
    """Red discs and blue squares of random size and place on random grey, one subfolder per class."""
    rng = np.random.default_rng(seed)
    for name in SHAPE_CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            grey = int(rng.integers(90, 170))
            image = Image.new("RGB", (size, size), (grey, grey, grey))
            draw = ImageDraw.Draw(image)
            radius = int(rng.integers(4, 7))
            x, y = rng.integers(radius, size - radius, 2)
            box = [x - radius, y - radius, x + radius, y + radius]
            if name == "red discs":
                draw.ellipse(box, fill=(int(rng.integers(200, 256)), 20, 20))
            else:
                draw.rectangle(box, fill=(20, 20, int(rng.integers(200, 256))))
            image.save(root / name / f"{i:03d}.png")
    return root


def redness(images: np.ndarray) -> np.ndarray:
    """Mean red minus mean blue of each uint8 (N, H, W, 3) image: > 0 reads as a red disc."""
    pixels = images.astype(np.float64) / 255.0
    return (pixels[..., 0] - pixels[..., 2]).mean(axis=(1, 2))


# The names of a checkpoint folder's files (from ddim.layout, the one place that spells them).
WEIGHTS = CheckpointLayout(Path(".")).weights.name
STATE = CheckpointLayout(Path(".")).training_state.name
CONFIG = CheckpointLayout(Path(".")).config.name


def step_checkpoints(run_dir: Path) -> list[Path]:
    """A run folder's step checkpoints, oldest first."""
    return RunLayout(Path(run_dir)).step_checkpoints()


def step_dir_name(step: int) -> str:
    """The folder name of the checkpoint after ``step`` steps."""
    return RunLayout(Path(".")).step_checkpoint(step).folder.name


def training_state(folder: Path) -> dict:
    """A checkpoint folder's training state."""
    return load_training_state(Path(folder))


def loaded(path):
    """(model, its run config, the folder or file it came from) of what ``ddim.loading.load_model`` loads."""
    model = load_model(path)
    return model, model.origin.config, model.origin.source


def captured_figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Figures the plot functions of ddim.plots lay out, drawn, instead of only their PNG."""
    import ddim.plots as module
    figures: list[Any] = []
    original = module.save_figure

    def keep(figure: Any, path: Path, **options: Any) -> Path:
        figure.canvas.draw()
        figures.append({"axes": [(axis.get_xlim(), [t.get_text() for t in axis.get_xticklabels()],
                                  [t.get_text() for t in axis.get_yticklabels()], axis.get_xlabel(),
                                  axis.get_ylabel(), [(line.get_marker(), line.get_linestyle()) for line in axis.lines])
                                 for axis in figure.axes],
                        "texts": [text.get_text() for text in figure.texts]})  # the title, then the subtitle
        return original(figure, path, **options)

    monkeypatch.setattr(module, "save_figure", keep)
    return figures


def header(path: Path) -> list[str]:
    """The first row of a CSV file."""
    with open(path, newline="") as handle:
        return next(csv.reader(handle))


# The browser tests (test_demo_browser, test_demo_screenshot): Debian's Chromium, driven by Playwright.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def missing(reason: str) -> None:
    """Skip, or fail under CI, where the browser test cannot run."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium executable: ``$DDIM_CHROMIUM`` or the first on the PATH."""
    found = os.environ.get("DDIM_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if not found:
        missing("no Chromium to drive: install Debian's package (apt-get install chromium; .ci/run does) "
                "or set $DDIM_CHROMIUM")
    return found
