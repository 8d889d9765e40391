"""What the page asks for: the values checked (a message for the person, never a traceback), then drawn
through the public API (:func:`ddim.generate`, :func:`ddim.interpolate`) and written as the files the page
offers for download. No Gradio here: the page turns :class:`DemoInputError` into a message."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..limits import (MAX_GUIDANCE, MAX_SAMPLING_STEPS as MAX_STEPS, MAX_SEED,  # noqa: F401 (the page's)
                      LimitError, real_number, whole_number)
from .. import api
from ..model import DiffusionModel
from ..reports import save_gif, save_grid, to_uint8
from ..samplers import SAMPLERS, SamplerOptionError, sampler_keywords

MAX_IMAGES = 64  # one grid on a page; more images are `ddim sample`'s job
MAX_FRAMES = 60  # one strip on a page; longer ones are `ddim interpolate`'s job
FRAME_MS = 120  # GIF frame duration, as `ddim interpolate`'s default

#: ``progress(done, total)``: sampling steps done so far.
Progress = Callable[[int, int], None]


class DemoInputError(LimitError):
    """A value the page refuses, with a message that says which and why."""


def sampler_options(sampler: Any, eta: Any) -> dict[str, float]:
    """The sampler's keyword options, as ``ddim sample`` takes them: ``eta`` for DDIM only."""
    eta = real_number(0.0 if eta is None else eta, "eta", 0.0, 1.0)
    try:
        return sampler_keywords(sampler, eta)
    except SamplerOptionError as error:
        raise DemoInputError(f"{error}: set it to 0" if eta and sampler in SAMPLERS else str(error)) from None


ANY_CLASS = "all classes, in turn"  #: the picker's choice for no class (ddim.classes.labels_for's policy)


def default_guidance(model: DiffusionModel) -> float:
    """The guidance slider's starting value: the run's own per-epoch guidance where it follows the class (>= 1),
    else 1 (plain conditional sampling, ``ddim sample``'s default). A run trained with ``--guidance 0`` measured
    its unconditional sampler; starting its page at 0 would draw the same images whichever class is picked."""
    return max(1.0, float(model.run_config.train.guidance))


def conditioning(model: DiffusionModel, class_name: Any, guidance: Any) -> dict[str, Any]:
    """``classes=`` and ``guidance=`` for a conditional model (the API resolves the class's name or index; no class
    or :data:`ANY_CLASS`: the classes in turn); ``{}`` for an unconditional one, whose page has no class picker, so
    these values are ignored."""
    if not model.class_names:
        return {}
    any_class = class_name is None or (isinstance(class_name, str) and class_name.strip() in ("", ANY_CLASS))
    return {"classes": None if any_class else class_name,
            "guidance": real_number(guidance, "guidance", 0.0, MAX_GUIDANCE)}


def _describe(settings: dict[str, Any]) -> str:
    return ", ".join(f"{name} {value}" for name, value in settings.items())


def _request_folder(folder: Path) -> Path:
    """A fresh folder for one request's files, so that requests running together never share a name."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="request-", dir=folder))


@dataclass(frozen=True)
class Grid:
    """A drawn grid: the images (N, 3, S, S) in [0, 1], its PNG, and the seconds the sampling took."""

    images: torch.Tensor
    png: Path
    seconds: float
    settings: str

    @property
    def summary(self) -> str:
        """What was drawn and how long it took."""
        return f"{len(self.images)} images in {self.seconds:.2f} s ({self.settings})"


def draw_grid(model: DiffusionModel, folder: Path, *, num: Any, steps: Any, sampler: Any, eta: Any, seed: Any,
              class_name: Any = None, guidance: Any = None, progress: Progress | None = None) -> Grid:
    """``num`` images of ``seed`` with ``sampler`` through :func:`ddim.generate`, saved as one PNG grid."""
    num = whole_number(num, "number of images", 1, MAX_IMAGES)
    steps = whole_number(steps, "steps", 1, MAX_STEPS)
    seed = whole_number(seed, "seed", 0, MAX_SEED)
    options = {**sampler_options(sampler, eta), **conditioning(model, class_name, guidance)}
    callback = None if progress is None else (lambda step, *_: progress(min(step + 1, steps), steps))
    started = time.perf_counter()
    images = api.generate(model, num, steps=steps, sampler=sampler, seed=seed, batch_size=num,
                           callback=callback, **options)
    seconds = time.perf_counter() - started
    png = save_grid(images, _request_folder(folder) / f"ddim-seed{seed}-{sampler}-{steps}steps.png")
    settings = _describe({"sampler": sampler, "steps": steps, **options, "seed": seed})
    return Grid(images=images, png=png, seconds=seconds, settings=f"{settings}, {_device_name(model)}")


@dataclass(frozen=True)
class Interpolation:
    """Frames (F, 3, S, S) in [0, 1] along the path between two starting noises, as a PNG strip and a GIF."""

    frames: torch.Tensor
    png: Path
    gif: Path
    seconds: float
    settings: str

    @property
    def summary(self) -> str:
        """What was drawn and how long it took."""
        return f"{len(self.frames)} frames in {self.seconds:.2f} s ({self.settings})"


def draw_interpolation(model: DiffusionModel, folder: Path, *, seed: Any, start: Any, end: Any, frames: Any,
                       steps: Any, class_name: Any = None, guidance: Any = None,
                       frame_ms: int = FRAME_MS) -> Interpolation:
    """Slerp from the starting noise of image ``start`` of ``seed`` to that of image ``end`` (the grid's images of
    the same seed) through :func:`ddim.interpolate`: deterministic DDIM, saved as a strip and a looping GIF."""


    seed = whole_number(seed, "seed", 0, MAX_SEED)
    start = whole_number(start, "from image", 0, MAX_IMAGES - 1)
    end = whole_number(end, "to image", 0, MAX_IMAGES - 1)
    if start == end:
        raise DemoInputError(f"from image and to image are both {start}: pick two different images")
    frames = whole_number(frames, "frames", 2, MAX_FRAMES)
    steps = whole_number(steps, "steps", 1, MAX_STEPS)
    options = conditioning(model, class_name, guidance)
    started = time.perf_counter()
    path = api.interpolate(model, seed=seed, start=start, end=end, frames=frames, steps=steps, **options)
    seconds = time.perf_counter() - started
    out = _request_folder(folder)
    name = f"ddim-seed{seed}-images{start}to{end}"
    png = save_grid(path, out / f"{name}.png", columns=frames)
    gif = save_gif(path, out / f"{name}.gif", duration_ms=frame_ms)
    settings = _describe({"seed": seed, "images": f"{start} → {end}", "ddim steps": steps, **options})
    return Interpolation(frames=path, png=png, gif=gif, seconds=seconds,
                         settings=f"{settings}, {_device_name(model)}")


def _device_name(model: DiffusionModel) -> str:
    return f"on {next(model.parameters()).device.type}"


def to_pixels(image: torch.Tensor) -> Any:
    """A [0, 1] image (3, H, W) as a uint8 NumPy array (H, W, 3) for display."""

    return to_uint8(image).permute(1, 2, 0).numpy()
