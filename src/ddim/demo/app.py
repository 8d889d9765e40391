"""The page: a grid tab, an interpolation tab and the checkpoint's card, over :mod:`ddim.demo.actions`.

Its events are also the app's API (``/generate``, ``/interpolate``, ``/card``), which Gradio's client calls
exactly as the page does. A refused value is shown on the page (``gr.Error``), never as a traceback.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

from ..model import DiffusionModel
from ..samplers import SAMPLERS
from . import actions, require_gradio
from .card import card_markdown, read_card, summary_line, title

#: 64 px images shown larger: keep their pixels sharp rather than blurred.
CSS = ("#grid img, #frame img, #strip img { image-rendering: pixelated; }\n"
       "#grid img, #frame img { width: 100%; height: 100%; object-fit: contain; }")
DEFAULT_IMAGES = 16

log = logging.getLogger(__name__)


def _on_page(call: Callable[[], Any]) -> Any:
    """``call()``, with a refused value or a failure turned into a message on the page."""
    gr = require_gradio()
    try:
        return call()
    except actions.LimitError as error:  # a refused number (the page's own checks and the API's)
        raise gr.Error(str(error), title="Cannot draw this", print_exception=False) from None
    except ValueError as error:  # the API's own refusals, e.g. a class the model does not know
        log.info("the demo's request was refused: %s", error)
        raise gr.Error(str(error), title="Cannot draw this", print_exception=False) from None
    except Exception as error:  # the page shows one line; the server's log keeps the traceback
        log.exception("the demo's request failed")
        raise gr.Error(f"{type(error).__name__}: {error}", title="Sampling failed",
                       print_exception=False) from None


def _conditioning_controls(gr: Any, model: DiffusionModel) -> list[Any]:
    """The class picker and guidance slider of a conditional model; none for an unconditional one."""
    if not model.class_names:
        return []
    guidance = actions.default_guidance(model)
    return [gr.Dropdown([actions.ANY_CLASS, *model.class_names], value=model.class_names[0], label="Class"),
            gr.Slider(0.0, actions.MAX_GUIDANCE, value=guidance, step=0.5,
                      label="Guidance weight", info="1: plain conditional sampling; higher: closer to the class")]


def _grid_tab(gr: Any, model: DiffusionModel, folder: Path) -> tuple[Callable[..., Any], list[Any], list[Any]]:
    """The grid tab; returns its drawing handler with its inputs and outputs, so the page draws a first grid with
    the default settings when it opens (as the README's screenshot shows it) instead of an empty frame."""
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            sampler = gr.Dropdown(list(SAMPLERS), value="ddim", label="Sampler")
            steps = gr.Number(20, precision=0, label="Steps",
                              info=f"1 to {actions.MAX_STEPS:,}; heun calls the network 2 × steps − 1 times")
            eta = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="eta",
                            info="DDIM's stochasticity: 0 deterministic, 1 DDPM-like")
            seed = gr.Number(0, precision=0, label="Seed")
            num = gr.Number(DEFAULT_IMAGES, precision=0, label="Number of images", info=f"1 to {actions.MAX_IMAGES}")
            conditioning = _conditioning_controls(gr, model)
            button = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Column(scale=2):
            grid = gr.Image(label="Grid", type="filepath", format="png", interactive=False, elem_id="grid",
                            height=520, buttons=["download", "fullscreen"])
            status = gr.Markdown("Drawing a first grid with these settings...", elem_id="grid-status")
            download = gr.DownloadButton("Download the grid (PNG)", interactive=False, elem_id="grid-download")

    def generate(num: Any, steps: Any, sampler: Any, eta: Any, seed: Any, *chosen: Any,
                 progress: Any) -> tuple[Any, ...]:
        progress(0, desc="sampling")
        result = _on_page(lambda: actions.draw_grid(
            model, folder, num=num, steps=steps, sampler=sampler, eta=eta, seed=seed, class_name=chosen[0]
            if chosen else None, guidance=chosen[1] if chosen else None,
            progress=lambda done, total: progress((done, total), desc="sampling", unit="steps")))
        return str(result.png), result.summary, gr.DownloadButton(value=str(result.png), interactive=True)

    if conditioning:
        def handler(num, steps, sampler, eta, seed, class_name, guidance, progress=gr.Progress()):
            return generate(num, steps, sampler, eta, seed, class_name, guidance, progress=progress)
    else:
        def handler(num, steps, sampler, eta, seed, progress=gr.Progress()):
            return generate(num, steps, sampler, eta, seed, progress=progress)
    inputs, outputs = [num, steps, sampler, eta, seed, *conditioning], [grid, status, download]
    button.click(handler, inputs, outputs, api_name="generate", concurrency_id="sampling", concurrency_limit=1)
    sampler.change(lambda name: gr.Slider(visible=name == "ddim", value=0.0), sampler, eta,
                   api_visibility="private", queue=False)
    return handler, inputs, outputs


