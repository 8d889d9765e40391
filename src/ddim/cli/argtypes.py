"""Argument types of the command line: checked numbers, lists, yes/no, and output paths (with their bounds)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..limits import MAX_IMAGES, MAX_SAMPLING_STEPS, MAX_SEED, shorten


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value




def int_between(low: int, high: int, what: str = "") -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (the bound is in the message)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {shorten(text)}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}{what}, got {shorten(value)}")
        return value
    parse.__name__ = "integer"
    return parse


seed = int_between(0, MAX_SEED)
sampling_steps = int_between(1, MAX_SAMPLING_STEPS, " (more steps gain nothing)")
image_count = int_between(1, MAX_IMAGES)


def output_folder(text: str) -> Path:
    """An argparse type: a folder that is (or can be made) writable; never a file."""
    path = Path(text)
    too_long = next((part for part in path.parts if len(os.fsencode(part)) > 255), None)
    if too_long is not None:  # the system refuses such a name (and Path.exists raises instead of saying no)
        raise argparse.ArgumentTypeError(f"{shorten(too_long)} is longer than 255 bytes, too long for a file name")
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor or "."))
    if existing.exists() and not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot write in {existing}: {error.strerror or error}")
    return path


STDOUT = "-"  # ``--json -``: the JSON goes to standard output


def output_file(text: str) -> Path:
    """An argparse type: a file path whose folder is (or can be made) writable; never a folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder, not a file")
    output_folder(str(path.parent))
    return path


def json_output(text: str) -> Path | str:
    """An argparse type for ``--json``: ``-`` (standard output) or an :func:`output_file`."""
    return STDOUT if text == STDOUT else output_file(text)


def non_negative_float(text: str) -> float:
    """An argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def number_between(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (the bounds are in the message)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a number from {low:g} to {high:g}, got {text}")
        return value
    parse.__name__ = "number"
    return parse


MAX_LIST_CHARACTERS = 1000  #: a list option's text (8 widths, 64 budgets are far shorter)


def int_list(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated integers such as 32,64,96,128."""
    if len(text) > MAX_LIST_CHARACTERS:
        raise argparse.ArgumentTypeError(f"a list of {len(text):,} characters is far longer than any this option "
                                         f"takes (at most {MAX_LIST_CHARACTERS:,})")
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 32,64,96,128, got {shorten(text)}")


def int_list_between(low: int, high: int, most: int, what: str = "") -> Callable[[str], tuple[int, ...]]:
    """An argparse type: at most ``most`` comma-separated integers, each in [low, high]."""
    def parse(text: str) -> tuple[int, ...]:
        values = int_list(text)
        if len(values) > most:
            raise argparse.ArgumentTypeError(f"takes at most {most} values, got {len(values):,}")
        wrong = next((v for v in values if not low <= v <= high), None)
        if wrong is not None:
            raise argparse.ArgumentTypeError(f"each value must be between {low:,} and {high:,}{what}, got {shorten(wrong)}")
        return values
    parse.__name__ = "list"
    return parse


def yes_no(text: str) -> bool:
    """An argparse type: yes/no, true/false, on/off, 1/0."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


def add_switch(parser: argparse.ArgumentParser, option: str, *, default: Any, help: str,
               dest: str | None = None) -> None:
    """A yes/no option in the one style every command uses: ``--X`` alone or ``--X yes`` turns it on, ``--X no``
    or ``--no-X`` turns it off (so the spellings of earlier versions, ``--no-progress`` or ``--conditional``,
    keep working)."""
    dest = dest or option[2:].replace("-", "_")
    shown_default = "" if default is argparse.SUPPRESS else f"; default: {'yes' if default else 'no'}"
    parser.add_argument(option, dest=dest, type=yes_no, nargs="?", const=True, default=default, metavar="yes/no",
                        help=f"{help} (alone: yes; --no-{option[2:]}: no{shown_default})".replace("%", "%%"))
    parser.add_argument(f"--no-{option[2:]}", dest=dest, action="store_const", const=False, default=default,
                        help=argparse.SUPPRESS)
