"""``ddim demo``: a local web page over the Python API (grids, interpolation, the checkpoint's card).

Gradio is an optional extra (``pip install "ddim[demo]"``) and is imported only here, when the page is built:
``import ddim`` and the other commands never need it.

    card.py      the checkpoint's card: images seen, epochs, validation KID, config (no Gradio)
    actions.py   what the page asks for, checked, then drawn through ddim.generate / ddim.interpolate (no Gradio)
    app.py       the page: its controls and events, errors shown on the page
    server.py    serving it on a host and port until Ctrl-C
    screenshot.py  the README's picture of the page, taken by headless Chromium
"""

from __future__ import annotations

from types import ModuleType

INSTALL_COMMAND = 'pip install "ddim[demo]"'


class DemoUnavailable(RuntimeError):
    """The optional web-demo dependencies are not installed."""


def require_gradio() -> ModuleType:
    """The ``gradio`` module, or :class:`DemoUnavailable` naming the command that installs it."""
    try:
        import gradio
    except ImportError as error:
        raise DemoUnavailable(f"the web demo needs Gradio, which is not installed: {INSTALL_COMMAND}") from error
    return gradio
