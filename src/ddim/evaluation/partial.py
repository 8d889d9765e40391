"""The finished batches of a long generation, kept on disk so that an interrupted evaluation continues.

``ddim evaluate`` against all 8,189 flowers generates for about an hour on a CPU, and each point of ``ddim
study`` for up to twenty minutes. :class:`PartialFeatures` keeps the Inception features of every finished batch in
a folder named by everything that decides them (weights, sampler, seed, image indices, batch size, numerics,
Inception network), so that running the same command again generates only the batches still missing; the folder
is removed once the generation is complete. Other settings get another folder: nothing is ever mixed.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_path, write_text
from ..reading import regular_file_size


BATCH_FILE = re.compile(r"images-(\d{7,})-(\d{7,})\.npy")  #: the name :meth:`PartialFeatures._file` gives


class PartialFeatures:
    """Features of the finished batches of one generation, one ``.npy`` file per batch under ``root``."""

    def __init__(self, root: Path, key: dict[str, Any]) -> None:
        text = json.dumps(key, sort_keys=True, default=str)
        self.folder = Path(root) / hashlib.sha256(text.encode()).hexdigest()[:24]
        self.key_text = text

    def _file(self, first: int, count: int) -> Path:
        return self.folder / f"images-{first:07d}-{first + count - 1:07d}.npy"

    def load(self, first: int, count: int) -> np.ndarray | None:
        """The features of images ``first`` .. ``first + count - 1`` if an earlier run finished that batch."""
        try:
            regular_file_size(self._file(first, count))  # never a FIFO or a device planted under the name
            features = np.load(self._file(first, count), allow_pickle=False)
        except (OSError, ValueError, EOFError):  # ReadError is a ValueError
            return None  # not finished earlier, or unreadable: generated again
        return features if features.ndim == 2 and len(features) == count else None

    def save(self, first: int, features: np.ndarray) -> None:
        """Keep a finished batch's features (an unwritable folder only costs a rerun this batch)."""
        try:
            if not (self.folder / "key.json").is_file():
                write_text(self.folder / "key.json", self.key_text + "\n")
            with atomic_path(self._file(first, len(features))) as temporary, open(temporary, "wb") as handle:
                np.save(handle, features)
        except OSError:
            pass

    def count(self) -> int:
        """How many images' features earlier runs left here."""
        spans = [BATCH_FILE.fullmatch(path.name) for path in self.folder.glob("images-*-*.npy")]
        return sum(int(span[2]) - int(span[1]) + 1 for span in spans if span)  # a stray file is no batch

    def clear(self) -> None:
        """Remove the folder: the generation is complete."""
        shutil.rmtree(self.folder, ignore_errors=True)
