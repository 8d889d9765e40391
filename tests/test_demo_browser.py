"""``ddim demo`` in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright) opens the
page, presses "Generate" and reads back the image it shows; a refused value appears on the page as a message.

Skips, saying why, where Playwright or Chromium is missing; under CI (``$CI`` set, where ``.ci/run`` installs
Chromium) a missing browser is a failure instead.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from conftest import missing

import ddim

pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator:
    """Headless Chromium under Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright is not installed (pip install -r requirements.txt installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """The page of a tiny (untrained, 16 px) exported model, served on a free port; (url, model)."""
    pytest.importorskip("gradio", reason='the web demo is an optional extra: pip install "ddim[demo]"')
    from test_demo import free_port

    from ddim import export
    from ddim.config import ModelConfig, RunConfig
    from ddim.demo.server import launch
    from ddim.model import DiffusionModel

    where = tmp_path_factory.mktemp("browser")
    network = DiffusionModel(ModelConfig(image_size=16, widths=(8, 16), block_depth=1))
    file = export.export_model(network, RunConfig(model=network.config), where / "tiny.safetensors",
                               info={"step": 40, "epoch": 2})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(where / "gradio"))
        model = ddim.load(file, device="cpu")
        app, url = launch(model, where / "files", port=free_port())
        try:
            yield url, model
        finally:
            app.close()


def test_pressing_generate_shows_the_grid_the_api_draws(browser, page_url, tmp_path: Path) -> None:
    url, model = page_url
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    assert page.get_by_text("Guidance weight").count() == 0  # an unconditional model: no class picker
    page.get_by_role("button", name="Generate", exact=True).click()
    status = page.locator("#grid-status")
    status.get_by_text("images in").wait_for()
    assert "16 images in" in status.inner_text() and " s (sampler ddim, steps 20, seed 0" in status.inner_text()
    image = page.locator("#grid img")
    image.wait_for()
    shown = page.request.get(image.get_attribute("src")).body()  # the file the page displays
    with Image.open(io.BytesIO(shown)) as decoded:
        displayed = np.asarray(decoded.convert("RGB"))
    assert displayed.std() > 1.0, "the displayed grid's pixels are constant"
    expected = ddim.save_grid(ddim.generate(model, 16, steps=20, seed=0), tmp_path / "expected.png")
    with Image.open(expected) as decoded:
        assert np.array_equal(displayed, np.asarray(decoded.convert("RGB")))
    with Image.open(io.BytesIO(image.screenshot())) as rendered:  # and what the screen shows of it
        assert np.asarray(rendered.convert("RGB")).std() > 1.0
    page.close()


def test_the_page_opens_with_a_grid_already_drawn(browser, page_url) -> None:
    url, _ = page_url
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)  # Generate is never pressed
    page.locator("#grid-status").get_by_text("16 images in").wait_for()
    page.locator("#grid img").wait_for()
    assert page.locator("#grid-download").is_enabled()
    page.close()


def test_zero_steps_shows_a_message_on_the_page_not_a_traceback(browser, page_url) -> None:
    url, _ = page_url
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    # the page's own first grid (drawn on load from the fields' values) first: changed before that request is sent,
    # as on a slow machine, the load would be refused too and show a second copy of the message
    page.locator("#grid-status").get_by_text("16 images in").wait_for()
    page.get_by_label("Steps", exact=True).fill("0")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.get_by_text("steps must be between 1 and 10,000, got 0").wait_for()
    assert "Traceback" not in page.content()
    page.close()
