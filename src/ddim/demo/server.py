"""Serving the page: on 127.0.0.1 unless told otherwise, until Ctrl-C, its downloads in a folder removed at the end."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from ..model import DiffusionModel
from ..signals import StopRequests
from . import require_gradio
from .app import CSS, build_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


class PortUnavailable(RuntimeError):
    """The host and port to serve on cannot be bound (taken, or not an address of this machine)."""


MAX_UPLOAD_BYTES = 1  #: the page takes no files, so Gradio's upload route refuses anything larger than 1 byte


def launch(model: DiffusionModel, folder: Path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
           quiet: bool = True) -> tuple[Any, str]:
    """Build the page for ``model`` and serve it on ``host:port`` in a background thread; returns (the Gradio
    app, its URL). ``app.close()`` stops it."""
    gr = require_gradio()
    app = build_app(model, folder)
    app.queue(default_concurrency_limit=1)
    try:
        _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=quiet,
                               inbrowser=False, share=False, ssr_mode=False, mcp_server=False, show_error=False,
                               footer_links=["api"], allowed_paths=[str(folder)], css=CSS,
                               max_file_size=MAX_UPLOAD_BYTES,
                               theme=gr.themes.Default())
    except OSError as error:
        raise PortUnavailable(f"cannot serve on {host}:{port}: the port is taken or the address is not one of "
                              "this machine's; choose another with --port or --host") from error
    return app, url


@contextlib.contextmanager
def demo_files() -> Iterator[Path]:
    """A temporary folder for everything the page writes, removed at the end: the files it offers for download,
    and Gradio's own copies and history (``GRADIO_TEMP_DIR``, which Gradio reads when it is imported, so this is
    entered before it is: otherwise they stay in the system's temp folder for good)."""
    previous = os.environ.get(GRADIO_CACHE)
    with tempfile.TemporaryDirectory(prefix="ddim-demo-") as folder:
        os.environ[GRADIO_CACHE] = str(Path(folder) / "gradio")
        try:
            yield Path(folder)
        finally:
            if previous is None:
                os.environ.pop(GRADIO_CACHE, None)
            else:
                os.environ[GRADIO_CACHE] = previous


GRADIO_CACHE = "GRADIO_TEMP_DIR"


def serve(model: DiffusionModel, folder: Path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the page until Ctrl-C (or SIGTERM), writing its files into ``folder`` (:func:`demo_files`)."""
    app, url = launch(model, folder, host=host, port=port)
    print(f"ddim demo: serving {model.origin.source if model.origin is not None else 'the model'} on {url} (Ctrl-C stops it)", flush=True)
    try:
        with StopRequests() as stop:  # Ctrl-C or SIGTERM: stop serving, then the caller removes the files
            while stop.requested is None and app.is_running:
                time.sleep(0.1)
    finally:
        app.close()
    print(f"ddim demo: stopped ({stop.requested or 'server closed'})", flush=True)
