"""The pieces every configuration section is made of: the error, the field declarations that carry their
command-line option, the validators, and the tables of choices."""

from __future__ import annotations

import math
from dataclasses import Field, field
from typing import Any

from ..limits import shorten


class ConfigError(ValueError):
    """An invalid configuration value; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


PREDICTION_TARGETS = ("noise", "velocity", "signal")
#: Where a conditional network takes its class: with the noise embedding at the input only (ddim 0.3), or also in
#: every residual block (as ADM and EDM do), which learns classes far faster.
CLASS_CONDITIONING = ("every-block", "input")
LOSSES = ("mae", "mse")
PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_MODES = ("auto", "off", "default", "reduce-overhead", "max-autotune")
BATCHNORM_MODES = ("auto", "sync", "local")
LR_SCHEDULES = ("constant", "cosine", "inverse-sqrt")
#: The largest relative standard deviation a power-function EMA can have (its exponent 0: a uniform average).
MAX_EMA_STD = math.sqrt(1 / 12)


def option(default: Any, help: str, *, choices: tuple[str, ...] | None = None, name: str | None = None,
           metavar: str | None = None, aliases: tuple[str, ...] | None = None) -> Any:
    """A dataclass field carrying its command-line option: help, choices, a name other than ``--field-name``, and
    other spellings the command line also accepts (``aliases``)."""
    metadata = {"help": help, "choices": choices, "name": name, "metavar": metavar, "aliases": aliases}
    return field(default=default, metadata={key: value for key, value in metadata.items() if value is not None})


def field_option(spec: Field) -> str:
    """A config field's command-line option: its metadata's ``name``, else ``--field-name``."""
    return spec.metadata.get("name") or "--" + spec.name.replace("_", "-")


def shown(value: Any) -> str:
    """A config value as the command line writes it: yes/no, none, comma lists, plain values."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def recorded(default: Any, help: str) -> Any:
    """A field that training fills in and records (no command-line option), e.g. the class names of the data."""
    return field(default=default, metadata={"help": help, "option": False})


def _require(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise ConfigError(field_name, message)


def _positive_int(value: Any, field_name: str, high: int | None = None, why: str = "") -> None:
    """A positive integer, at most ``high`` (the bound of :mod:`ddim.limits`, with ``why`` in the message)."""
    _require(isinstance(value, int) and not isinstance(value, bool) and value > 0,
             field_name, f"must be a positive integer, got {shorten(value)}")
    if high is not None:
        _require(value <= high, field_name, f"must be at most {high:,}{why}, got {shorten(value)}")


def _finite(value: Any, field_name: str) -> None:
    _require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
             field_name, f"must be a finite number, got {value!r}")


def _one_of(value: Any, choices: tuple[str, ...], field_name: str) -> None:
    _require(value in choices, field_name, f"must be one of {', '.join(choices)}, got {value!r}")
