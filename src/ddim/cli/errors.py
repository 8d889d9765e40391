"""Running a command: every error a user can cause is one ``ddim COMMAND: error: ...`` line and an exit status,
never a traceback."""

from __future__ import annotations

import argparse
import sys

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


def run_command(args: argparse.Namespace) -> int:
    """Carry out the parsed command; returns its exit status (2: a usage error, 1: a failure, 130/143: stopped)."""
    use_compile_cache(default_cache_dir())  # process-wide: torch.compile's caches in ddim's cache folder
    try:
        return args.run(args.parser, args)
    except ClassError as error:  # a class the model does not know: a usage error, like a bad option value
        print(f"ddim {args.command}: error: {error}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:
        print(f"ddim {args.command}: {stop}", file=sys.stderr)
        return stop.exit_code
    except (DataError, CheckpointError, TrainingError, InceptionError, DeviceError, WriteError) as error:
        print(f"ddim {args.command}: error: {error}", file=sys.stderr)
        return 1
    except (LimitError, ReadError) as error:  # a number out of bounds, a planted or damaged file: named
        print(f"ddim {args.command}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # what the system refused (a name too long, no permission): the path and the reason
        where = f"{shorten(error.filename)}: " if error.filename is not None else ""
        print(f"ddim {args.command}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ddim {args.command}: interrupted", file=sys.stderr)
        return 130
