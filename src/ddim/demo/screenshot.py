"""The README's screenshot of the page: headless Chromium opens it, presses Generate and photographs the result.

    python -m ddim.demo.screenshot --checkpoint pretrained --out docs/demo.png

Needs Playwright (in requirements.txt) and a Chromium executable (Debian's ``chromium``; ``--chromium PATH``).
"""

from __future__ import annotations

import argparse
import io
import shutil
import socket
import tempfile
from pathlib import Path

from PIL import Image

from ..api import load
from ..export import BUILTIN_NAME

WIDTH, HEIGHT = 1280, 860


def free_port() -> int:
    """A port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def take(checkpoint: str, out: Path, chromium: str, device: str = "cpu", timeout_ms: int = 300_000) -> Path:
    """Serve ``checkpoint``'s page, press Generate with its defaults, save the page as a palette PNG at ``out``."""
    from playwright.sync_api import sync_playwright  # an optional test dependency, only for this picture

    from .server import launch  # Gradio, the demo's optional extra

    model = load(checkpoint, device=device)
    with tempfile.TemporaryDirectory(prefix="ddim-demo-") as folder:
        app, url = launch(model, Path(folder), port=free_port())
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
                page.set_default_timeout(timeout_ms)
                page.goto(url)
                page.get_by_role("button", name="Generate", exact=True).click()
                page.locator("#grid-status").get_by_text("images in").wait_for()
                page.locator("#grid img").wait_for()
                page.wait_for_timeout(500)  # let the image finish painting
                picture = page.screenshot(full_page=False)
                browser.close()
        finally:
            app.close()
    with Image.open(io.BytesIO(picture)) as image:  # 256 colours keep the file small; the page is mostly flat
        image.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)
    return out


def main() -> None:
    """The command line of this module."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=BUILTIN_NAME, help=f"the model (default: {BUILTIN_NAME})")
    parser.add_argument("--out", type=Path, default=Path("docs/demo.png"), help="the PNG to write")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium", help="Chromium executable")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    args = parser.parse_args()
    path = take(args.checkpoint, args.out, args.chromium, args.device)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