def _interpolation_tab(gr: Any, model: DiffusionModel, folder: Path) -> None:
    gr.Markdown("The path between the starting noises of two images of one seed (the Grid tab's images "
                "of that seed, counted from 0), each frame drawn with deterministic DDIM.")
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            seed = gr.Number(0, precision=0, label="Seed")
            with gr.Row():
                start = gr.Number(0, precision=0, label="From image", info=f"0 to {actions.MAX_IMAGES - 1}")
                end = gr.Number(1, precision=0, label="To image", info=f"0 to {actions.MAX_IMAGES - 1}")
            with gr.Row():
                frames = gr.Number(9, precision=0, label="Frames", info=f"2 to {actions.MAX_FRAMES}")
                steps = gr.Number(20, precision=0, label="DDIM steps", info=f"1 to {actions.MAX_STEPS:,}")
            conditioning = _conditioning_controls(gr, model)
            button = gr.Button("Interpolate", variant="primary", elem_id="interpolate")
        with gr.Column(scale=2):
            frame = gr.Image(label="Frame", type="numpy", format="png", interactive=False, elem_id="frame",
                             height=320)
            position = gr.Slider(0, 8, value=0, step=1, label="Position along the path (frame)",
                                 elem_id="position")
            strip = gr.Image(label="All frames", type="filepath", format="png", interactive=False, elem_id="strip")
            status = gr.Markdown("Press Interpolate to draw the path.", elem_id="interpolation-status")
            with gr.Row():
                png = gr.DownloadButton("Download the frames (PNG)", interactive=False)
                gif = gr.DownloadButton("Download the animation (GIF)", interactive=False)
    drawn = gr.State(None)  # the frames, uint8 (F, S, S, 3), for the position slider

    def interpolate(seed: Any, start: Any, end: Any, frames: Any, steps: Any, *chosen: Any,
                    progress: Any) -> tuple[Any, ...]:
        progress(None, desc="sampling every frame")
        result = _on_page(lambda: actions.draw_interpolation(
            model, folder, seed=seed, start=start, end=end, frames=frames, steps=steps,
            class_name=chosen[0] if chosen else None, guidance=chosen[1] if chosen else None))
        pixels = [actions.to_pixels(image) for image in result.frames]
        middle = len(pixels) // 2
        return (pixels[middle], gr.Slider(maximum=len(pixels) - 1, value=middle), str(result.png), result.summary,
                gr.DownloadButton(value=str(result.png), interactive=True),
                gr.DownloadButton(value=str(result.gif), interactive=True), pixels)

    if conditioning:
        def handler(seed, start, end, frames, steps, class_name, guidance, progress=gr.Progress()):
            return interpolate(seed, start, end, frames, steps, class_name, guidance, progress=progress)
    else:
        def handler(seed, start, end, frames, steps, progress=gr.Progress()):
            return interpolate(seed, start, end, frames, steps, progress=progress)
    button.click(handler, [seed, start, end, frames, steps, *conditioning],
                 [frame, position, strip, status, png, gif, drawn], api_name="interpolate",
                 concurrency_id="sampling", concurrency_limit=1)

    def show(pixels: list[Any] | None, index: Any) -> Any:
        if not pixels:
            return None
        return pixels[max(0, min(int(index), len(pixels) - 1))]
    position.change(show, [drawn, position], frame, api_visibility="private", queue=False)


def build_app(model: DiffusionModel, folder: Path) -> Any:
    """The page for ``model`` (loaded by :func:`ddim.load`), writing its downloads under ``folder``."""
    gr = require_gradio()
    card = read_card(model)
    name = title(card)
    with gr.Blocks(title=f"ddim demo: {name}", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(f"# ddim: {name}\n{summary_line(card)}", elem_id="summary")
        with gr.Tab("Grid"):
            first_grid = _grid_tab(gr, model, folder)
        with gr.Tab("Interpolation"):
            _interpolation_tab(gr, model, folder)
        with gr.Tab("Checkpoint card"):
            facts = gr.Markdown(elem_id="card")
            config = gr.Code(language="json", label="config", interactive=False, elem_id="config",
                             max_lines=40)
        app.load(lambda: (card_markdown(card), json.dumps(card.config, indent=2)), None, [facts, config],
                 api_name="card")
        draw, inputs, outputs = first_grid
        app.load(draw, inputs, outputs, api_visibility="private", concurrency_id="sampling")  # a grid on arrival
    return app
