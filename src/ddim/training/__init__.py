"""Training: a session (process group and device), a fixed setup, the progress a checkpoint holds, the step, the
loop, and the callbacks hung off its edges (progress, grids, history, metrics.jsonl, TensorBoard)."""

from .callbacks import Callback, RunInfo
from .errors import TrainingError, TrainingInterrupted
from .loop import fit
from .monitoring import default_callbacks

__all__ = ["Callback", "RunInfo", "TrainingError", "TrainingInterrupted", "default_callbacks", "fit"]
