"""Fitting linear models from sufficient statistics accumulated over time blocks (bounded memory, DESIGN §4).

:class:`Moments` sums ``n``, ``Σx``, ``Σxx'``, ``Σy``, ``Σxy'`` and ``Σy²`` over
blocks of rows (shifted by a fixed centre to limit cancellation), so a model is
fit without the (T, F) matrix in memory; statistics of a subset of rows are
subtracted to get those of the rest (cross-validation folds: total minus the
fold, exact up to float round-off for least squares).

* :func:`ridge_from_moments` - :class:`~ncli.models.ridge.RidgeDecoder` (same GCV
  selection, from ``X'X`` and ``X'y``).
* :func:`pca_from_moments` - :class:`~ncli.models.factor.PCAEmbedding` (eigenvectors
  of the covariance).
* :func:`fa_from_moments` - :class:`~ncli.models.factor.FAEmbedding` by the
  maximum-likelihood iteration of scikit-learn's FactorAnalysis, from the sample covariance.

References
----------
Rubin & Thayer (1982) EM algorithms for ML factor analysis. Psychometrika 47, 69-76.
Barber (2012) Bayesian Reasoning and Machine Learning, §21.2.2 (ML factor analysis
by eigendecomposition of the noise-whitened covariance).
Golub, Heath & Wahba (1979) Generalized cross-validation as a method for
choosing a good ridge parameter. Technometrics 21, 215-223.
"""

from __future__ import annotations

import numpy as np

from ncli.core.errors import DataError, ParameterError


