"""Linear factor embeddings of population activity: PCA and factor analysis.

Thin estimators around scikit-learn's :class:`~sklearn.decomposition.PCA` and
:class:`~sklearn.decomposition.FactorAnalysis` that keep their parameters as
plain arrays (``components_``, ``mean_``, ``noise_variance_``), so a fitted
embedding is saved to and loaded from a store without pickle.

References
----------
Cunningham & Yu (2014) Dimensionality reduction for large-scale neural
recordings. Nat Neurosci 17, 1500-1509 (PCA and FA for neural populations).
Yu et al. (2009) Gaussian-process factor analysis for low-dimensional
single-trial analysis of neural population activity. J Neurophysiol 102, 614-635
(FA on square-root counts).
"""

from __future__ import annotations

import numpy as np

from ncli.core.errors import ParameterError
from ncli.models.base import Estimator, check_array, check_fitted


class _Factor(Estimator):
    _learned = ("components_", "mean_", "explained_variance_", "noise_variance_")

    def __init__(self, n_components: int = 8, seed: int = 0):
        self.n_components = n_components
        self.seed = seed
        self.components_ = None
        self.mean_ = None
        self.explained_variance_ = None
        self.noise_variance_ = None

    def _check_dim(self, X: np.ndarray) -> None:
        if not isinstance(self.n_components, (int, np.integer)) or self.n_components < 1:
            raise ParameterError("n_components",
                                 f"{{n_components}} must be a positive integer, got {self.n_components}")
        if self.n_components > X.shape[1]:
            raise ParameterError("n_components", f"{{n_components}} {self.n_components} is larger than the number of "
                                 f"units ({X.shape[1]})", hint=f"choose {{n_components}} <= {X.shape[1]}")

    def fit_transform(self, X, segments=None) -> np.ndarray:
        """Fit on ``X`` and return its latents ``(T, K)``."""
        return self.fit(X).transform(X)

    def summary(self) -> dict:
        """Metrics of the fit: variance explained (PCA) or shared-variance fraction (FA).

        Returns
        -------
        dict
            ``explained_variance_ratio`` (K,) and ``explained_variance_ratio_total``
            for PCA; ``shared_variance_fraction`` (mean over units of
            ``|w_i|² / (|w_i|² + psi_i)``) for FA.
        """
        check_fitted(self)
        ratio = getattr(self, "explained_variance_ratio_", None)
        if ratio is not None:
            ratio = np.asarray(ratio)
            return {"explained_variance_ratio": ratio.tolist(),
                    "explained_variance_ratio_total": float(ratio.sum())}
        shared = np.sum(np.asarray(self.components_) ** 2, axis=0)
        frac = shared / (shared + np.asarray(self.noise_variance_))
        return {"shared_variance_fraction": float(frac.mean())}

    @property
    def n_features_(self) -> int:
        """Number of input features (units) seen in ``fit``."""
        check_fitted(self)
        return int(np.asarray(self.components_).shape[1])


class PCAEmbedding(_Factor):
    """Principal component analysis of population activity.

    Parameters
    ----------
    n_components : int
        Latent dimension K (``1 <= K <= N``).
    seed : int
        Seed for the randomized SVD solver (the result is deterministic for a seed).

    Attributes
    ----------
    components_ : (K, N) float64
        Orthonormal principal axes, ordered by explained variance.
    mean_ : (N,) float64
        Feature means of the training data.
    explained_variance_ : (K,) float64
        Variance along each axis (units of the features squared).
    explained_variance_ratio_ : (K,) float64
        Fraction of total variance along each axis.
    noise_variance_ : (N,) float64
        Mean variance of the discarded dimensions, repeated per feature
        (the probabilistic PCA noise variance).

    References
    ----------
    Tipping & Bishop (1999) Probabilistic principal component analysis.
    J R Stat Soc B 61, 611-622.
    """

    model_id = "ncli/pca@1"
    _learned = _Factor._learned + ("explained_variance_ratio_",)

    def __init__(self, n_components: int = 8, seed: int = 0):
        super().__init__(n_components, seed)
        self.explained_variance_ratio_ = None

    def fit(self, X, y=None, segments=None) -> "PCAEmbedding":
        """Fit the principal axes.

        Parameters
        ----------
        X : (T, N) array
            Features of valid bins (e.g. square-root counts), finite.

        Returns
        -------
        self

        Raises
        ------
        DataError
            Invalid ``X`` (see :func:`~ncli.models.base.check_array`).
        ParameterError
            ``n_components`` outside ``1..N``.
        """
        from sklearn.decomposition import PCA

        X = check_array(X, "X", min_samples=2)
        self._check_dim(X)
        k = int(min(self.n_components, X.shape[0]))
        pca = PCA(n_components=k, svd_solver="full", random_state=self.seed).fit(X)
        comps = pca.components_
        # sign convention: the largest-magnitude loading of each axis is positive
        signs = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
        signs[signs == 0] = 1.0
        self.components_ = comps * signs[:, None]
        self.mean_ = pca.mean_.copy()
        self.explained_variance_ = pca.explained_variance_.copy()
        self.explained_variance_ratio_ = pca.explained_variance_ratio_.copy()
        self.noise_variance_ = np.full(X.shape[1], float(pca.noise_variance_))
        return self

    def transform(self, X, segments=None) -> np.ndarray:
        """Project onto the principal axes.

        Parameters
        ----------
        X : (T, N) array

        Returns
        -------
        (T, K) float64
            ``(X - mean_) @ components_.T``.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        """
        check_fitted(self)
        X = check_array(X, "X", n_features=self.n_features_)
        return (X - self.mean_) @ np.asarray(self.components_).T


