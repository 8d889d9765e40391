"""Shared pieces of the command line: argument types, common options, config options, progress bars."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO

from tqdm.auto import tqdm

from .. import __version__
from ..classes import ClassError, require_conditional, resolve_classes
from ..config import COMPILE_MODES, PRECISIONS
from ..files import write_text
from ..limits import MAX_GUIDANCE
from ..names import SAMPLER_NAMES, SamplerOptionError, sampler_keywords
from .argtypes import STDOUT, add_switch, json_output, non_negative_float, number_between, sampling_steps

if TYPE_CHECKING:  # the parsers are built without PyTorch (ddim COMMAND --help); running a command imports it
    from ..runtime import Runtime


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
    text = json.dumps(_plain({**provenance(), **data}), indent=2, allow_nan=False) + "\n"
    if target == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_text(Path(target), text)


#: What ``--checkpoint`` takes (kept beside ddim.export.BUILTIN_MODELS' names by a test; --help imports no torch).
CHECKPOINT_HELP = ("a run folder (its latest checkpoint), a checkpoint folder, its model.safetensors, a file written by "
                   "ddim export, or a built-in Flowers 102 model: 'pretrained' (the best one) or 'keras-example' (the "
                   "Keras example's recipe reproduced)")


def add_checkpoint(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint PATH`` (required)."""
    parser.add_argument("--checkpoint", type=Path, required=True, help=CHECKPOINT_HELP)


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
    parser.add_argument("--sampler", choices=SAMPLER_NAMES, default="ddim",
                        help="sampling algorithm (default: ddim, the Keras example's)")
    parser.add_argument("--steps", type=sampling_steps, default=default_steps,
                        help=f"sampling steps (default: {default_steps}); heun calls the network 2 x steps - 1 times")
    parser.add_argument("--eta", type=non_negative_float, default=0.0,
                        help="DDIM stochasticity: 0 is deterministic (the Keras example's), 1 DDPM-like (default: 0)")


def sampler_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The sampler's keyword options from ``--eta`` (which only DDIM takes)."""
    try:
        return sampler_keywords(args.sampler, args.eta)
    except SamplerOptionError as error:
        parser.error(f"--{error}")


def add_classes(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """``--class`` (one, or several when ``several``) and ``--guidance``, for conditional models."""
    if several:
        parser.add_argument("--class", dest="classes", nargs="+", action="extend", default=None, metavar="CLASS",
                            help="conditional models: the class(es) to draw, by name (any case) or index; several give "
                            "one grid row each (default: the classes in turn)")
    else:
        parser.add_argument("--class", dest="classes", default=None, metavar="CLASS",
                            help="conditional models: the class to draw, by name (any case) or index")
    parser.add_argument("--guidance", type=number_between(0.0, MAX_GUIDANCE), default=1.0,
                        help="conditional models: classifier-free guidance weight; 0 ignores the class, 1 is plain "
                        "conditional, larger follows the class more closely (default: 1)")


def class_labels(args: argparse.Namespace, model: Any, source: object) -> list[int] | None:
    """The class indices ``--class`` asks for (None when not given); an unconditional model refuses ``--class``
    and ``--guidance`` other than 1 (:class:`ddim.classes.ClassError`)."""
    if args.classes is None:
        if args.guidance != 1.0 and not model.class_names:
            raise ClassError(f"--guidance applies to conditional models; {source} is unconditional")
        return None
    require_conditional(model.class_names, source)
    return resolve_classes(model.class_names, args.classes, source)


def add_progress(parser: argparse.ArgumentParser) -> None:
    """``--progress [yes/no]`` (``--no-progress``)."""
    add_switch(parser, "--progress", default=True, help="progress bars")


def progress_factory(enabled: bool) -> Callable[[str, int], Callable[[int], None]]:
    """``factory(description, total)`` -> ``update(count)`` on a tqdm bar (nothing shown when disabled)."""
    def factory(description: str, total: int) -> Callable[[int], None]:
        bar = tqdm(total=total, desc=description, unit="img", disable=not enabled, leave=False)

        def update(count: int) -> None:
            bar.update(count)
            if bar.n >= total:
                bar.close()
        return update
    return factory


def resolve_runtime_args(args: argparse.Namespace) -> tuple[Any, Runtime]:
    """(device, runtime) from ``--device``, ``--precision`` and ``--compile``."""
    from ..runtime import resolve_device, resolve_runtime

    device = resolve_device(args.device)
    return device, resolve_runtime(device, args.precision, True, args.compile)
