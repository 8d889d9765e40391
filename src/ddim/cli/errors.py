"""Running a command: every error a user can cause is one ``ddim COMMAND: error: ...`` line and an exit status,
never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ..classes import ClassError
from ..data import DataError
from ..data.dataset import default_cache_dir
from ..files import WriteError
from ..integrity import CheckpointError
from ..limits import LimitError, shorten
from ..metrics.inception import InceptionError
from ..reading import ReadError
from ..runtime import DeviceError, use_compile_cache
from ..training import TrainingError, TrainingInterrupted

#: The errors a user's input or machine can cause (a file, a value, a device, the data): each says what and where in
#: one line. ClassError (a usage error) and TrainingInterrupted (a clean stop) are told apart by run_command.
USER_ERRORS = (DataError, CheckpointError, TrainingError, InceptionError, DeviceError, WriteError, LimitError,
               ReadError)


@contextmanager
def one_line_errors(program: str) -> Iterator[None]:
    """For the scripts beside the ``ddim`` command: a user error inside is ``PROGRAM: error: ...`` and exit
    status 1, as ``ddim`` gives it, never a traceback."""
    try:
        yield
    except USER_ERRORS as error:
        raise SystemExit(f"{program}: error: {error}") from None


def run_command(args: argparse.Namespace) -> int:
    """Carry out the parsed command; returns its exit status (2: a usage error, 1: a failure, 130/143: stopped)."""
    use_compile_cache(default_cache_dir())  # process-wide: torch.compile's caches in ddim's cache folder
    try:
        return args.run(args.parser, args)
    except ClassError as error:  # a class the model does not know: a usage error, like a bad option value
        return _say(args, error, 2)
    except TrainingInterrupted as stop:
        print(f"ddim {args.command}: {stop}", file=sys.stderr)
        return stop.exit_code
    except USER_ERRORS as error:  # also a number out of bounds, a planted or damaged file: named
        return _say(args, error, 1)
    except OSError as error:  # what the system refused (a name too long, no permission): the path and the reason
        where = f"{shorten(error.filename)}: " if error.filename is not None else ""
        return _say(args, f"{where}{error.strerror or error}", 1)
    except KeyboardInterrupt:
        print(f"ddim {args.command}: interrupted", file=sys.stderr)
        return 130


MAX_MESSAGE = 2000  #: characters of an error line; a path or value of megabytes in it is cut


def _say(args: argparse.Namespace, error: object, status: int) -> int:
    """Print the one error line (cut at :data:`MAX_MESSAGE` characters); returns ``status``."""
    message = str(error)
    if len(message) > MAX_MESSAGE:
        message = f"{message[:MAX_MESSAGE]}... ({len(message):,} characters)"
    print(f"ddim {args.command}: error: {message}", file=sys.stderr)
    return status
