"""Factor analysis + stable loading rows + an orthonormal map: the BCI stabiliser of Degenhart et al. (2020).

A reference day's activity is summarised by a factor-analysis model
``y = C z + d + ε`` (``z ~ N(0, I)``, ``ε ~ N(0, Ψ)``, Ψ diagonal). A later
day gets its own FA model ``(C', d', Ψ')``; its latent space differs from the
reference's by an unknown rotation (FA loadings are identifiable up to an
orthonormal transform only) and by the channels that changed. The stabiliser

1. drops channels whose loading rows are near zero on either day (norm below
   ``row_threshold``),
2. repeatedly fits the orthonormal map ``O = argmin ||C[S] - C'[S] Oᵀ||_F``
   (Schönemann 1966) on the current set ``S`` of channels and removes the one
   channel whose row fits worst, until ``n_stable`` channels remain
   (the "alignment channels"),
3. rotates the later day's loadings, ``C' ← C' Oᵀ``, so that its latent
   posterior means ``E[z | y] = C'ᵀ (C' C'ᵀ + Ψ')⁻¹ (y - d')`` live in the
   reference's latent space, where a decoder fitted on the reference day
   applies unchanged.

Offsets of a channel's counts are absorbed by the new mean ``d'``; silenced
channels have near-zero loading rows and never align; swapped channels fit
the rotation badly and are dropped from the alignment set.

References
----------
Degenhart, Bishop, Oby, Tyler-Kabara, Chase, Batista & Yu (2020)
Stabilization of a brain-computer interface via the alignment of
low-dimensional spaces of neural activity. Nat Biomed Eng 4, 672-685
(Methods: "Stabilization"; companion code alandegenhart/stabilizedbci).
Schönemann (1966) A generalized solution of the orthogonal Procrustes problem.
Psychometrika 31, 1-10.
"""

from __future__ import annotations

import numpy as np

from ncli.core.errors import DataError
from ncli.models.base import Estimator, check_fitted, check_params


