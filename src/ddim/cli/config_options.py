"""The run configuration on the command line: one option per config field (derived from the dataclasses, with the
field's type, help and choices), ``--recipe``, ``--config FILE``, and the config they make together."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Callable

from ..config import CONFIG_VERSION, SECTIONS, ConfigError, RunConfig, upgrade_config_dict
from ..config.fields import field_option, shown
from ..config.versions import versioned_partial
from ..reading import ReadError, read_json
from ..recipes import DEFAULT_RECIPE, RecipeError, load_recipe, recipe_names
from .argtypes import add_switch, int_list, yes_no


def argument_type(annotation: Any) -> Callable[[str], Any]:
    """The argparse type of a field annotation: int, float, str, bool (yes/no), tuple[int, ...]; X | None as X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(annotation) if member is not type(None)]
        if len(members) == 1:
            return _or_none(argument_type(members[0]))
    if annotation is bool:
        return yes_no
    if annotation in (int, float, str):
        return annotation
    if typing.get_origin(annotation) is tuple and typing.get_args(annotation) == (int, ...):
        return int_list
    raise TypeError(f"no command-line type for a field of type {annotation!r}")


def _or_none(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type that also takes ``none``: the field's unset default (e.g. ``--ema-std none`` over a recipe)."""
    def parse(text: str) -> Any:
        return None if text.strip().lower() == "none" else kind(text)
    parse.__name__ = getattr(kind, "__name__", "value")  # argparse names the type in its "invalid ... value"
    return parse


def add_field_options(parser: argparse._ActionsContainer, section_cls: type, prefix: str,
                      names: tuple[str, ...] | None = None) -> None:
    """One option per field of a config dataclass (or per field in ``names``), from its annotation and metadata.

    A value lands in ``args.<prefix>.<field>`` only when given (the default is "not given"). The help shows
    the field's default, except a None default, whose meaning the help text itself states.
    """
    hints = typing.get_type_hints(section_cls)
    for spec in dataclasses.fields(section_cls):
        if (names is not None and spec.name not in names) or not spec.metadata.get("option", True):
            continue
        option, kind = field_option(spec), argument_type(hints[spec.name])
        text = spec.metadata["help"] + ("" if spec.default is None else f" (default: {shown(spec.default)})")
        if typing.get_origin(hints[spec.name]) in (typing.Union, types.UnionType):
            text += "; 'none' restores the default"
        if "choices" in spec.metadata:
            extra: dict[str, Any] = {"choices": spec.metadata["choices"]}
        else:
            metavar = "yes/no" if kind is yes_no else option[2:].upper().replace("-", "_")
            extra = {"metavar": spec.metadata.get("metavar", metavar)}
        if kind is yes_no:  # the one yes/no style: ``--conditional`` alone means yes, ``--no-conditional`` no
            add_switch(parser, option, default=argparse.SUPPRESS, help=text, dest=f"{prefix}.{spec.name}")
            continue
        parser.add_argument(option, *spec.metadata.get("aliases", ()), dest=f"{prefix}.{spec.name}", type=kind,
                            default=argparse.SUPPRESS, help=text.replace("%", "%%"), **extra)


# Every run-config field's option, derived from the dataclasses: (section, field) -> (option, help).
CONFIG_OPTIONS: dict[tuple[str, str], tuple[str, str]] = {
    (section, spec.name): (field_option(spec), spec.metadata["help"])
    for section, section_cls in SECTIONS.items() for spec in dataclasses.fields(section_cls)
    if spec.metadata.get("option", True)}


@dataclasses.dataclass(frozen=True)
class ConfigFile:
    """A ``--config`` file: the fields it gives (section -> field -> value, in today's terms)."""

    path: str
    fields: dict[str, dict[str, Any]]


def config_file(text: str) -> ConfigFile:
    """An argparse type: a JSON run configuration (``config.json``'s format, any version, possibly partial)."""
    try:
        data = versioned_partial(read_json(text))
        RunConfig.from_dict(data)  # every value checked now, before it is merged over a recipe
        upgraded = upgrade_config_dict(data)  # today's meaning of each value the file gives, and only those
        return ConfigFile(text, {section: {name: value for name, value in values.items() if name in data[section]}
                                 for section, values in upgraded.items()})
    except OSError as error:
        reason = f"cannot read it ({error.strerror or error})"
    except ReadError as error:
        reason = f"not a ddim configuration file: {str(error).removeprefix(text + ' ')}"
    except (ConfigError, TypeError, ValueError) as error:
        reason = f"not a valid ddim configuration ({error})"
    raise argparse.ArgumentTypeError(f"{text}: {reason}")


def recipe(text: str) -> RunConfig:
    """An argparse type: a shipped recipe's name."""
    try:
        return load_recipe(text).config()
    except RecipeError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_recipe_option(parser: argparse.ArgumentParser, purpose: str, note: str = "") -> None:
    """``--recipe NAME`` (``args.recipe``: the recipe's config, or None), its help ``purpose`` then the names."""
    parser.add_argument("--recipe", type=recipe, default=None, metavar="NAME",
                        help=f"{purpose}: {', '.join(recipe_names())} (default: {DEFAULT_RECIPE}, the Keras "
                        f"example's){note}")


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """``--recipe``, ``--config FILE`` and one option per run-config field, grouped by section, with the default in
    the help."""
    add_recipe_option(parser, "start from a named recipe", "; 'ddim recipes' lists every value each one changes")
    parser.add_argument("--config", type=config_file, default=None, metavar="FILE",
                        help="start from this JSON configuration (a run's config.json, or part of one: missing "
                        "fields keep the recipe's values, else the defaults); options given here override it")
    for section, section_cls in SECTIONS.items():
        add_field_options(parser.add_argument_group(f"{section} options"), section_cls, section)


def given_options(args: argparse.Namespace) -> dict[tuple[str, str], Any]:
    """The config options present on the command line, as (section, field) -> value."""
    return {tuple(key.split(".", 1)): value for key, value in vars(args).items() if "." in key}  # type: ignore[misc]


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """The run config: ``base`` (else the ``--recipe``, else the defaults, with the ``--config`` file's fields over it)
    with every option given applied."""
    file: ConfigFile | None = getattr(args, "config", None)
    if base is None:
        base = getattr(args, "recipe", None) or RunConfig()
    sections = {name: dataclasses.asdict(getattr(base, name)) for name in SECTIONS}
    for section, values in (file.fields.items() if file is not None else ()):
        sections[section].update(values)
    for (section, name), value in given_options(args).items():
        sections[section][name] = value
    return RunConfig.from_dict({"version": CONFIG_VERSION, **sections})


def option_name(field_path: str) -> str:
    """``batch_size`` or ``train.batch_size`` -> ``--batch-size``."""
    name = field_path.split(".")[-1]
    found = (option for (_, field_name), (option, _) in CONFIG_OPTIONS.items() if field_name == name)
    return next(found, "--" + name.replace("_", "-"))


def config_error(parser: argparse.ArgumentParser, error: ConfigError) -> None:
    """Report an invalid config value under its option's name (exits)."""
    parser.error(f"{option_name(error.field)}: {error.message}")
