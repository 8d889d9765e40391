"""KID and FID between two sets of features, as pure functions in float64.

KID (Binkowski et al. 2018): the squared maximum mean discrepancy with the cubic polynomial kernel
k(f, g) = (f . g / d + 1)^3, estimated without bias (diagonal terms left out). FID (Heusel et al.
2017): ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)).
"""

from __future__ import annotations

import numpy as np
import torch

from .sample_size import kid_subset_size


def _as_float64(features: torch.Tensor | np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features).double()


def polynomial_kernel(features_1: torch.Tensor, features_2: torch.Tensor) -> torch.Tensor:
    """The Keras example's kernel (f . g / d + 1)^3 between every pair of rows."""
    dimensions = features_1.shape[1]
    return (features_1 @ features_2.T / dimensions + 1.0) ** 3


def polynomial_mmd(real_features: torch.Tensor | np.ndarray, generated_features: torch.Tensor | np.ndarray) -> float:
    """Unbiased squared MMD with the cubic polynomial kernel (one KID estimate; needs >= 2 rows each)."""
    real, generated = _as_float64(real_features), _as_float64(generated_features)
    m, n = real.shape[0], generated.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"KID needs at least 2 real and 2 generated features, got {m} and {n}")
    kernel_real = polynomial_kernel(real, real)
    kernel_generated = polynomial_kernel(generated, generated)
    kernel_cross = polynomial_kernel(real, generated)
    mean_real = (kernel_real.sum() - kernel_real.diagonal().sum()) / (m * (m - 1))
    mean_generated = (kernel_generated.sum() - kernel_generated.diagonal().sum()) / (n * (n - 1))
    return float(mean_real + mean_generated - 2.0 * kernel_cross.mean())


def kid_per_batch(real_features: torch.Tensor | np.ndarray, generated_features: torch.Tensor | np.ndarray,
                  batch_size: int = 64) -> float:
    """The Keras example's KID: one unbiased estimate per batch of ``batch_size`` (pairing batch i of each
    set), averaged over batches weighted by their size; a last batch of one image is left out."""
    real, generated = _as_float64(real_features), _as_float64(generated_features)
    count = min(real.shape[0], generated.shape[0])
    total, weight = 0.0, 0
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        if stop - start < 2:
            continue
        total += polynomial_mmd(real[start:stop], generated[start:stop]) * (stop - start)
        weight += stop - start
    if weight == 0:
        raise ValueError(f"KID needs at least 2 images on each side, got {count}")
    return total / weight


def kid_subsets(real_features: torch.Tensor | np.ndarray, generated_features: torch.Tensor | np.ndarray, *,
                subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The standard protocol's KID: mean and standard deviation of the unbiased estimate over
    ``subsets`` random subsets of ``subset_size`` (capped at the smaller set) drawn without replacement.

    When both sets are smaller than ``subset_size`` every subset is both whole sets: there is one estimate and no
    spread, so the standard deviation is NaN (not a 0 that would look precise)."""
    real, generated = _as_float64(real_features), _as_float64(generated_features)
    size = kid_subset_size(subset_size, real.shape[0], generated.shape[0])
    if size == real.shape[0] == generated.shape[0]:
        return polynomial_mmd(real, generated), float("nan")
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        real_subset = real[torch.randperm(real.shape[0], generator=generator)[:size]]
        generated_subset = generated[torch.randperm(generated.shape[0], generator=generator)[:size]]
        values.append(polynomial_mmd(real_subset, generated_subset))
    array = np.asarray(values)
    return float(array.mean()), float(array.std())


def mean_and_covariance(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feature mean and (unbiased) covariance in float64."""
    array = _as_float64(features).numpy()
    if array.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 feature rows, got {array.shape[0]}")
    return array.mean(axis=0), np.cov(array, rowvar=False)


def frechet_distance(mean_1: np.ndarray, covariance_1: np.ndarray, mean_2: np.ndarray,
                     covariance_2: np.ndarray) -> float:
    """||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2)).

    S_1 S_2 has the same eigenvalues as the symmetric positive semi-definite S_1^(1/2) S_2 S_1^(1/2),
    so tr((S_1 S_2)^(1/2)) is computed from symmetric eigendecompositions, which stay accurate when
    the covariances are singular (fewer samples than feature dimensions); round-off below zero is clipped.
    """
    values, vectors = np.linalg.eigh(covariance_1)
    sqrt_1 = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    product = sqrt_1 @ covariance_2 @ sqrt_1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0.0, None)).sum()
    difference = mean_1 - mean_2
    return float(difference @ difference + np.trace(covariance_1) + np.trace(covariance_2) - 2.0 * trace_sqrt)


def fid_from_features(real_features: torch.Tensor | np.ndarray, generated_features: torch.Tensor | np.ndarray) -> float:
    """FID between two feature sets."""
    return frechet_distance(*mean_and_covariance(real_features), *mean_and_covariance(generated_features))