class FAEmbedding(_Factor):
    """Factor analysis: ``x = W z + mean + e``, ``z ~ N(0, I)``, ``e ~ N(0, diag(psi))``.

    Parameters
    ----------
    n_components : int
        Latent dimension K (``1 <= K <= N``).
    seed : int
        Seed of scikit-learn's randomized SVD used inside EM.

    Attributes
    ----------
    components_ : (K, N) float64
        Loadings ``W.T``.
    mean_ : (N,) float64
    noise_variance_ : (N,) float64
        Private (unit-specific) variances ``psi``.
    explained_variance_ : (K,) float64
        Shared variance of each factor (squared norm of its loadings).

    Notes
    -----
    ``transform`` returns the posterior mean ``E[z | x]``. Factors are ordered
    by shared variance and signed so the largest loading is positive; like any
    FA solution they are defined up to a rotation.

    References
    ----------
    Everitt (1984) An Introduction to Latent Variable Models. Chapman & Hall.
    Santhanam et al. (2009) Factor-analysis methods for higher-performance
    neural prostheses. J Neurophysiol 102, 1315-1330.
    """

    model_id = "ncli/fa@1"

    def fit(self, X, y=None, segments=None) -> "FAEmbedding":
        """Fit loadings and private variances by EM (scikit-learn).

        Parameters
        ----------
        X : (T, N) array
            Features of valid bins, finite.

        Returns
        -------
        self

        Raises
        ------
        DataError
            Invalid ``X``.
        ParameterError
            ``n_components`` outside ``1..N``.
        """
        from sklearn.decomposition import FactorAnalysis

        X = check_array(X, "X", min_samples=2)
        self._check_dim(X)
        fa = FactorAnalysis(n_components=int(self.n_components), random_state=self.seed,
                            svd_method="lapack", max_iter=1000, tol=1e-4).fit(X)
        W = fa.components_  # (K, N)
        order = np.argsort(-np.sum(W**2, axis=1), kind="stable")
        W = W[order]
        signs = np.sign(W[np.arange(W.shape[0]), np.argmax(np.abs(W), axis=1)])
        signs[signs == 0] = 1.0
        self.components_ = W * signs[:, None]
        self.mean_ = fa.mean_.copy()
        self.noise_variance_ = np.maximum(fa.noise_variance_.copy(), 1e-12)
        self.explained_variance_ = np.sum(self.components_**2, axis=1)
        return self

    def transform(self, X, segments=None) -> np.ndarray:
        """Posterior mean of the factors.

        ``E[z|x] = (I + W' Ψ⁻¹ W)⁻¹ W' Ψ⁻¹ (x - mean)``.

        Parameters
        ----------
        X : (T, N) array

        Returns
        -------
        (T, K) float64

        Raises
        ------
        NotFittedError
            Before ``fit``.
        """
        check_fitted(self)
        X = check_array(X, "X", n_features=self.n_features_)
        W = np.asarray(self.components_).T  # (N, K)
        wpsi = W / np.asarray(self.noise_variance_)[:, None]  # Ψ⁻¹ W
        prec = np.eye(W.shape[1]) + W.T @ wpsi
        return np.linalg.solve(prec, ((X - self.mean_) @ wpsi).T).T


EMBEDDINGS = {"pca": PCAEmbedding, "fa": FAEmbedding}
