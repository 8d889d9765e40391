"""The README's screenshot of the page: headless Chromium opens it, waits for the grid it draws on load (or picks a
class and guidance and presses Generate) and photographs the result.

    python -m ddim.demo.screenshot --checkpoint pretrained --class sunflower --guidance 3 --out docs/demo.png

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

WIDTH, HEIGHT = 1280, 940  # the conditional page's Generate button included


def free_port() -> int:
    """A port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def take(checkpoint: str, out: Path, chromium: str, device: str = "cpu", timeout_ms: int = 300_000,
         class_name: str | None = None, guidance: float | None = None) -> Path:
    """Serve ``checkpoint``'s page, wait for its first grid (drawn on load with the fields' defaults) or, with
    ``class_name``/``guidance`` (a conditional model), set those and press Generate; save the page as a palette
    PNG at ``out``."""
    from playwright.sync_api import sync_playwright  # an optional test dependency, only for this picture

    from .server import launch  # Gradio, the demo's optional extra

    model = load(checkpoint, device=device)
    if (class_name is not None or guidance is not None) and not model.class_names:
        raise ValueError(f"{checkpoint} is not class-conditional: it takes no class or guidance")
    if class_name is not None and class_name not in model.class_names:
        raise ValueError(f"{checkpoint} has no class {class_name!r}")
    with tempfile.TemporaryDirectory(prefix="ddim-demo-") as folder:
        app, url = launch(model, Path(folder), port=free_port())
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
                page.set_default_timeout(timeout_ms)
                page.goto(url)
                status = page.locator("#grid-status")
                status.get_by_text("images in").wait_for()  # the grid drawn on load: a click before it would race it
                if class_name is not None or guidance is not None:
                    chosen = class_name or model.class_names[0]
                    if class_name is not None:
                        page.get_by_label("Class", exact=True).click()
                        page.get_by_role("option", name=class_name, exact=True).click()
                    if guidance is not None:
                        box = page.get_by_label("number input for Guidance weight")
                        box.fill(f"{guidance:g}")
                        box.press("Enter")
                    page.get_by_role("button", name="Generate", exact=True).click()
                    wanted = f"classes {chosen}, guidance {float(guidance if guidance is not None else 1)}"
                    status.get_by_text(wanted).wait_for()
                page.locator("#grid img").wait_for()
                page.evaluate("window.scrollTo(0, 0)")
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
    parser.add_argument("--class", dest="class_name", default=None, help="a conditional model's class to draw")
    parser.add_argument("--guidance", type=float, default=None, help="a conditional model's guidance weight")
    args = parser.parse_args()
    try:
        path = take(args.checkpoint, args.out, args.chromium, args.device, class_name=args.class_name,
                    guidance=args.guidance)
    except ValueError as error:
        parser.error(str(error))
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