def orthonormal_map(ref: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The orthonormal ``O`` (K, K) minimising ``||ref - new Oᵀ||_F`` (Schönemann 1966).

    Parameters
    ----------
    ref, new : (M, K) arrays
        Loading rows of the same M channels on two days.

    Returns
    -------
    (K, K) float64, ``O Oᵀ = I``.
    """
    u, _, vt = np.linalg.svd(np.asarray(ref, dtype=np.float64).T @ np.asarray(new, dtype=np.float64))
    return u @ vt


def stable_rows(ref: np.ndarray, new: np.ndarray, n_stable: int, threshold: float = 0.01) -> np.ndarray:
    """Channels whose loading rows agree after the best orthonormal map (Degenhart et al. 2020).

    Parameters
    ----------
    ref, new : (N, K) arrays
        Loadings of the reference and of the later day.
    n_stable : int
        Channels to keep (the alignment set); fewer when too many rows are near zero.
    threshold : float
        Rows whose norm is below this on either day are never kept.

    Returns
    -------
    (N,) bool
        The alignment channels.
    """
    small = (np.linalg.norm(ref, axis=1) < threshold) | (np.linalg.norm(new, axis=1) < threshold)
    cur = np.flatnonzero(~small)
    while cur.size > max(n_stable, 1):
        o = orthonormal_map(ref[cur], new[cur])
        err = np.linalg.norm(ref[cur] - new[cur] @ o.T, axis=1)
        cur = np.delete(cur, int(np.argmax(err)))
    keep = np.zeros(ref.shape[0], dtype=bool)
    keep[cur] = True
    return keep


def _fit_fa(X: np.ndarray, k: int, seed: int, min_var: float):
    """(d, C, psi) of a K-factor FA fitted by scikit-learn (EM / SVD), noise variances floored at ``min_var``."""
    from sklearn.decomposition import FactorAnalysis

    fa = FactorAnalysis(n_components=k, random_state=seed, tol=1e-4, max_iter=2000).fit(X)
    psi = np.maximum(fa.noise_variance_, min_var)
    return fa.mean_.astype(np.float64), fa.components_.T.astype(np.float64), psi.astype(np.float64)


class FAStabilizer(Estimator):
    """FA latents of a reference day, and of later days mapped into them (Degenhart et al. 2020).

    Parameters
    ----------
    n_latents : int
        Factors K (the paper used 10 for 85-93 channels).
    n_stable : int or None
        Alignment channels kept (default: 70 % of the channels, rounded; the
        paper's example keeps 60 of 83).
    row_threshold : float
        Loading-row norm below which a channel is never an alignment channel.
    min_private_variance : float
        Floor of the FA noise variances Ψ (counts²; the paper's code uses 0.1).
    seed : int

    Attributes
    ----------
    mean_ : (S, N) float64
        ``d`` of each session's FA (session 0 = the reference).
    loadings_ : (S, N, K) float64
        Each session's loadings, later sessions already rotated into the reference's space.
    noise_ : (S, N) float64
        Ψ of each session.
    rotation_ : (S, K, K) float64
        ``O`` of each session (identity for the reference).
    stable_ : (S, N) bool
        Alignment channels of each session (all True for the reference).
    """

    model_id = "ncli/fa-stabilizer@1"
    _learned = ("mean_", "loadings_", "noise_", "rotation_", "stable_")

    def __init__(self, n_latents: int = 10, n_stable: int | None = None, row_threshold: float = 0.01,
                 min_private_variance: float = 0.1, seed: int = 0):
        self.n_latents = n_latents
        self.n_stable = n_stable
        self.row_threshold = row_threshold
        self.min_private_variance = min_private_variance
        self.seed = seed
        for name in self._learned:
            setattr(self, name, None)

    def _check(self, n_channels: int) -> int:
        check_params([
            (self.n_latents >= 1, f"{{n_latents}} must be at least 1, got {self.n_latents}", "n_latents"),
            (self.n_latents < n_channels, f"{{n_latents}} must be below the {n_channels} channels, "
                                          f"got {self.n_latents}", "n_latents"),
            (self.n_stable is None or self.n_latents <= self.n_stable <= n_channels,
             f"{{n_stable}} must be between {{n_latents}} and the {n_channels} channels, got {self.n_stable}",
             "n_stable"),
            (self.row_threshold >= 0, f"{{row_threshold}} must be >= 0, got {self.row_threshold}", "row_threshold"),
            (self.min_private_variance > 0, "{min_private_variance} must be > 0", "min_private_variance"),
        ])
        return int(self.n_stable) if self.n_stable is not None else max(self.n_latents, int(round(0.7 * n_channels)))

    def fit(self, sessions: list[np.ndarray]) -> FAStabilizer:
        """Fit the reference FA on ``sessions[0]`` and stabilise every later session onto it.

        Parameters
        ----------
        sessions : list of (T_s, N) arrays
            Activity (spike counts per bin, or their square root) of the same N channels on each day;
            the first is the reference. Only rows to learn from (valid bins) should be passed.

        Returns
        -------
        self

        Raises
        ------
        DataError
            Fewer than N + 1 bins in a session, different channel counts, non-finite values.
        ParameterError
            Hyperparameters out of range.
        """
        if not sessions:
            raise DataError("no sessions to stabilise")
        n = sessions[0].shape[1]
        n_stable = self._check(n)
        means, loads, noises, rots, stables = [], [], [], [], []
        for s, X in enumerate(sessions):
            X = np.asarray(X, dtype=np.float64)
            if X.ndim != 2 or X.shape[1] != n:
                raise DataError(f"session {s} has {X.shape[-1]} channels, the reference {n}: the stabiliser "
                                "needs the same channels (electrodes) on every day")
            if X.shape[0] <= n or not np.all(np.isfinite(X)):
                raise DataError(f"session {s} has {X.shape[0]} bins for {n} channels (or non-finite values); "
                                "FA needs more bins than channels")
            d, c, psi = _fit_fa(X, self.n_latents, self.seed, self.min_private_variance)
            if s == 0:
                o, keep = np.eye(self.n_latents), np.ones(n, dtype=bool)
            else:
                keep = stable_rows(loads[0], c, n_stable, self.row_threshold)
                if keep.sum() < self.n_latents:
                    raise DataError(f"session {s}: only {int(keep.sum())} channels have non-zero loadings; "
                                    f"at least {self.n_latents} are needed to align {self.n_latents} latents")
                o = orthonormal_map(loads[0][keep], c[keep])
                c = c @ o.T
            means.append(d)
            loads.append(c)
            noises.append(psi)
            rots.append(o)
            stables.append(keep)
        self.mean_, self.loadings_, self.noise_ = np.stack(means), np.stack(loads), np.stack(noises)
        self.rotation_, self.stable_ = np.stack(rots), np.stack(stables)
        return self

    def transform(self, X: np.ndarray, session: int) -> np.ndarray:
        """Latents (T, K) of session ``session`` in the reference's latent space: ``E[z | y]``.

        Parameters
        ----------
        X : (T, N) array
            The session's activity, in the same transform as for :meth:`fit`.
        session : int
            Index of the session in the list given to :meth:`fit`.

        Raises
        ------
        NotFittedError
        """
        check_fitted(self)
        c, psi, d = self.loadings_[session], self.noise_[session], self.mean_[session]
        beta = np.linalg.solve(c @ c.T + np.diag(psi), c).T  # (K, N) = Cᵀ (C Cᵀ + Ψ)⁻¹
        return (np.asarray(X, dtype=np.float64) - d) @ beta.T
