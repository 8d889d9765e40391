"""ddim: train denoising diffusion implicit models on real images and generate new ones.

The Python API (the commands' own code): ``ddim.load``, ``ddim.generate``, ``ddim.interpolate``, ``ddim.fit``, ``ddim.evaluate``,
``ddim.save_grid``; configuration: ``ddim.RunConfig`` and ``ddim.config_with``.
"""

__version__ = "0.3.0"

from .api import config_with, evaluate, fit, generate, interpolate, load  # noqa: E402
from .config import RunConfig  # noqa: E402
from .reports import save_grid  # noqa: E402

__all__ = ["__version__", "load", "generate", "interpolate", "fit", "evaluate", "config_with", "RunConfig", "save_grid"]
