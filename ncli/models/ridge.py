"""Ridge-regression decoder with generalised cross-validation of the penalty.

The decoder maps per-bin features (e.g. square-root spike counts with causal
lags, see :func:`ncli.core.features.lag_features`) linearly to a behaviour.
Features are z-scored with training statistics; the penalty ``alpha`` is
chosen from a grid by generalised cross-validation (GCV, a rotation-invariant
closed form of leave-one-out error, no refitting) computed from one
eigendecomposition of the training Gram matrix, and shared by all outputs.

References
----------
Hoerl & Kennard (1970) Ridge regression: biased estimation for nonorthogonal
problems. Technometrics 12, 55-67.
Golub, Heath & Wahba (1979) Generalized cross-validation as a method for
choosing a good ridge parameter. Technometrics 21, 215-223.
Glaser et al. (2020) Machine learning for neural decoding. eNeuro 7(4)
(linear decoders of M1 reaching with lagged bins).
"""

from __future__ import annotations

import numpy as np

from ncli.core.errors import DataError, ParameterError
from ncli.models.base import Estimator, check_array, check_fitted

#: Default penalty grid (features are z-scored, so alpha is in units of samples).
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-2, 6, 17))


class RidgeDecoder(Estimator):
    """Linear decoder ``y = x W + b`` with an L2 penalty chosen by generalised cross-validation.

    Parameters
    ----------
    alphas : float or sequence of float
        Penalty grid (> 0, or 0 for ordinary least squares). With one value it
        is used as given. The penalty acts on z-scored features.
    standardize : bool
        Z-score features with training means and SDs (constant features get SD 1).

    Attributes
    ----------
    coef_ : (F, D) float64
        Weights on the raw (unstandardised) features.
    intercept_ : (D,) float64
    alpha_ : float
        Selected penalty.
    gcv_score_ : (n_alphas,) float64
        Generalised cross-validation error (mean squared residual over
        ``(1 - dof/n)²``, divided by each output's variance, averaged over
        outputs) for every alpha in the grid.
    feature_mean_, feature_scale_ : (F,) float64
        Standardisation statistics.

    Notes
    -----
    With ``X`` centred and scaled, ``X'X = V Λ V'`` and the ridge solution is
    ``W = V (Λ + αI)⁻¹ V' X'y``. With ``p = V'X'y`` the residual sum of squares
    is ``|y|² - 2 Σ_j p_j²/(λ_j+α) + Σ_j λ_j p_j²/(λ_j+α)²`` and the effective
    number of parameters ``1 + Σ_j λ_j/(λ_j+α)``, so the GCV score of every
    alpha costs O(F) after one eigendecomposition.
    Directions with ``λ_j`` below ``n·F·eps·λ_max`` are dropped (pseudo-inverse),
    so ``alpha = 0`` gives the minimum-norm least-squares solution.
    """

    model_id = "ncli/ridge@1"
    _learned = ("coef_", "intercept_", "feature_mean_", "feature_scale_", "gcv_score_")
    _learned_scalars = ("alpha_",)

    def __init__(self, alphas=DEFAULT_ALPHAS, standardize: bool = True):
        self.alphas = alphas
        self.standardize = standardize
        self.coef_ = None
        self.intercept_ = None
        self.alpha_ = None
        self.gcv_score_ = None
        self.feature_mean_ = None
        self.feature_scale_ = None

    def _alpha_grid(self) -> np.ndarray:
        grid = np.atleast_1d(np.asarray(self.alphas, dtype=np.float64))
        if grid.size == 0 or np.any(~np.isfinite(grid)) or np.any(grid < 0):
            raise ParameterError("alphas", f"alpha values must be finite and >= 0, got {list(grid)}")
        return grid

    def fit(self, X, Y, segments=None) -> "RidgeDecoder":
        """Fit weights and select alpha.

        Parameters
        ----------
        X : (T, F) array
            Training features, finite.
        Y : (T,) or (T, D) array
            Training targets, finite.
        segments : ignored
            Accepted for a common interface with sequence decoders.

        Returns
        -------
        self

        Raises
        ------
        DataError
            Invalid or mismatched inputs.
        UsageError
            Invalid alpha grid.
        """
        X = check_array(X, "X", min_samples=3)
        Y = check_array(Y, "y", ndim=(1, 2), min_samples=3)
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.shape[0] != X.shape[0]:
            raise DataError(f"X has {X.shape[0]} samples but y has {Y.shape[0]}")
        grid = self._alpha_grid()
        n = X.shape[0]
        mu = X.mean(axis=0)
        sd = X.std(axis=0) if self.standardize else np.ones(X.shape[1])
        sd = np.where(sd > 1e-12, sd, 1.0)
        Xs = (X - mu) / sd
        ymu = Y.mean(axis=0)
        Yc = Y - ymu
        lam, V = np.linalg.eigh(Xs.T @ Xs)
        keep = lam > max(lam.max(initial=0.0), 1e-300) * n * X.shape[1] * np.finfo(float).eps
        lam, V = lam[keep], V[:, keep]
        proj = V.T @ (Xs.T @ Yc)  # (r, D)
        proj2 = proj**2
        yss = np.sum(Yc**2, axis=0)
        yvar = yss / n
        scored = yvar > 1e-20 * max(1.0, float(np.max(np.abs(Y))) ** 2)  # constant outputs carry no signal
        if not scored.any():
            scored[:] = True
        yvar = np.where(scored, yvar, 1.0)
        gcv = np.empty(grid.size)
        for i, a in enumerate(grid):
            inv = 1.0 / (lam + a)
            rss = yss - 2.0 * (inv @ proj2) + (lam * inv**2) @ proj2
            dof = 1.0 + float(np.sum(lam * inv))  # effective parameters incl. the intercept
            denom = max(1.0 - dof / n, 1e-12) ** 2
            gcv[i] = float(np.mean((np.maximum(rss, 0.0) / n / denom / yvar)[scored]))
        best = int(np.argmin(gcv))
        alpha = float(grid[best])
        Ws = V @ ((1.0 / (lam + alpha))[:, None] * proj)  # weights on standardised features
        self.coef_ = Ws / sd[:, None]
        self.intercept_ = ymu - mu @ self.coef_
        self.alpha_ = alpha
        self.gcv_score_ = gcv
        self.feature_mean_ = mu
        self.feature_scale_ = sd
        return self

    def predict(self, X, segments=None) -> np.ndarray:
        """Predict targets.

        Parameters
        ----------
        X : (T, F) array

        Returns
        -------
        (T, D) float64

        Raises
        ------
        NotFittedError
            Before ``fit``.
        """
        check_fitted(self)
        X = check_array(X, "X", n_features=np.asarray(self.coef_).shape[0])
        return X @ np.asarray(self.coef_) + np.asarray(self.intercept_)
