"""What stops a training run: an unusable run folder, a diverged loss or a failed checkpoint, or a signal."""

from __future__ import annotations

from pathlib import Path


class TrainingError(RuntimeError):
    """Training cannot start or go on (an unusable run folder, a diverged loss, a failed checkpoint)."""


class TrainingInterrupted(TrainingError):
    """SIGINT or SIGTERM stopped training after a checkpoint was saved."""

    def __init__(self, signal_name: str, checkpoint: Path, run_dir: Path) -> None:
        super().__init__(f"{signal_name} received: stopped after saving {checkpoint}; "
                         f"continue with: ddim train --resume {run_dir}")
        self.signal_name = signal_name
        self.exit_code = 130 if signal_name == "SIGINT" else 143
