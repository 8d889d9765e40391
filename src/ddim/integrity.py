"""Weights files that can be trusted: safetensors written and read in one place, with a sha256 over the tensors
and a finiteness check, for checkpoints and exported files alike."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from .reading import ReadError, regular_file_size


WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  #: what checkpoints (float32) and exports hold


class CheckpointError(RuntimeError):
    """A missing, truncated, foreign, damaged or inconsistent checkpoint or model file."""


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """A sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding NaN or infinity, or None."""
    return next((name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)


def write_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """A safetensors file, serialised in memory and written with a plain file write, so that a full disk is
    an ``OSError`` (safetensors' own ``save_file`` reports it as a ``SafetensorError``)."""
    Path(path).write_bytes(safetensors_bytes(tensors, metadata=metadata))


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata of a safetensors file; :class:`CheckpointError` for something else."""
    try:
        regular_file_size(path)  # never a pipe or a device planted under the name
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except ReadError as error:
        raise CheckpointError(f"cannot read {error}") from error
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"cannot read {path} (truncated or not a safetensors file): {error}") from error


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a safetensors file; :class:`CheckpointError` for a damaged or foreign file."""
    metadata = read_metadata(path)
    try:
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"cannot read {path} (truncated or damaged): {error}") from error


def check_dtypes(path: Path, tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Each tensor's type against the model's own (``expected``: its state dict): a weight is one of
    :data:`WEIGHT_DTYPES`, a counter keeps its integer type; anything else is refused, never cast."""
    for name, tensor in tensors.items():
        want = expected.get(name)
        if want is None:
            continue  # an unexpected name is load_state_dict's to report
        fits = tensor.dtype in WEIGHT_DTYPES if want.is_floating_point() else tensor.dtype == want.dtype
        if not fits:
            raise CheckpointError(f"{path} is not a ddim model: {name} is {tensor.dtype}, the model's is {want.dtype}")


def check_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str], *,
                  required: bool = True) -> None:
    """The tensors' sha256 against their metadata's (absent before ddim 0.2: then checked only when ``required``)
    and their finiteness. Weights are float32, float16 or bfloat16 (and int64 counters): any other type (int8,
    float64, float8) is refused, not cast silently into the model."""
    odd = next((f"{name} is {t.dtype}" for name, t in tensors.items() if t.dtype not in (*WEIGHT_DTYPES, torch.int64)),
               None)
    if odd is not None:
        raise CheckpointError(f"{path} is not a ddim model: {odd} (ddim weights are float32, float16 or bfloat16)")
    if "sha256" in metadata or required:
        if tensors_sha256(tensors) != metadata.get("sha256"):
            raise CheckpointError(f"{path} is damaged: its weights do not match the sha256 in its metadata")
    bad = non_finite(tensors)
    if bad is not None:
        raise CheckpointError(f"{path} holds NaN or infinite weights ({bad}); use an earlier checkpoint")
