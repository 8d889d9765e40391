"""Reading the small files a run, a checkpoint or a cache holds (JSON configurations, results, training states)
so that a damaged or planted file is one :class:`ReadError` naming it, never a hang, a traceback or all memory:
regular files only (not a folder, a FIFO or ``/dev/zero`` behind a link), at most a stated size, UTF-8 JSON
of bounded depth."""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

MAX_JSON_BYTES = 16 * 2**20  #: a configuration, a recipe, results: a few KiB each; study.json stays far below


class ReadError(ValueError):
    """A file that is not what it should be (not a regular file, too large, not UTF-8 JSON): names the file."""


def regular_file_size(path: Path | str, limit: int | None = None) -> int:
    """The size of ``path``, refused (:class:`ReadError`) unless it is a regular file (links followed) of at
    most ``limit`` bytes; ``FileNotFoundError`` if it does not exist."""
    info = os.stat(path)
    _check(Path(path), info, limit)
    return info.st_size


def read_bytes(path: Path | str, limit: int) -> bytes:
    """The contents of the regular file ``path``, at most ``limit`` bytes (a :class:`ReadError` otherwise).

    Opened without blocking, so a FIFO planted under the name is refused instead of waiting for a writer forever.
    """
    path = Path(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a folder opens too: _check names it
    except OSError as error:
        if error.errno == errno.ENXIO:  # a socket or a FIFO without a writer on some systems
            raise ReadError(f"{path} is not a regular file") from None
        raise
    try:
        _check(path, os.fstat(descriptor), limit)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(descriptor, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while being read
            raise ReadError(f"{path} is larger than {limit:,} bytes, too large for a ddim file of this kind")
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def read_json(path: Path | str, limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in ``path`` (UTF-8, at most ``limit`` bytes, not nested past Python's recursion limit), or a
    :class:`ReadError` saying what is wrong with it; ``FileNotFoundError`` if it does not exist."""
    return parse_json(read_bytes(path, limit), Path(path))


def parse_json(data: bytes | str, source: object) -> Any:
    """JSON from bytes or text read from ``source`` (named in the :class:`ReadError`), with the same checks as
    :func:`read_json`."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ReadError(f"{source} is not UTF-8 text (byte {error.start} is {data[error.start]:#04x})") from None
    try:
        return json.loads(data)
    except json.JSONDecodeError as error:
        raise ReadError(f"{source} is not valid JSON: {error}") from None
    except RecursionError:
        raise ReadError(f"{source} nests too deep to be a file ddim wrote") from None


def _check(path: Path, info: os.stat_result, limit: int | None) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise ReadError(f"{path} is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        kind = "a pipe" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode) or \
            stat.S_ISBLK(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file"
        raise ReadError(f"{path} is {kind}, not a regular file")
    if limit is not None and info.st_size > limit:
        raise ReadError(f"{path} is {info.st_size:,} bytes, more than the {limit:,} a ddim file of this kind may hold")


def npz_arrays(path: Path | str, names: tuple[str, ...], max_bytes: int) -> tuple[Any, ...]:
    """The arrays ``names`` of the .npz archive ``path`` (never unpickling), read from one opening of it after
    checking the size each header declares: an archive of a few hundred bytes can declare a 90 GiB array (a
    decompression bomb), refused here (:class:`ReadError`) before anything is allocated. ``KeyError`` if an
    array is missing."""
    path = Path(path)
    regular_file_size(path)
    with zipfile.ZipFile(path) as archive:
        for name in names:
            with archive.open(f"{name}.npy") as member:
                version = np.lib.format.read_magic(member)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ReadError(f"{path}: its {name!r} array has an unknown .npy version {version}")
                shape, _, dtype = read_header(member)
            declared = math.prod(shape) * dtype.itemsize
            if declared > max_bytes:
                raise ReadError(f"{path}: its {name!r} array declares {declared:,} bytes ({shape}), more than the "
                                f"{max_bytes:,} allowed here; it is damaged or not a file of this kind")
            if dtype.hasobject:
                raise ReadError(f"{path}: its {name!r} array holds Python objects, which ddim never unpickles")
        arrays = []
        for name in names:
            with archive.open(f"{name}.npy") as member:
                arrays.append(np.lib.format.read_array(member, allow_pickle=False))
        return tuple(arrays)


def memory_bytes() -> int:
    """This machine's physical memory in bytes (16 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30
