"""Exported models: one compact safetensors file for sampling (the built-in models are such files).

An exported file holds the EMA network (``network.*``, fp16 by default) and the normaliser
(``normalizer.*``, fp32), with metadata: ``format = ddim-export``, the run's ``config`` (JSON),
``step`` and ``epoch`` reached, and ``sha256`` of the tensors, verified at every load so that
flipped or zeroed bytes are caught. Loading gives a :class:`~ddim.model.DiffusionModel` whose
network and EMA network both hold the exported weights, ready for every sampler and command.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, RunConfig
from .files import atomic_path
from .integrity import CheckpointError, check_dtypes, check_tensors, non_finite, read_metadata, read_safetensors, tensors_sha256
from .integrity import write_safetensors
from .model import DiffusionModel
from .names import BUILTIN_NAME
from .reading import parse_json

FORMAT = "ddim-export"
FORMAT_VERSION = "1"
PRETRAINED_FOLDER = Path(__file__).resolve().parent / "pretrained"
#: The built-in models, by the name ``--checkpoint`` and :func:`ddim.load` take: ``keras-example`` is the Keras
#: example's recipe reproduced (50 epochs on Flowers 102, FID 53.6); ``pretrained`` names the best of them, the
#: demo's default (it stays a valid name whichever model it points to).
BUILTIN_MODELS = {"keras-example": PRETRAINED_FOLDER / "flowers102-64px.safetensors"}
BUILTIN_MODELS[BUILTIN_NAME] = BUILTIN_MODELS["keras-example"]
BUILTIN_FILE = BUILTIN_MODELS[BUILTIN_NAME]
DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


class ExportError(CheckpointError):
    """An exported model that cannot be written or read (missing, damaged, foreign, non-finite)."""


def training_info(state: dict[str, Any]) -> dict[str, Any]:
    """What an exported file records of the training behind it, from a checkpoint's training state: ``step``,
    ``epoch`` (completed), and where measured the latest per-epoch validation KID (``val_kid``, after epoch
    ``val_kid_epoch``) and the best one (``best_kid``)."""
    history = state.get("history") or []
    info: dict[str, Any] = {"step": int(state["step"]), "epoch": int(history[-1]["epoch"]) if history else 0}
    measured = [row for row in history if isinstance(row.get("val_kid"), (int, float)) and math.isfinite(row["val_kid"])]
    if measured:
        info.update(val_kid=float(measured[-1]["val_kid"]), val_kid_epoch=int(measured[-1]["epoch"]),
                    best_kid=float(min(row["val_kid"] for row in measured) if state.get("best_kid") is None
                                   else state["best_kid"]))
    return info


def export_model(model: DiffusionModel, config: RunConfig, out: Path, *, dtype: str = "fp16",
                 info: dict[str, Any] | None = None) -> Path:
    """Write the EMA network and normaliser of ``model`` to ``out`` (atomically); returns ``out``.

    ``info`` (e.g. :func:`training_info`'s ``{"step": 25550, "epoch": 50, ...}``) goes into the metadata as strings.
    """
    if dtype not in DTYPES:
        raise ExportError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    tensors = {}
    for name, tensor in model.ema_network.state_dict().items():
        tensor = tensor.detach().cpu()
        tensors[f"network.{name}"] = (tensor.to(DTYPES[dtype]) if tensor.is_floating_point() else tensor).contiguous()
    for name, tensor in model.normalizer.state_dict().items():
        tensors[f"normalizer.{name}"] = tensor.detach().cpu().float().contiguous()
    bad = non_finite(tensors)
    if bad is not None:
        overflow = dtype != "fp32" and non_finite(model.ema_network.state_dict()) is None  # finite before conversion
        raise ExportError(f"refusing to export non-finite weights ({bad}"
                          f"{' after conversion to ' + dtype if dtype != 'fp32' else ''})"
                          + (f"; they exceed {dtype}'s range: export with --dtype fp32" if overflow else ""))
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": json.dumps(config.to_dict()),
                "dtype": dtype, "sha256": tensors_sha256(tensors),
                **{key: str(value) for key, value in (info or {}).items()}}
    with atomic_path(out) as temporary:
        write_safetensors(tensors, temporary, metadata=metadata)
    return Path(out)


def is_exported(path: Path) -> bool:
    """Whether ``path`` is a file written by :func:`export_model`."""
    try:
        return Path(path).is_file() and read_metadata(path).get("format") == FORMAT
    except CheckpointError:
        return False


def load_exported(path: Path, device: torch.device | str = "cpu") -> tuple[DiffusionModel, RunConfig, dict[str, str]]:
    """Rebuild the model of an exported file (checksum verified); returns model, config, metadata."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"exported model {path} does not exist")
    metadata = read_metadata(path)
    if metadata.get("format") != FORMAT:
        raise ExportError(f"{path} is not an exported ddim model (its metadata has no format={FORMAT})")
    try:
        config = RunConfig.from_dict(parse_json(metadata["config"], f"{path}'s metadata"), complete=True)
    except (KeyError, ValueError, ConfigError, TypeError) as error:
        raise ExportError(f"{path}: its metadata holds no valid ddim configuration ({error})") from error
    tensors, _ = read_safetensors(path)
    check_tensors(path, tensors, metadata)
    model = DiffusionModel(config.model)
    check_dtypes(path, tensors, model.state_dict())
    network = {name.removeprefix("network."): t.float() if t.is_floating_point() else t
               for name, t in tensors.items() if name.startswith("network.")}
    normalizer = {name.removeprefix("normalizer."): t for name, t in tensors.items() if name.startswith("normalizer.")}
    try:
        model.network.load_state_dict(network, strict=True)
        model.ema_network.load_state_dict(network, strict=True)
        model.normalizer.load_state_dict(normalizer, strict=True)
    except RuntimeError as error:
        raise ExportError(f"{path} does not match the model its configuration describes: "
                          f"{str(error).splitlines()[0]}") from error
    return model.eval().to(device), config, metadata


def builtin_names(path: Path) -> list[str]:
    """Every name of the built-in model file ``path`` as ``--checkpoint`` takes them, e.g. ``["keras-example"]``."""
    return [name for name, file in BUILTIN_MODELS.items() if file == Path(path)]


def builtin_model_path(name: str = BUILTIN_NAME) -> Path:
    """A built-in model's file inside the package (an :class:`ExportError` if this install lacks it)."""
    path = BUILTIN_MODELS[name]
    if not path.is_file():
        raise ExportError(f"this ddim install has no built-in model {name!r} ({path} is missing)")
    return path
