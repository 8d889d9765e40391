"""Shared pieces of the command line: argument types, common options, config options, progress bars."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, TextIO

from ..config import (COMPILE_MODES, CONFIG_VERSION, PRECISIONS, ConfigError, DataConfig, ModelConfig, RunConfig,
                      TrainConfig, upgrade_config_dict)
from ..recipes import DEFAULT_RECIPE, RecipeError, load_recipe, recipe_names
from .argtypes import (MAX_IMAGES, MAX_SAMPLING_STEPS, MAX_SEED, STDOUT, image_count, int_between, int_list,  # noqa: F401
                       json_output, non_negative_float, output_file, output_folder, positive_int,
                       positive_int_list, sampling_steps, seed, yes_no)


def add_json(parser: argparse.ArgumentParser, what: str) -> None:
    """``--json OUT`` (``-``: standard output, the human-readable text then going to standard error)."""
    parser.add_argument("--json", type=json_output, default=None, dest="json_out", metavar="OUT",
                        help=f"also write {what} as JSON to the file OUT; '-' writes the JSON to standard output "
                        "and the printed text to standard error")


def human_output(args: argparse.Namespace) -> TextIO:
    """Where a command prints for people: standard error when ``--json -`` takes standard output."""
    return sys.stderr if getattr(args, "json_out", None) == STDOUT else sys.stdout


def provenance() -> dict[str, str]:
    """``ddim_version`` and a UTC ISO-8601 ``timestamp``: every JSON a command writes starts with them."""
    from .. import __version__

    now = datetime.datetime.now(datetime.timezone.utc)
    return {"ddim_version": __version__, "timestamp": now.isoformat(timespec="seconds")}


def _plain(value: Any) -> Any:
    """``value`` as strict JSON takes it: non-finite floats become null, paths and NumPy scalars plain values."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        return _plain(value.item())  # a NumPy or PyTorch scalar
    return value


def write_json(data: dict[str, Any], target: Path | str) -> None:
    """``data`` with :func:`provenance` first, as strict JSON (no NaN or Infinity), to ``target`` (atomically)
    or to standard output for ``-``."""
    from ..files import write_text

    text = json.dumps(_plain({**provenance(), **data}), indent=2, allow_nan=False) + "\n"
    if target == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_text(Path(target), text)


def add_checkpoint(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint PATH`` (required)."""
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a run folder (its latest checkpoint), a checkpoint folder, its model.safetensors, "
                        "a file written by ddim export, or 'pretrained' (the built-in Flowers 102 model)")


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``."""
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")


def add_speed(parser: argparse.ArgumentParser) -> None:
    """``--precision`` and ``--compile`` for sampling."""
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="network precision: bf16 autocast where the hardware has it (default: auto)")
    parser.add_argument("--compile", choices=COMPILE_MODES, default="auto",
                        help="torch.compile mode (default: auto = default on CUDA, off on CPU)")


def add_sampler(parser: argparse.ArgumentParser, default_steps: int = 20) -> None:
    """``--sampler``, ``--steps`` and ``--eta``."""
    from ..samplers import SAMPLERS

    parser.add_argument("--sampler", choices=tuple(SAMPLERS), default="ddim",
                        help="sampling algorithm (default: ddim, the Keras example's)")
    parser.add_argument("--steps", type=sampling_steps, default=default_steps,
                        help=f"sampling steps (default: {default_steps}); heun calls the network 2 x steps - 1 times")
    parser.add_argument("--eta", type=non_negative_float, default=0.0,
                        help="DDIM stochasticity: 0 is deterministic (the Keras example's), 1 DDPM-like (default: 0)")


def sampler_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The sampler's keyword options from ``--eta`` (which only DDIM takes)."""
    if args.eta and args.sampler != "ddim":
        parser.error(f"--eta applies to the ddim sampler only, not {args.sampler}")
    return {"eta": args.eta} if args.sampler == "ddim" and args.eta else {}


