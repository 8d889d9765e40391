"""Writing files so that a crash or a full disk never leaves half a file under the real name."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import Any, Iterator


class WriteError(OSError):
    """A file could not be written (full disk, no permission): names the file and the reason."""

    def __str__(self) -> str:  # the message alone, as the user reads it (not "[Errno 28] ...")
        return self.strerror or super().__str__()


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file's contents to disk."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; after the block it is flushed and renamed onto ``path``.

    If the block fails, the temporary file is removed and ``path`` keeps its previous contents. An
    ``OSError`` (full disk, no permission) becomes one :class:`WriteError` naming ``path``. The
    temporary name keeps the suffix, so writers that choose a format by suffix still work.
    """
    path = Path(path)
    temporary = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent, path.name)
        yield temporary
        fsync_file(temporary)
        os.replace(temporary, path)
        fsync_dir(path.parent)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(error, OSError) and not isinstance(error, WriteError):
            raise WriteError(error.errno, f"cannot write {path}: {error.strerror or error}") from error
        raise


def write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)


class FolderLocked(RuntimeError):
    """Another process holds the folder's lock."""


class FolderLock:
    """An exclusive lock on a folder (``flock`` on ``FOLDER/.lock``, released when the holder exits or dies).

    The lock file names the holder's pid, so a refused process can say who holds it.
    """

    NAME = ".lock"

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / self.NAME
        self._handle: Any = None

    def acquire(self) -> "FolderLock":
        """Take the lock or raise :class:`FolderLocked` naming the holder's pid. The lock file is opened without
        following a symbolic link and must be a regular file, so a link planted as ``.lock`` can never make ddim
        write its pid into another file."""
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK,
                                 0o644)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise OSError(errno.ELOOP, f"{self.path} is a symbolic link, not ddim's lock file; remove it") from None
            raise
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise OSError(errno.EINVAL, f"{self.path} is not a regular file, so it is not ddim's lock file; remove it")
        handle = os.fdopen(descriptor, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise FolderLocked(f"{self.path.parent} is in use by another ddim process (pid {holder})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        """Let the lock go (the lock file stays; it is only a name for the lock)."""
        if self._handle is not None:
            self._handle.close()  # closing the descriptor releases the flock
            self._handle = None


def remove_stale_temporaries(folder: Path, name: str = "*") -> list[Path]:
    """Remove the ``.tmp-PID-NAME`` files that :func:`atomic_path` left in ``folder`` when its process was killed
    (their process is gone); returns them. Those of running processes are left alone."""
    removed = []
    for stale in Path(folder).glob(f".tmp-*-{name}"):
        pid = stale.name.split("-")[1]
        if not pid.isdigit() or not stale.is_file() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            stale.unlink()
            removed.append(stale)
    return removed


def _alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine)."""
    try:
        os.kill(pid, 0)  # a PermissionError means it runs, as another user
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


@contextlib.contextmanager
def locked_folder(folder: Path | str, what: str) -> Iterator[Path]:
    """Create ``folder`` if needed and hold its lock for the block, so that two commands never write into one
    folder at once (:class:`FolderLocked`, naming ``what`` and the holder, for the second). Afterwards the lock file
    is removed, and so is the folder if the block created it and left it empty."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = FolderLock(folder)
    try:
        lock.acquire()
    except FolderLocked as error:
        raise FolderLocked(f"{what} {error}; wait for it to finish or choose another folder") from None
    try:
        yield folder
    finally:
        with contextlib.suppress(OSError):
            lock.path.unlink()
        lock.release()
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty

