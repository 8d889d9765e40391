"""ddim: train denoising diffusion implicit models on real images and generate new ones.

The Python API (the commands' own code): ``ddim.load``, ``ddim.generate``, ``ddim.interpolate``, ``ddim.fit``,
``ddim.evaluate``, ``ddim.save_grid``; configuration: ``ddim.RunConfig`` and ``ddim.config_with``.

The API's names are imported on first use (they import PyTorch), so that ``ddim --help`` and ``ddim --version``,
which import this package first, answer without loading PyTorch; a name not in the API is an AttributeError.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any

# OpenMP threads that wait by yielding the core instead of spinning on it (read by libgomp when PyTorch is
# loaded, so set before). On a CPU another busy process shares, spinning threads made sampling up to 10x slower
# (40 s instead of 4 s for 16 images on 2 cores); on an idle CPU passive waiting costs 0-10%
# (scripts/bench_threads.py measures both). A value the user set is kept: OMP_WAIT_POLICY=ACTIVE for a machine
# of one's own.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    __version__ = version("ddim")  # pyproject.toml's, as installed
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown (not installed)"

#: The API's names and the module each lives in.
_API = {"load": "api", "generate": "api", "interpolate": "api", "fit": "api", "evaluate": "api",
        "config_with": "api", "RunConfig": "config", "save_grid": "reports"}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'ddim' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