class Moments:
    """Running sums of features ``x`` (F,) and targets ``y`` (D,) over rows, about a fixed centre.

    Parameters
    ----------
    n_features : int
        F.
    n_targets : int
        D (0: features only).
    shift : (F,) array, optional
        Centre subtracted from every row before summing (default zeros); pick a
        rough mean (e.g. of the first block) so ``Σxx'`` does not cancel.

    Attributes
    ----------
    n : int
        Rows summed.
    sx : (F,) float64
        ``Σ (x - shift)``.
    sxx : (F, F) float64
        ``Σ (x - shift)(x - shift)'``, lower triangle (the upper one is filled by :meth:`centred`).
    sy : (D,) float64
    sxy : (F, D) float64
        ``Σ (x - shift) y'``.
    syy : (D,) float64
        ``Σ y²`` per column.
    """

    def __init__(self, n_features: int, n_targets: int = 0, shift=None):
        F, D = int(n_features), int(n_targets)
        self.shift = np.zeros(F) if shift is None else np.asarray(shift, dtype=np.float64).copy()
        self.n = 0
        self.sx = np.zeros(F)
        self.sxx = np.zeros((F, F))
        self.sy = np.zeros(D)
        self.sxy = np.zeros((F, D))
        self.syy = np.zeros(D)
        self._file = None
        self._F = F

    def add(self, X: np.ndarray, Y: np.ndarray | None = None) -> Moments:
        """Add the rows of ``X`` (b, F) (and ``Y`` (b, D)); returns self."""
        if X.shape[0] == 0:
            return self
        from scipy.linalg.blas import dsyrk

        Xc = np.asarray(X, dtype=np.float64) - self.shift
        self.n += Xc.shape[0]
        self.sx += Xc.sum(axis=0)
        # Σ xx' accumulated in place (BLAS syrk, no (F, F) temporary) into the lower triangle of sxx;
        # the upper one is filled by centred()
        out = dsyrk(1.0, Xc.T, beta=1.0, c=self.sxx.T, trans=0, lower=0, overwrite_c=1)
        if not np.shares_memory(out, self.sxx):  # pragma: no cover - a BLAS that copied
            self.sxx[...] = np.tril(out.T)
        if Y is not None and self.sy.size:
            Y = np.asarray(Y, dtype=np.float64)
            self.sy += Y.sum(axis=0)
            self.sxy += Xc.T @ Y
            self.syy += np.sum(Y**2, axis=0)
        return self

    def spill(self) -> Moments:
        """Move ``sxx`` to an anonymous temporary file (deleted when these moments are freed); returns self.

        Only :meth:`rest` and :meth:`copy` read spilled moments (row by row), so a
        session total kept for K folds costs no (F, F) array in memory.
        """
        import tempfile

        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="ncli-moments-")  # noqa: SIM115 - lives with the moments
            self.sxx.tofile(self._file)
            self._file.flush()
            self._F = self.sxx.shape[0]
            self.sxx = None
        return self

    def _sxx_rows(self, lo: int, hi: int) -> np.ndarray:
        if self._file is None:
            return self.sxx[lo:hi]
        self._file.seek(lo * self._F * 8)
        return np.fromfile(self._file, dtype=np.float64, count=(hi - lo) * self._F).reshape(hi - lo, self._F)

    def merge(self, other: Moments) -> Moments:
        """Add the sums of ``other`` (same shift) into self; returns self."""
        if not np.array_equal(self.shift, other.shift):
            raise ValueError("moments with different shifts cannot be merged")
        self.n += other.n
        for name in ("sx", "sxx", "sy", "sxy", "syy"):
            getattr(self, name).__iadd__(getattr(other, name))
        return self

    def rest(self, part: Moments) -> Moments:
        """The sums of the rows of self not in ``part``, written into ``part``'s arrays (``part`` is consumed)."""
        if not np.array_equal(self.shift, part.shift):
            raise ValueError("moments with different shifts cannot be subtracted")
        part.n = self.n - part.n
        for name in ("sx", "sy", "sxy", "syy"):
            np.subtract(getattr(self, name), getattr(part, name), out=getattr(part, name))
        F = part.sxx.shape[0]
        step = max(1, (1 << 22) // max(1, F))
        for lo in range(0, F, step):
            hi = min(lo + step, F)
            np.subtract(self._sxx_rows(lo, hi), part.sxx[lo:hi], out=part.sxx[lo:hi])
        return part

    def copy(self) -> Moments:
        """An independent copy."""
        out = Moments(self.sx.size, self.sy.size, self.shift)
        out.n = self.n
        for name in ("sx", "sy", "sxy", "syy"):
            setattr(out, name, getattr(self, name).copy())
        out.sxx = self.sxx.copy() if self._file is None else self._sxx_rows(0, self._F)
        return out

    @property
    def mean(self) -> np.ndarray:
        """(F,) feature means."""
        return self.shift + self.sx / self.n

    def centred(self, inplace: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Centred sums: ``Σ(x-x̄)(x-x̄)'`` (F, F), ``Σ(x-x̄)(y-ȳ)'`` (F, D), ``Σ(y-ȳ)²`` (D,), ``ȳ`` (D,).

        ``inplace`` reuses ``sxx`` for the first (the moments are then spent).
        """
        n = self.n
        mc = self.sx / n
        ymu = self.sy / n if self.sy.size else self.sy
        C = self.sxx if inplace else self.sxx.copy()
        F = mc.size
        step = max(1, (1 << 22) // max(1, F))  # rows at a time: no (F, F) temporary
        for lo in range(0, F, step):
            hi = min(lo + step, F)
            upper = np.arange(F - lo)[None, :] > np.arange(hi - lo)[:, None]
            block = C[lo:hi, lo:]
            block[upper] = C[lo:, lo:hi].T[upper]  # mirror the lower triangle
            C[lo:hi] -= n * np.outer(mc[lo:hi], mc)
        cxy = self.sxy - n * np.outer(mc, ymu)
        yss = self.syy - n * ymu**2
        return C, cxy, np.maximum(yss, 0.0), ymu


def _eigh_desc(C: np.ndarray, overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of the symmetric ``C``; with ``overwrite`` in ``C``'s memory.

    LAPACK ``dsyev`` on ``C.T`` (Fortran order, the same matrix) writes the
    eigenvectors over ``C``: no second (F, F) array and O(F) work space, so a
    ridge fit on 7,000 lagged features needs one 392 MB matrix, not three.
    """
    from scipy.linalg import eigh

    lam, V = eigh(C.T if overwrite else C, overwrite_a=overwrite, check_finite=False, driver="ev")
    return lam, V


def ridge_from_moments(model, m: Moments, consume: bool = False):
    """Fit a :class:`~ncli.models.ridge.RidgeDecoder` from ``m`` (features and targets summed over training rows).

    The same estimator as ``RidgeDecoder.fit`` on the rows summed: z-scoring with
    the rows' mean and SD (ddof 0), eigendecomposition of the standardised Gram
    matrix, penalty by generalised cross-validation over ``model.alphas``.

    Parameters
    ----------
    model : RidgeDecoder
        Unfitted; its ``alphas`` and ``standardize`` are used. Returned fitted.
    m : Moments
        With targets (D >= 1) and at least 3 rows.
    consume : bool
        Reuse ``m.sxx`` as work space (the moments are spent; saves one (F, F) array).

    Returns
    -------
    RidgeDecoder

    Raises
    ------
    DataError
        Fewer than 3 rows.
    ParameterError
        Invalid alpha grid.
    """
    if m.n < 3:
        raise DataError(f"ridge needs at least 3 training samples, got {m.n}")
    grid = model._alpha_grid()
    n, F = m.n, m.sx.size
    mu = m.mean
    G, cxy, yss, ymu = m.centred(inplace=consume)
    var = np.maximum(np.diag(G), 0.0) / n
    sd = np.sqrt(var) if model.standardize else np.ones(F)
    sd = np.where(sd > 1e-12, sd, 1.0)
    G /= sd[:, None]
    G /= sd[None, :]
    xty = cxy / sd[:, None]
    lam, V = _eigh_desc(G, overwrite=True)
    del G
    keep = lam > max(lam.max(initial=0.0), 1e-300) * n * F * np.finfo(float).eps
    if not keep.all():  # (a copy of V only when directions are dropped)
        lam, V = lam[keep], V[:, keep]
    proj = V.T @ xty
    proj2 = proj**2
    yvar = yss / n
    scored = yvar > 1e-20 * max(1.0, float(np.max(np.abs(ymu), initial=0.0) + np.sqrt(np.max(yvar, initial=0.0)))) ** 2
    if not scored.any():
        scored[:] = True
    yvar = np.where(scored, yvar, 1.0)
    gcv = np.empty(grid.size)
    for i, a in enumerate(grid):
        inv = 1.0 / (lam + a)
        rss = yss - 2.0 * (inv @ proj2) + (lam * inv**2) @ proj2
        dof = 1.0 + float(np.sum(lam * inv))
        denom = max(1.0 - dof / n, 1e-12) ** 2
        gcv[i] = float(np.mean((np.maximum(rss, 0.0) / n / denom / yvar)[scored]))
    best = int(np.argmin(gcv))
    alpha = float(grid[best])
    Ws = V @ ((1.0 / (lam + alpha))[:, None] * proj)
    model.coef_ = Ws / sd[:, None]
    model.intercept_ = ymu - mu @ model.coef_
    model.alpha_ = alpha
    model.gcv_score_ = gcv
    model.feature_mean_ = mu
    model.feature_scale_ = sd
    return model


def _check_dim(model, n_features: int) -> int:
    k = model.n_components
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError("n_components", f"{{n_components}} must be a positive integer, got {k}")
    if k > n_features:
        raise ParameterError("n_components", f"{{n_components}} {k} is larger than the number of units ({n_features})",
                             hint=f"choose {{n_components}} <= {n_features}")
    return int(k)


def _sign(W: np.ndarray) -> np.ndarray:
    signs = np.sign(W[np.arange(W.shape[0]), np.argmax(np.abs(W), axis=1)])
    signs[signs == 0] = 1.0
    return W * signs[:, None]


def pca_from_moments(model, m: Moments):
    """Fit a :class:`~ncli.models.factor.PCAEmbedding` from the covariance of the rows summed in ``m``.

    Axes are the top eigenvectors of the sample covariance (ddof 1, as
    scikit-learn's PCA), signed so the largest loading is positive; the noise
    variance is the mean of the discarded eigenvalues (Tipping & Bishop 1999).

    Raises
    ------
    DataError
        Fewer than 2 rows.
    ParameterError
        ``n_components`` outside ``1..N``.
    """
    if m.n < 2:
        raise DataError(f"PCA needs at least 2 samples, got {m.n}")
    N = m.sx.size
    k = min(_check_dim(model, N), m.n)
    C, _, _, _ = m.centred()
    C /= m.n - 1
    lam, V = _eigh_desc(C, overwrite=True)
    lam, V = np.maximum(lam[::-1], 0.0), V[:, ::-1]
    rank = min(m.n, N)
    total = float(lam.sum())
    model.components_ = _sign(V[:, :k].T.copy())
    model.mean_ = m.mean
    model.explained_variance_ = lam[:k].copy()
    model.explained_variance_ratio_ = lam[:k] / total if total > 0 else np.zeros(k)
    noise = float(lam[k:rank].mean()) if k < rank else 0.0
    model.noise_variance_ = np.full(N, noise)
    return model


def fa_from_moments(model, m: Moments, max_iter: int = 1000, tol: float = 1e-4):
    """Fit a :class:`~ncli.models.factor.FAEmbedding` by maximum likelihood from the covariance of the rows in ``m``.

    Model ``x = W z + μ + e``, ``z ~ N(0, I_K)``, ``e ~ N(0, Ψ)`` diagonal. With
    ``S`` the ML covariance (ddof 0), each step takes the top-K eigenpairs
    ``(λ_k, u_k)`` of ``Ψ^-1/2 S Ψ^-1/2`` and sets ``W = Ψ^1/2 U diag(√max(λ-1, 0))``,
    ``Ψ = diag(S - W W')``: the fixed-point ML iteration of scikit-learn's
    ``FactorAnalysis`` (Barber 2012, *Bayesian Reasoning and Machine Learning*
    §21.2.2; an alternative to the EM of Rubin & Thayer 1982), with the same
    start (``Ψ = 1``), the same stopping rule (total log-likelihood gain below
    ``tol``) and the same solution orientation, computed from ``S`` instead of
    an SVD of the data, so the fit never holds the (T, N) matrix.

    Raises
    ------
    DataError
        Fewer than 2 rows.
    ParameterError
        ``n_components`` outside ``1..N``.
    """
    if m.n < 2:
        raise DataError(f"factor analysis needs at least 2 samples, got {m.n}")
    N, n = m.sx.size, m.n
    k = _check_dim(model, N)
    S, _, _, _ = m.centred()
    S /= n
    var = np.diag(S).copy()
    psi = np.ones(N)
    llconst = N * np.log(2.0 * np.pi) + k
    old = -np.inf
    small = 1e-12
    W = np.zeros((k, N))
    for _ in range(max_iter):
        sq = np.sqrt(psi) + small
        M = S / sq[:, None] / sq[None, :]
        lam, U = np.linalg.eigh(M)
        lam, U = np.maximum(lam[::-1], 0.0), U[:, ::-1]
        top = lam[:k]
        W = (np.sqrt(np.maximum(top - 1.0, 0.0))[:, None] * U[:, :k].T) * sq
        ll = -n / 2.0 * (llconst + float(np.sum(np.log(top))) + float(lam[k:].sum()) + float(np.sum(np.log(psi))))
        if ll - old < tol:
            break
        old = ll
        psi = np.maximum(var - np.sum(W**2, axis=0), small)
    order = np.argsort(-np.sum(W**2, axis=1), kind="stable")
    model.components_ = _sign(W[order])
    model.mean_ = m.mean
    model.noise_variance_ = np.maximum(psi, 1e-12)
    model.explained_variance_ = np.sum(model.components_**2, axis=1)
    return model
