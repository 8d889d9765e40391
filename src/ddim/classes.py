"""Classes of a conditional model: names or indices as users write them -> class indices, with clear errors."""

from __future__ import annotations

import difflib
from typing import Sequence

ClassRequest = str | int  #: a class name (any case) or its index, e.g. "sunflower", "Sunflower" or 53


class ClassError(ValueError):
    """A class that the model does not know, or a class asked of an unconditional model."""


def require_conditional(class_names: Sequence[str], source: object = "this model") -> None:
    """Raise :class:`ClassError` unless the model has classes."""
    if not class_names:
        raise ClassError(f"{source} is unconditional: it cannot draw a chosen class (train one with "
                         "ddim train --conditional)")


def class_index(class_names: Sequence[str], request: ClassRequest, source: object = "this model") -> int:
    """The index of a class given by name (case-insensitive, surrounding spaces ignored) or by index."""
    require_conditional(class_names, source)
    if isinstance(request, bool) or not isinstance(request, (str, int)):
        raise ClassError(f"a class is a name or an index, got {request!r}")
    if isinstance(request, int) or (isinstance(request, str) and request.strip().isdigit()):
        index = int(request)
        if 0 <= index < len(class_names):
            return index
        raise ClassError(f"class index {index} is outside 0..{len(class_names) - 1} ({source} has "
                         f"{len(class_names)} classes)")
    folded = [name.casefold() for name in class_names]
    wanted = " ".join(request.split()).casefold()
    if wanted in folded:
        return folded.index(wanted)
    close = difflib.get_close_matches(wanted, folded, n=3, cutoff=0.6)
    close += [name for name in folded if wanted and wanted in name and name not in close][: 3 - len(close)]
    hint = ("; did you mean " + " or ".join(repr(class_names[folded.index(name)]) for name in close) + "?") if close \
        else f"; its classes are {', '.join(repr(n) for n in class_names[:5])}{', ...' if len(class_names) > 5 else ''}"
    raise ClassError(f"{source} has no class {request!r}{hint}")


def resolve_classes(class_names: Sequence[str], requests: Sequence[ClassRequest] | ClassRequest,
                    source: object = "this model") -> list[int]:
    """Class indices for one request or a list of them."""
    if hasattr(requests, "tolist") and not isinstance(requests, (str, int)):  # a NumPy array or a tensor of indices
        requests = requests.tolist()
    if isinstance(requests, (str, int)):
        requests = [requests]
    elif not isinstance(requests, (list, tuple, range)):
        raise ClassError(f"classes are a class name or index, or a list of them, got {requests!r}")
    return [class_index(class_names, request, source) for request in requests]


def labels_for(class_names: Sequence[str], classes: Sequence[ClassRequest] | ClassRequest | None, count: int,
               source: object = "this model") -> list[int] | None:
    """One label per image: ``classes`` is one class for all ``count`` images, or one per image.

    The one policy for a conditional model asked for no class (``ddim sample``, ``ddim interpolate``, the demo and
    the API alike): the classes in turn, image k of class k mod C. An unconditional model takes no class (None).
    """
    if classes is None:
        return [index % len(class_names) for index in range(count)] if class_names else None
    indices = resolve_classes(class_names, classes, source)
    if len(indices) == 1:
        return indices * count
    if len(indices) != count:
        raise ClassError(f"{len(indices)} classes given for {count} images: give one class, or one per image")
    return indices
