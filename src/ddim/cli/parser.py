"""The argument parser every ddim command uses: a usage error is one ``ddim COMMAND: error: ...`` line (the usage
only with ``--help``), a mistyped option names the closest real one, and options are never abbreviated."""

from __future__ import annotations

import argparse
import difflib
import re
from typing import NoReturn

UNRECOGNIZED = "unrecognized arguments: "
MAX_MESSAGE = 400  #: characters of a usage error before the value in it is cut
INVALID_CHOICE = re.compile(r"invalid choice: '(?P<word>[^']*)' \(choose from (?P<choices>.*)\)$")


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with one-line errors, "did you mean" and no abbreviations (``--epoch`` is not
    ``--epochs``: a script that relied on a prefix would silently change meaning when an option is added)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE`` (with a suggestion for a mistyped option) and exit with status 2."""
        if message.startswith(UNRECOGNIZED):
            message = self.unrecognized(message.removeprefix(UNRECOGNIZED).split())
        elif (invalid := INVALID_CHOICE.search(message)) is not None:
            choices = re.findall(r"'([^']*)'", invalid["choices"])
            close = difflib.get_close_matches(invalid["word"], choices, n=1, cutoff=0.6)
            if close:
                message += f"; did you mean {close[0]!r}?"
        if len(message) > MAX_MESSAGE:  # a value of megabytes is not echoed back in full
            message = f"{message[:MAX_MESSAGE]}... ({len(message):,} characters)"
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the options)\n")

    def options(self) -> list[str]:
        """Every long option of this parser."""
        return [option for action in self._actions for option in action.option_strings if option.startswith("--")]

    def unrecognized(self, words: list[str]) -> str:
        """``unrecognized option --lerning-rate (did you mean --learning-rate?)`` for the first unknown word."""
        word = words[0]
        if not word.startswith("-"):
            return f"unexpected argument {word!r}" + (f" (and {len(words) - 1} more)" if len(words) > 1 else "")
        name = word.split("=", 1)[0]
        options = self.options()
        close = ([option for option in options if option.startswith(name)][:3]  # an abbreviation: what it begins
                 or difflib.get_close_matches(name, options, n=1, cutoff=0.6))
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        return f"unrecognized option {name}{hint}"
