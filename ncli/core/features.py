"""Per-bin feature transforms shared by embedding and decoding.

Square-root transform of counts (variance stabilisation for Poisson counts),
Gaussian smoothing in time that respects invalid bins, and causal lag
embedding. Every function takes and returns ``(T, N)`` arrays on one
session's time grid.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ncli.core.errors import UsageError


def sqrt_counts(counts: np.ndarray) -> np.ndarray:
    """Square root of spike counts (Anscombe-like variance stabilisation).

    Parameters
    ----------
    counts : (T, N) array, counts >= 0

    Returns
    -------
    (T, N) float64
    """
    return np.sqrt(np.clip(np.asarray(counts, dtype=np.float64), 0.0, None))


def smooth(X: np.ndarray, sigma_s: float, bin_size: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Gaussian smoothing along time, normalised over valid bins.

    ``out = G * (X v) / G * v`` with ``G`` a Gaussian kernel of SD ``sigma_s``
    and ``v`` the valid mask, so invalid bins neither leak into nor dilute
    their neighbours.

    Parameters
    ----------
    X : (T, N) array
    sigma_s : float
        Kernel standard deviation (s); 0 returns ``X`` unchanged.
    bin_size : float
        Bin width (s).
    valid : (T,) bool, optional
        Bins to use (default all).

    Returns
    -------
    (T, N) float64
        NaN rows where ``valid`` is False.

    Raises
    ------
    UsageError
        Negative ``sigma_s``.
    """
    X = np.asarray(X, dtype=np.float64)
    if sigma_s < 0 or not np.isfinite(sigma_s):
        raise UsageError(f"--smooth must be >= 0 seconds, got {sigma_s}", "--smooth")
    if sigma_s == 0:
        return X.copy()
    v = np.ones(X.shape[0]) if valid is None else np.asarray(valid, dtype=np.float64)
    sigma = sigma_s / bin_size
    num = gaussian_filter1d(np.where(v[:, None] > 0, X, 0.0), sigma, axis=0, mode="constant", truncate=4.0)
    den = gaussian_filter1d(v, sigma, mode="constant", truncate=4.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den[:, None]
    out[v == 0] = np.nan
    return out


def lag_features(X: np.ndarray, lags: int, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Causal lag embedding: row ``t`` holds ``[X_t, X_{t-1}, ..., X_{t-lags}]``.

    Parameters
    ----------
    X : (T, N) array
    lags : int
        Number of past bins (>= 0).
    valid : (T,) bool, optional
        Valid bins; a lagged row is usable only if every bin it reads is valid.

    Returns
    -------
    features : (T, N * (lags + 1)) float64
        Column block ``j`` is ``X`` delayed by ``j`` bins (zeros before the start).
    usable : (T,) bool
        Rows whose whole window lies inside the recording and is valid, and
        whose values are finite.

    Raises
    ------
    UsageError
        Negative ``lags``.
    """
    if lags < 0:
        raise UsageError(f"--lags must be >= 0, got {lags}", "--lags")
    X = np.asarray(X, dtype=np.float64)
    T, N = X.shape
    v = np.ones(T, dtype=bool) if valid is None else np.asarray(valid, dtype=bool).copy()
    v &= np.all(np.isfinite(X), axis=1)
    out = np.zeros((T, N * (lags + 1)))
    usable = v.copy()
    for j in range(lags + 1):
        block = out[:, j * N : (j + 1) * N]
        if j == 0:
            block[:] = np.where(v[:, None], X, 0.0)
            continue
        block[j:] = np.where(v[:-j, None], X[:-j], 0.0)
        usable[j:] &= v[:-j]
        usable[: min(j, T)] = False
    return out, usable


def angles_to_xy(angles: np.ndarray) -> np.ndarray:
    """``(T, D)`` angles (rad) -> ``(T, 2D)`` columns ``[cos a_1, sin a_1, cos a_2, ...]``."""
    a = np.asarray(angles, dtype=np.float64)
    out = np.empty((a.shape[0], 2 * a.shape[1]))
    out[:, 0::2] = np.cos(a)
    out[:, 1::2] = np.sin(a)
    return out


def xy_to_angles(xy: np.ndarray) -> np.ndarray:
    """Inverse of :func:`angles_to_xy`: ``(T, 2D)`` -> ``(T, D)`` angles in ``(-pi, pi]``."""
    xy = np.asarray(xy, dtype=np.float64)
    return np.arctan2(xy[:, 1::2], xy[:, 0::2])
