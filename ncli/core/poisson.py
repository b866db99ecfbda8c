"""Poisson GLM and Poisson goodness of fit: deviance explained and bits per spike.

Used by ``ncli inpaint --evaluate`` (NeuroPaint, NeurIPS 2025, evaluates
inferred factors this way) but generic: a ridge-penalised Poisson GLM with a
log link fitted by L-BFGS, and the two scores of a predicted rate against
held-out counts.

Definitions, for counts ``y`` (T,) and predicted mean counts ``mu`` (T,) per bin:

- log-likelihood ``LL(mu) = sum(y log mu - mu - log y!)``;
- deviance ``D(mu) = 2 (LL(y) - LL(mu))`` (``LL(y)``: the saturated model);
- fraction of deviance explained ``1 - D(mu) / D(mu0)``, ``mu0`` the null model: the
  neuron's mean count per bin on the *training* bins (so it can be negative);
- bits per spike ``(LL(mu) - LL(mu0)) / (n_spikes log 2)`` (Pandarinath et al. 2018, LFADS).

References
----------
McCullagh & Nelder (1989) Generalized Linear Models, 2nd ed., ch. 6 (Poisson deviance).
Pandarinath et al. (2018) Nat Methods 15, 805-815 (bits/spike).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln

#: Smallest mean count per bin a prediction may have (log of 0 is -inf).
MU_FLOOR = 1e-8


def poisson_ll(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Poisson log-likelihood per column: y (T, N) counts, mu (T, N) mean counts; returns (N,) nats."""
    mu = np.maximum(np.asarray(mu, dtype=np.float64), MU_FLOOR)
    y = np.asarray(y, dtype=np.float64)
    return (y * np.log(mu) - mu - gammaln(y + 1)).sum(axis=0)


def deviance(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Poisson deviance per column (N,): ``2 (LL(y) - LL(mu))``; y, mu (T, N)."""
    return 2 * (poisson_ll(y, np.maximum(y, MU_FLOOR)) - poisson_ll(y, mu))


def goodness(y: np.ndarray, mu: np.ndarray, mu0: np.ndarray) -> dict:
    """Deviance explained and bits/spike of predictions against a null model, per neuron and pooled.

    Parameters
    ----------
    y : (T, N) counts of the test bins
    mu : (T, N) predicted mean counts per bin
    mu0 : (N,) null mean count per bin (the training mean)

    Returns
    -------
    dict
        ``deviance_explained`` (N,), ``bits_per_spike`` (N,) (NaN for a neuron without test spikes),
        ``bits_per_spike_pooled`` (sum of LL gains over every neuron / total spikes / log 2),
        ``n_spikes`` (N,).
    """
    y = np.asarray(y, dtype=np.float64)
    null = np.broadcast_to(np.maximum(mu0, MU_FLOOR), y.shape)
    d_model, d_null = deviance(y, mu), deviance(y, null)
    ll_gain = poisson_ll(y, mu) - poisson_ll(y, null)
    spikes = y.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        de = 1 - d_model / d_null
        bps = np.where(spikes > 0, ll_gain / (spikes * np.log(2)), np.nan)
    pooled = float(ll_gain.sum() / (spikes.sum() * np.log(2))) if spikes.sum() > 0 else float("nan")
    return {"deviance_explained": de, "bits_per_spike": bps, "bits_per_spike_pooled": pooled, "n_spikes": spikes}


def fit_poisson_glm(X: np.ndarray, y: np.ndarray, alpha: float = 1.0, max_iter: int = 200) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """Ridge-penalised Poisson GLM ``mu = exp(X w + b)`` for every column of ``y`` at once (L-BFGS).

    The loss is the mean negative log-likelihood over bins plus
    ``alpha / (2 T) * |w|^2`` per neuron (the intercept is not penalised);
    the columns are independent, so one joint L-BFGS solves them all.

    Parameters
    ----------
    X : (T, D) float
        Regressors (standardise them first).
    y : (T, N) counts
    alpha : float
        Ridge penalty (>= 0).
    max_iter : int

    Returns
    -------
    W : (D, N) float64
    b : (N,) float64
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    T, D = X.shape
    N = y.shape[1]
    b0 = np.log(np.maximum(y.mean(axis=0), 1e-3))

    def fun(theta):
        W = theta[:D * N].reshape(D, N)
        b = theta[D * N:]
        eta = np.clip(X @ W + b, -30, 30)
        mu = np.exp(eta)
        loss = (mu - y * eta).sum() / T + 0.5 * alpha / T * (W ** 2).sum()
        r = (mu - y) / T
        gW = X.T @ r + alpha / T * W
        return loss, np.concatenate([gW.ravel(), r.sum(axis=0)])

    theta0 = np.concatenate([np.zeros(D * N), b0])
    res = minimize(fun, theta0, jac=True, method="L-BFGS-B", options={"maxiter": int(max_iter)})
    return res.x[:D * N].reshape(D, N), res.x[D * N:]


def predict_poisson_glm(X: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean counts (T, N) of a GLM from :func:`fit_poisson_glm` for regressors X (T, D)."""
    return np.exp(np.clip(np.asarray(X, dtype=np.float64) @ W + b, -30, 30))
