"""The one Ornstein-Uhlenbeck generator of the simulators (NuCLR latents, reach velocity).

References
----------
Uhlenbeck & Ornstein (1930) On the theory of the Brownian motion. Phys Rev 36, 823.
"""

from __future__ import annotations

import numpy as np


def ornstein_uhlenbeck(rng: np.random.Generator, n_steps: int, tau, dt: float, *, n_dims: int | None = None,
                       sd: float = 1.0) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck paths on a regular grid, by the exact AR(1) recursion.

    ``z_0 ~ N(0, sd²)`` and ``z_t = a z_{t-1} + sd √(1 - a²) ξ_t`` with
    ``a = exp(-dt / τ)``, the exact discretisation of
    ``dz = -z/τ dt + sd √(2/τ) dW``: every step has variance ``sd²``.

    Draws, in this order, the ``(n_steps, K)`` innovations ``ξ`` (row 0 unused)
    and then the ``K`` starting values, so a given ``rng`` state always gives
    the same paths.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_steps : int
        Grid points T.
    tau : float or (K,) array
        Time constant(s) (s), one per dimension, or one for all ``n_dims``.
    dt : float
        Grid step (s).
    n_dims : int, optional
        Number of dimensions K when ``tau`` is a scalar (default: ``len(tau)``).
    sd : float
        Stationary standard deviation.

    Returns
    -------
    (n_steps, K) float64
    """
    from scipy.signal import lfilter

    a = np.exp(-dt / np.asarray(tau, float))
    k = a.size if n_dims is None else int(n_dims)
    noise = rng.standard_normal((n_steps, k)) * sd * np.sqrt(1 - a * a)
    noise[0] = rng.standard_normal(k) * sd
    if a.ndim == 0:
        return lfilter([1.0], [1.0, -a], noise, axis=0)
    out = np.empty_like(noise)
    for value in np.unique(a):  # one linear filter per distinct time constant
        cols = np.flatnonzero(a == value)
        out[:, cols] = lfilter([1.0], [1.0, -value], noise[:, cols], axis=0)
    return out
