"""The one owner of a training process's place in the world: its process group (torchrun) and its device and
runtime levers, set up when training starts and shut down when it ends, for the CLI and the API alike."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from ..config import RunConfig
from ..distributed import Distributed, from_environment, shutdown
from ..runtime import Runtime, resolve_device, resolve_runtime


@dataclass(frozen=True)
class Session:
    """This process's rank in the group and how its network runs."""

    distributed: Distributed
    runtime: Runtime


@contextlib.contextmanager
def training_session(config: RunConfig) -> Iterator[Session]:
    """The process group torchrun describes (none when alone) and the device and levers ``config`` asks for; the
    group is shut down when the block ends. A device that does not exist is a
    :class:`~ddim.runtime.DeviceError` before any other work."""
    distributed = from_environment()
    try:
        train = config.train
        device = resolve_device(train.device, distributed.local_rank)
        yield Session(distributed, resolve_runtime(device, train.precision, train.channels_last, train.compile))
    finally:
        shutdown()
