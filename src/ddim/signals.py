"""SIGINT and SIGTERM during training: remembered, so the loop can save a checkpoint and stop cleanly."""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopRequests:
    """While active, SIGINT and SIGTERM only set ``requested``; the loop saves and stops at the next step.

    A second SIGINT interrupts at once (KeyboardInterrupt): the previous checkpoint is still intact.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, number: int, frame: Any) -> None:
        if self.requested == "SIGINT" and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(number).name

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