def add_classes(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """``--class`` (one, or several when ``several``) and ``--guidance``, for conditional models."""
    if several:
        parser.add_argument("--class", dest="classes", nargs="+", action="extend", default=None, metavar="CLASS",
                            help="conditional models: the class(es) to draw, by name (any case) or index; several give "
                            "one grid row each (default: the classes in turn)")
    else:
        parser.add_argument("--class", dest="classes", default=None, metavar="CLASS",
                            help="conditional models: the class to draw, by name (any case) or index")
    parser.add_argument("--guidance", type=non_negative_float, default=1.0,
                        help="conditional models: classifier-free guidance weight; 0 ignores the class, 1 is plain "
                        "conditional, larger follows the class more closely (default: 1)")


def class_labels(args: argparse.Namespace, model: Any, source: object) -> list[int] | None:
    """The class indices ``--class`` asks for (None when not given); an unconditional model refuses ``--class``
    and ``--guidance`` other than 1 (:class:`ddim.classes.ClassError`)."""
    from ..classes import ClassError, require_conditional, resolve_classes

    if args.classes is None:
        if args.guidance != 1.0 and not model.class_names:
            raise ClassError(f"--guidance applies to conditional models; {source} is unconditional")
        return None
    require_conditional(model.class_names, source)
    return resolve_classes(model.class_names, args.classes, source)


def add_progress(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def progress_factory(enabled: bool) -> Callable[[str, int], Callable[[int], None]]:
    """``factory(description, total)`` -> ``update(count)`` on a tqdm bar (nothing shown when disabled)."""
    from tqdm.auto import tqdm

    def factory(description: str, total: int) -> Callable[[int], None]:
        bar = tqdm(total=total, desc=description, unit="img", disable=not enabled, leave=False)

        def update(count: int) -> None:
            bar.update(count)
            if bar.n >= total:
                bar.close()
        return update
    return factory


def resolve_speed_args(args: argparse.Namespace):
    """(device, speed) from ``--device``, ``--precision`` and ``--compile``."""
    from ..speed import resolve_speed
    from ..speed import resolve_device

    device = resolve_device(args.device)
    return device, resolve_speed(device, args.precision, True, args.compile)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


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


def shown(default: Any) -> str:
    """A default as the command line writes it: yes/no, comma lists, plain values."""
    if isinstance(default, bool):
        return "yes" if default else "no"
    if isinstance(default, tuple):
        return ",".join(map(str, default))
    return str(default)


def field_option(spec: dataclasses.Field) -> str:
    """A config field's option name: its metadata's ``name``, else ``--field-name``."""
    return spec.metadata.get("name") or "--" + spec.name.replace("_", "-")


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
        if kind is yes_no:  # ``--conditional`` alone means yes
            extra.update(nargs="?", const=True)
        parser.add_argument(option, dest=f"{prefix}.{spec.name}", type=kind, default=argparse.SUPPRESS,
                            help=text.replace("%", "%%"), **extra)


# Every run-config field's option, derived from the dataclasses: (section, field) -> (option, help).
CONFIG_OPTIONS: dict[tuple[str, str], tuple[str, str]] = {
    (section, spec.name): (field_option(spec), spec.metadata["help"])
    for section, section_cls in SECTIONS.items() for spec in dataclasses.fields(section_cls)
    if spec.metadata.get("option", True)}


def _versioned(data: Any) -> Any:
    """A ``--config`` file's dictionary, marked as the current version when it holds no version-1 value.

    Without a ``version`` key a file is version 1, whose only difference is ``train.weight_decay``'s meaning:
    a partial file that omits it is therefore read in today's terms (missing fields keep today's defaults), a
    complete one (an old run's config.json) as version 1, and a partial one that gives it must say which.
    """
    if not isinstance(data, dict) or "version" in data:
        return data
    train = data.get("train")
    if not (isinstance(train, dict) and "weight_decay" in train):
        return {"version": CONFIG_VERSION, **data}
    if set(data) == set(SECTIONS):
        return data
    raise ConfigError("version", f'train.weight_decay is given without a "version": add "version": {CONFIG_VERSION} '
                      "for the per-step decay (today's meaning) or \"version\": 1 for PyTorch's lr * weight_decay")


@dataclasses.dataclass(frozen=True)
class ConfigFile:
    """A ``--config`` file: the fields it gives (section -> field -> value, in today's terms)."""

    path: str
    fields: dict[str, dict[str, Any]]


def config_file(text: str) -> ConfigFile:
    """An argparse type: a JSON run configuration (``config.json``'s format, any version, possibly partial)."""
    try:
        data = _versioned(json.loads(Path(text).read_text()))
        RunConfig.from_dict(data)  # every value checked now, before it is merged over a recipe
        upgraded = upgrade_config_dict(data)  # today's meaning of each value the file gives, and only those
        return ConfigFile(text, {section: {name: value for name, value in values.items() if name in data[section]}
                                 for section, values in upgraded.items()})
    except OSError as error:
        reason = f"cannot read it ({error.strerror or error})"
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        reason = f"not a JSON file ({error})"
    except (ConfigError, TypeError, ValueError) as error:
        reason = f"not a valid ddim configuration ({error})"
    raise argparse.ArgumentTypeError(f"{text}: {reason}")


def recipe(text: str) -> RunConfig:
    """An argparse type: a shipped recipe's name."""
    try:
        return load_recipe(text).config()
    except RecipeError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """``--recipe``, ``--config FILE`` and one option per run-config field, grouped by section, with the default in
    the help."""
    parser.add_argument("--recipe", type=recipe, default=None, metavar="NAME",
                        help=f"start from a named recipe: {', '.join(recipe_names())} (default: {DEFAULT_RECIPE}, the "
                        "Keras example's); 'ddim recipes' lists every value each one changes")
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
