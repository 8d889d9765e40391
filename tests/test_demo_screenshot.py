"""``python -m ddim.demo.screenshot``: the README's picture of the page, taken in headless Chromium.

Its own module: the screenshot starts Playwright itself, which cannot run inside test_demo_browser's open session.
Skips (fails under CI) where Chromium or Playwright is missing (conftest's ``chromium``), as test_demo_browser does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from conftest import missing

pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]


def tiny_export(folder: Path, conditional: bool) -> Path:
    """A 16 px exported model whose EMA network draws something (random weights, not the zero output)."""
    import torch

    from ddim import export
    from ddim.config import ModelConfig, RunConfig
    from ddim.model import DiffusionModel

    torch.manual_seed(0)
    model = DiffusionModel(ModelConfig(image_size=16, widths=(8, 16), block_depth=1, conditional=conditional,
                                       class_names=("pink primrose", "sunflower") if conditional else ()))
    for parameter in model.ema_network.parameters():
        parameter.data.normal_(0, 0.05)
    return export.export_model(model, RunConfig(model=model.config), folder / "tiny.safetensors",
                               info={"step": 40, "epoch": 2})


def test_the_screenshot_shows_the_chosen_class_at_the_chosen_guidance(chromium: str, tmp_path: Path,
                                                                      monkeypatch) -> None:
    pytest.importorskip("gradio", reason='the web demo is an optional extra: pip install "ddim[demo]"')
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing("Playwright is not installed (pip install -r requirements.txt installs it)")
    from ddim.demo import screenshot

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    out = tmp_path / "demo.png"
    # take() waits for the status line of exactly this class and guidance: a page that ignored either would time out
    assert screenshot.take(str(tiny_export(tmp_path, True)), out, chromium, timeout_ms=60_000,
                           class_name="sunflower", guidance=2.5) == out
    with Image.open(out) as picture:
        assert picture.size == (screenshot.WIDTH, screenshot.HEIGHT) and picture.mode == "P"  # 256 colours
        assert np.asarray(picture.convert("RGB")).std() > 1.0


def test_a_class_for_a_model_without_classes_is_refused_before_the_browser_starts(tmp_path: Path) -> None:
    from ddim.demo import screenshot

    with pytest.raises(ValueError, match="is not class-conditional: it takes no class or guidance"):
        screenshot.take(str(tiny_export(tmp_path, False)), tmp_path / "x.png", "no-such-chromium", class_name="rose")
    (tmp_path / "c").mkdir()
    conditional = str(tiny_export(tmp_path / "c", True))
    with pytest.raises(ValueError, match="has no class 'rose'"):
        screenshot.take(conditional, tmp_path / "x.png", "no-such-chromium", class_name="rose")
    assert not (tmp_path / "x.png").exists()
