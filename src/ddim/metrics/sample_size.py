"""How many images KID and FID need, and what a user is told when a set is smaller.

FID fits a 2048 x 2048 covariance to each set: with fewer images than features it is singular, and the value is
biased upwards by an amount that depends on the set size, so it compares only with FID from the same sizes
(Chong and Forsyth 2020, "Effectively Unbiased FID and Inception Score"). KID is unbiased at any size, but its
spread grows as the sets shrink; when the subsets are the whole sets there is no spread left to measure.
"""

from __future__ import annotations

import math

MIN_FID_IMAGES = 2048  #: images per side for a full-rank covariance (the Inception feature dimension)
MIN_KID_IMAGES = 100  #: images per side below which KID is reported as a rough estimate


def kid_subset_size(subset_size: int, num_real: int, num_generated: int) -> int:
    """The subset size KID really uses: the one asked for, capped at the smaller set."""
    return min(subset_size, num_real, num_generated)


def kid_text(kid: float | None, std: float | None, digits: int = 5) -> str:
    """``0.01234 ± 0.00056``; ``0.01234 (one estimate: every subset is the whole set)`` when there is no spread."""
    if kid is None:
        return "too few images"
    if std is None or math.isnan(std):
        return f"{kid:.{digits}f} (one estimate: every subset is the whole set)"
    return f"{kid:.{digits}f} ± {std:.{digits}f}"


def sample_size_warnings(num_real: int, num_generated: int, *, fid: bool = True) -> list[str]:
    """What a result from these set sizes cannot tell (empty when both sets are large enough)."""
    smaller = min(num_real, num_generated)
    sizes = f"{num_generated:,} generated vs {num_real:,} real images"
    found = []
    if fid and smaller < MIN_FID_IMAGES:
        found.append(f"FID from {sizes} is biased upwards and compares only with FID from the same set sizes "
                     f"(its 2048-feature covariance needs at least {MIN_FID_IMAGES:,} images on each side); "
                     "compare small sets by KID")
    if smaller < MIN_KID_IMAGES:
        found.append(f"KID from {sizes} is a rough estimate (below {MIN_KID_IMAGES} images on each side its spread "
                     "is as large as the differences between models)")
    return found
