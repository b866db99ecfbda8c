"""Linear-Gaussian state-space model (linear dynamical system) shared by sequences.

Model, for bin ``t`` of a sequence (a session, or a piece of one)::

    x_{t+1} = A x_t + w_t,          w_t ~ N(0, Q)          (K states)
    y_t     = C x_t + d + v_t,      v_t ~ N(0, R)          (p outputs)
    x_0     ~ N(x0, P0)

One set of parameters is shared by every sequence; sequences are independent
draws (each starts from ``N(x0, P0)``). A bin whose output row holds any NaN is
*missing*: the Kalman filter skips its update step (prediction only), the RTS
smoother still estimates its state, and it contributes nothing to the
observation statistics of the M-step (it still contributes to the transition
statistics, through the smoothed states on both sides).

Fitting (:class:`LinearDynamicalSystem`):

1. **Subspace identification** (canonical-variate weighting of the stochastic
   block-Hankel problem; Van Overschee & De Moor 1996, ch. 3; Larimore's CVA):
   past and future output blocks of ``i`` bins are stacked, the future is
   regressed on the past through the SVD of ``Lf^{-1} Σ_fp Lp^{-T}``, the
   extended observability matrix ``Γ_i`` is read off the leading ``K``
   singular vectors, ``C`` is its first block and ``A`` solves the
   shift-invariance equations ``Γ_i[:-p] A = Γ_i[p:]`` by least squares.
   Unstable eigenvalues (``|λ| >= 1``) are pulled inside the unit circle.
   ``Q`` and ``R`` are the covariances of the residuals of the estimated
   state sequence (innovation-form estimates). Deterministic.
2. **EM** (Shumway & Stoffer 1982; Ghahramani & Hinton 1996) from the
   subspace estimate: E-step = Kalman filter + Rauch-Tung-Striebel smoother
   with Joseph-form covariance updates, symmetrisation and Cholesky solves;
   M-step = closed-form updates of ``A, Q, C, d, R, x0, P0`` with a floor on
   the eigenvalues of ``Q``, ``R`` and ``P0`` (the constrained maximiser, so the
   likelihood stays monotone). Stops when the relative change of the
   log-likelihood falls below ``tol`` or after ``max_iter`` iterations.

Speed: the filter and smoother covariances do not depend on the data, only on
the pattern of missing bins. Within a run of observed (or missing) bins they
converge to a steady state; once two consecutive covariances agree to 1e-11
(relative) the recursion is frozen until the pattern changes, and the mean
recursions reuse the stored gains. Results equal the full recursions to that
tolerance.

References
----------
Shumway & Stoffer (1982) An approach to time series smoothing and forecasting
using the EM algorithm. J Time Ser Anal 3, 253-264 (EM for state-space models).
Ghahramani & Hinton (1996) Parameter estimation for linear dynamical systems.
Tech. Rep. CRG-TR-96-2, University of Toronto (M-step, Eqs. 10-15 there).
Rauch, Tung & Striebel (1965) Maximum likelihood estimates of linear dynamic
systems. AIAA J 3, 1445-1450 (smoother).
Bucy & Joseph (1968) Filtering for Stochastic Processes with Applications to
Guidance (Joseph-form covariance update).
Van Overschee & De Moor (1996) Subspace Identification for Linear Systems.
Kluwer (stochastic subspace identification, ch. 3).
CANDY: "Extracting task-relevant preserved dynamics from contrastive aligned
neural recordings", NeurIPS 2025 (one LDS shared by all sessions' latents).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import linalg as sla

from ncli.core.errors import DataError, ParameterDataError, ParameterError, UsageError
from ncli.models.base import Estimator, check_array, check_fitted

log = logging.getLogger("ncli")

_LOG2PI = float(np.log(2.0 * np.pi))
_STEADY_RTOL = 1e-11


# ----------------------------------------------------------------------------- small linear algebra


def _sym(M: np.ndarray) -> np.ndarray:
    return 0.5 * (M + M.swapaxes(-1, -2))


def _floor_eig(M: np.ndarray, floor: float) -> np.ndarray:
    """Symmetric ``M`` with its eigenvalues raised to at least ``floor`` (> 0)."""
    M = _sym(M)
    try:  # cheap test: all eigenvalues >= floor  <=>  M - floor I is positive definite
        np.linalg.cholesky(M - floor * np.eye(M.shape[0]))
        return M
    except np.linalg.LinAlgError:
        pass
    w, V = np.linalg.eigh(M)
    return _sym((V * np.maximum(w, floor)) @ V.T)


def _chol(M: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a symmetric positive-definite matrix, with jitter if needed."""
    M = _sym(M)
    try:
        return np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        scale = max(float(np.abs(np.diag(M)).max()), 1e-300)
        for k in range(-12, 0):
            try:
                return np.linalg.cholesky(M + (10.0 ** k) * scale * np.eye(M.shape[0]))
            except np.linalg.LinAlgError:
                continue
        raise DataError("a covariance matrix is not positive definite") from None


def _solve_spd(M: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``M^{-1} B`` for symmetric positive-definite ``M`` through its Cholesky factor."""
    return sla.cho_solve((_chol(M), True), B, check_finite=False)


def stabilize(A: np.ndarray, max_radius: float = 0.999) -> np.ndarray:
    """Pull the eigenvalues of ``A`` with modulus above ``max_radius`` onto that radius.

    Parameters
    ----------
    A : (K, K) float
    max_radius : float
        Largest allowed eigenvalue modulus (< 1 for a stable system).

    Returns
    -------
    (K, K) float64
        ``A`` itself when already stable; otherwise ``V diag(λ') V^{-1}`` with
        ``λ' = λ · min(1, max_radius / |λ|)`` (real, because conjugate pairs are
        scaled alike), or ``A`` scaled as a whole if ``A`` is defective.
    """
    A = np.asarray(A, dtype=np.float64)
    lam, V = np.linalg.eig(A)
    rho = np.abs(lam)
    if rho.max(initial=0.0) < max_radius:
        return A
    scaled = lam * np.minimum(1.0, max_radius / np.maximum(rho, 1e-300))
    if np.linalg.cond(V) < 1e8:
        B = (V * scaled) @ np.linalg.inv(V)
        if np.abs(B.imag).max() < 1e-8 * max(1.0, np.abs(B.real).max()):
            return np.ascontiguousarray(B.real)
    return A * (max_radius / rho.max())


# ----------------------------------------------------------------------------- time scales


def timescales(eigenvalues: np.ndarray, bin_size: float) -> dict:
    """Time constants and rotation frequencies of discrete-time eigenvalues.

    For an eigenvalue ``λ`` of ``A`` with bin size ``Δt``: the time constant is
    ``τ = -Δt / ln|λ|`` (s; the e-folding time of the mode's envelope, ``inf``
    for ``|λ| >= 1``, 0 for ``λ = 0``) and the rotation frequency is
    ``f = |arg λ| / (2π Δt)`` (Hz; 0 for real positive ``λ``, the Nyquist
    frequency ``1 / (2 Δt)`` for real negative ``λ``).

    Parameters
    ----------
    eigenvalues : (K,) complex or (K, 2) float
        Eigenvalues, or their real and imaginary parts as columns.
    bin_size : float
        Δt (s), > 0.

    Returns
    -------
    dict
        ``modulus`` (K,), ``time_constants_s`` (K,), ``rotation_hz`` (K,), float64.

    Raises
    ------
    UsageError
        ``bin_size <= 0``.
    """
    if not bin_size > 0:
        raise UsageError(f"bin size must be > 0 s, got {bin_size}")
    lam = np.asarray(eigenvalues)
    if lam.ndim == 2:
        lam = lam[:, 0] + 1j * lam[:, 1]
    lam = lam.astype(np.complex128)
    mod = np.abs(lam)
    with np.errstate(divide="ignore"):
        logm = np.log(mod)
    tau = np.full(mod.shape, np.inf)
    inside = mod < 1.0
    tau[inside] = -bin_size / logm[inside]
    tau[mod == 0] = 0.0
    freq = np.abs(np.angle(lam)) / (2.0 * np.pi * bin_size)
    return {"modulus": mod, "time_constants_s": tau, "rotation_hz": freq}


def sorted_eigenvalues(A: np.ndarray) -> np.ndarray:
    """Eigenvalues of ``A`` as a (K, 2) real/imag array, by decreasing modulus then angle."""
    lam = np.linalg.eigvals(np.asarray(A, dtype=np.float64))
    order = np.lexsort((-lam.imag, -np.round(np.abs(lam), 12)))
    lam = lam[order]
    return np.column_stack([lam.real, lam.imag])


# ----------------------------------------------------------------------------- inference


@dataclass
class _Params:
    A: np.ndarray
    C: np.ndarray
    d: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    x0: np.ndarray
    P0: np.ndarray


@dataclass
class Posterior:
    """Kalman filter / RTS smoother output of one sequence.

    Attributes
    ----------
    loglik : float
        log p(observed outputs) under the model (nats).
    filtered : (T, K) float64
        ``E[x_t | y_{0..t}]``.
    predicted : (T, K) float64
        ``E[x_t | y_{0..t-1}]``.
    smoothed : (T, K) float64 or None
        ``E[x_t | y_{0..T-1}]``.
    smoothed_cov : (T, K, K) float64 or None
    cross_cov : (T-1, K, K) float64 or None
        ``Cov(x_{t+1}, x_t | y_{0..T-1})``.
    """

    loglik: float
    filtered: np.ndarray
    predicted: np.ndarray
    smoothed: np.ndarray | None = None
    smoothed_cov: np.ndarray | None = None
    cross_cov: np.ndarray | None = None


def _covariance_pass(obs: np.ndarray, p: _Params):
    """Data-independent part of the filter: covariances, gains, innovation factors.

    Returns per-bin indices into lists of distinct covariance states (steady
    states are stored once).
    """
    T = obs.size
    K = p.A.shape[0]
    idx = np.empty(T, dtype=np.int64)
    Pp_l, Pf_l, G_l, L_l, ld_l = [], [], [], [], []
    I = np.eye(K)
    steady = False
    P_pred = p.P0
    prev_pred = None
    for t in range(T):
        if t > 0:
            if steady and obs[t] == obs[t - 1]:
                idx[t] = idx[t - 1]
                continue
            steady = False
            P_pred = _sym(p.A @ Pf_l[idx[t - 1]] @ p.A.T + p.Q)
        if obs[t]:
            S = _sym(p.C @ P_pred @ p.C.T + p.R)
            L = _chol(S)
            G = sla.cho_solve((L, True), p.C @ P_pred, check_finite=False).T  # (K, p) gain
            IKC = I - G @ p.C
            P_filt = _sym(IKC @ P_pred @ IKC.T + G @ p.R @ G.T)  # Joseph form
            logdet = 2.0 * float(np.log(np.diag(L)).sum())
        else:
            L, G, P_filt, logdet = None, None, P_pred, 0.0
        Pp_l.append(P_pred)
        Pf_l.append(P_filt)
        G_l.append(G)
        L_l.append(L)
        ld_l.append(logdet)
        idx[t] = len(Pp_l) - 1
        if t > 0 and obs[t] == obs[t - 1] and prev_pred is not None:
            scale = max(float(np.abs(P_pred).max()), 1e-300)
            if float(np.abs(P_pred - prev_pred).max()) <= _STEADY_RTOL * scale:
                steady = True
        prev_pred = P_pred
    return idx, Pp_l, Pf_l, G_l, L_l, np.asarray(ld_l)


def _run(Y: np.ndarray, obs: np.ndarray, p: _Params, smooth: bool) -> Posterior:
    """Kalman filter (and RTS smoother) of one sequence ``Y`` (T, p) with observed mask ``obs``."""
    T, n_out = Y.shape
    K = p.A.shape[0]
    idx, Pp_l, Pf_l, G_l, L_l, logdets = _covariance_pass(obs, p)
    A, C, d = p.A, p.C, p.d
    mp = np.empty((T, K))
    mf = np.empty((T, K))
    innov = np.zeros((T, n_out))
    m = p.x0.astype(np.float64)
    for t in range(T):
        if t > 0:
            m = A @ m
        mp[t] = m
        if obs[t]:
            e = Y[t] - C @ m - d
            innov[t] = e
            m = m + G_l[idx[t]] @ e
        mf[t] = m
    # log-likelihood: group observed bins by their covariance state for batched triangular solves
    ll = 0.0
    o = np.flatnonzero(obs)
    if o.size:
        ll -= 0.5 * o.size * n_out * _LOG2PI
        ll -= 0.5 * float(logdets[idx[o]].sum())
        order = np.argsort(idx[o], kind="stable")
        oi = o[order]
        keys = idx[oi]
        cut = np.flatnonzero(np.diff(keys)) + 1
        for grp in np.split(oi, cut):
            W = sla.solve_triangular(L_l[idx[grp[0]]], innov[grp].T, lower=True, check_finite=False)
            ll -= 0.5 * float(np.sum(W * W))
    post = Posterior(loglik=ll, filtered=mf, predicted=mp)
    if not smooth:
        return post
    # RTS smoother; J_t = Pf_t A' Pp_{t+1}^{-1}; covariances frozen once steady (backwards)
    Ps = np.empty((T, K, K))
    ms = np.empty((T, K))
    Ps[T - 1] = Pf_l[idx[T - 1]]
    ms[T - 1] = mf[T - 1]
    Js = np.empty((max(T - 1, 0), K, K))
    cache_J: dict[tuple[int, int], np.ndarray] = {}
    steady = False
    for t in range(T - 2, -1, -1):
        key = (int(idx[t]), int(idx[t + 1]))
        J = cache_J.get(key)
        if J is None:
            J = sla.cho_solve((_chol(Pp_l[key[1]]), True), A @ Pf_l[key[0]], check_finite=False).T
            cache_J[key] = J
        Js[t] = J
        if steady and t + 2 < T and key == (int(idx[t + 1]), int(idx[t + 2])):
            Ps[t] = Ps[t + 1]
        else:
            steady = False
            Ps[t] = _sym(Pf_l[key[0]] + J @ (Ps[t + 1] - Pp_l[key[1]]) @ J.T)
            if t + 2 < T and key == (int(idx[t + 1]), int(idx[t + 2])):
                scale = max(float(np.abs(Ps[t]).max()), 1e-300)
                if float(np.abs(Ps[t] - Ps[t + 1]).max()) <= _STEADY_RTOL * scale:
                    steady = True
        ms[t] = mf[t] + J @ (ms[t + 1] - mp[t + 1])
    post.smoothed = ms
    post.smoothed_cov = Ps
    post.cross_cov = np.einsum("tij,tkj->tik", Ps[1:], Js) if T > 1 else np.zeros((0, K, K))
    return post


# ----------------------------------------------------------------------------- subspace identification


def _windows_cov(seqs: list[np.ndarray], obs: list[np.ndarray], width: int, chunk: int = 4096):
    """Second moments of all fully observed windows of ``width`` bins (rows stacked in time order).

    Returns ``(M, n)``: ``M`` (width·p, width·p) sum of outer products, ``n`` number of windows.
    """
    dim = width * seqs[0].shape[1]
    M = np.zeros((dim, dim))
    n = 0
    for Y, ok in zip(seqs, obs):
        T = Y.shape[0]
        if T < width:
            continue
        good = np.convolve(ok.astype(np.int64), np.ones(width, dtype=np.int64), "valid") == width
        starts = np.flatnonzero(good)
        Yz = np.where(ok[:, None], Y, 0.0)
        for a in range(0, starts.size, chunk):
            s = starts[a:a + chunk]
            H = Yz[s[:, None] + np.arange(width)[None, :]].reshape(s.size, dim)
            M += H.T @ H
        n += starts.size
    return M, n


def _window_states(seqs, obs, i: int, proj: np.ndarray, chunk: int = 4096):
    """State estimates ``proj @ past`` for every fully observed past window, with their bin index."""
    out = []
    for Y, ok in zip(seqs, obs):
        T = Y.shape[0]
        X = np.full((T, proj.shape[0]), np.nan)
        if T >= i:
            good = np.convolve(ok.astype(np.int64), np.ones(i, dtype=np.int64), "valid") == i
            starts = np.flatnonzero(good)
            starts = starts[starts + i < T]  # the state lives at bin start + i
            Yz = np.where(ok[:, None], Y, 0.0)
            for a in range(0, starts.size, chunk):
                s = starts[a:a + chunk]
                H = Yz[s[:, None] + np.arange(i)[None, :]].reshape(s.size, -1)
                X[s + i] = H @ proj.T
        out.append(X)
    return out


def subspace_identification(seqs: list[np.ndarray], obs: list[np.ndarray], n_states: int, horizon: int,
                            reg: float = 1e-6) -> tuple[_Params, np.ndarray]:
    """Stochastic subspace identification with canonical-variate weighting.

    Parameters
    ----------
    seqs : list of (T_s, p) float64
        Output sequences (rows of missing bins are ignored).
    obs : list of (T_s,) bool
        Observed bins.
    n_states : int
        K.
    horizon : int
        Block rows ``i`` of the past and future Hankel blocks (>= 2).
    reg : float
        Ridge on the past/future covariances, relative to their mean variance.

    Returns
    -------
    params : _Params
        ``A`` (stabilised), ``C``, ``d`` (output mean), innovation-form ``Q``, ``R``,
        ``x0`` = 0 and ``P0`` = the state covariance.
    singular_values : (i·p,) float64
        Canonical correlations between past and future (for the order choice).

    Raises
    ------
    DataError
        Too few fully observed windows of ``2 i`` bins.

    References
    ----------
    Van Overschee & De Moor (1996), ch. 3 (stochastic identification, Γ_i from the
    weighted projection; A from the shift structure of Γ_i).
    """
    K = int(n_states)
    i = int(horizon)
    p = seqs[0].shape[1]
    rows = np.concatenate([Y[ok] for Y, ok in zip(seqs, obs)])
    d = rows.mean(axis=0)
    cen = [Y - d for Y in seqs]
    M, n = _windows_cov(cen, obs, 2 * i)
    if n < max(2 * i * p, 10 * K, 20):
        raise ParameterDataError(f"{n} fully observed windows of {2 * i} bins are too few for subspace "
                                 f"identification of {p} outputs",
                                 hint="use fewer {n_states} or provide longer sequences")
    M /= n
    ip = i * p
    Spp = _sym(M[:ip, :ip])
    Sff = _sym(M[ip:, ip:])
    Sfp = M[ip:, :ip]
    var = max(float(np.trace(M)) / (2 * ip), 1e-300)
    Lp = _chol(Spp + reg * var * np.eye(ip))
    Lf = _chol(Sff + reg * var * np.eye(ip))
    W = sla.solve_triangular(Lf, Sfp, lower=True)
    W = sla.solve_triangular(Lp, W.T, lower=True).T  # Lf^{-1} Sfp Lp^{-T}
    U, s, Vt = np.linalg.svd(W)
    if s.size < K:
        raise ParameterDataError(f"subspace identification gives at most {s.size} states, fewer than "
                                 f"{{n_states}} {K}")
    sq = np.sqrt(np.maximum(s[:K], 1e-12))
    Gam = (Lf @ U[:, :K]) * sq  # extended observability matrix (i·p, K)
    C = Gam[:p].copy()
    A = np.linalg.lstsq(Gam[:-p], Gam[p:], rcond=None)[0]
    A = stabilize(A)
    # state estimates from the past: x_t = S^{1/2} V' Lp^{-1} past  (past = y_{t-i..t-1})
    proj = (Vt[:K] * sq[:, None]) @ sla.solve_triangular(Lp, np.eye(ip), lower=True)
    Xs = _window_states(cen, obs, i, proj)
    dx, ey, xx = [], [], []
    for X, Y, ok in zip(Xs, cen, obs):
        have = np.all(np.isfinite(X), axis=1)
        both = have[:-1] & have[1:]
        dx.append(X[1:][both] - X[:-1][both] @ A.T)
        e = have & ok
        ey.append(Y[e] - X[e] @ C.T)
        xx.append(X[have])
    dx, ey, xx = np.concatenate(dx), np.concatenate(ey), np.concatenate(xx)
    if dx.shape[0] < K + 1 or ey.shape[0] < 2:
        raise DataError("too few consecutive observed bins for subspace identification")
    Q = dx.T @ dx / dx.shape[0]
    R = ey.T @ ey / ey.shape[0]
    P0 = xx.T @ xx / xx.shape[0]
    return _Params(A=A, C=C, d=d, Q=_sym(Q), R=_sym(R), x0=np.zeros(K), P0=_sym(P0)), s


# ----------------------------------------------------------------------------- the estimator


def _as_sequences(Y, n_features: int | None = None) -> list[np.ndarray]:
    seqs = list(Y) if isinstance(Y, (list, tuple)) else [Y]
    if not seqs:
        raise DataError("no sequences given")
    out = []
    for k, s in enumerate(seqs):
        name = "Y" if len(seqs) == 1 else f"Y[{k}]"
        out.append(check_array(s, name, allow_nan=True, min_samples=1,
                               n_features=n_features if n_features is not None else
                               (out[0].shape[1] if out else None)))
    return out


class LinearDynamicalSystem(Estimator):
    """Linear-Gaussian state-space model fitted by subspace identification and EM.

    Parameters
    ----------
    n_states : int
        Latent dimension K.
    method : {"em", "ssid"}
        ``"ssid"``: stop after subspace identification; ``"em"``: refine it by EM.
    obs_noise : {"full", "diag"}
        Structure of the output noise covariance R.
    max_iter : int
        Maximum number of EM iterations.
    tol : float
        EM stops when ``|ΔLL| / |LL| < tol`` (relative change of the log-likelihood).
    horizon : int or None
        Block rows ``i`` of the subspace identification; default
        ``max(5, ceil(2K / p) + 1)``, capped so that ``i·p <= 600`` (and ``i >= 2``).
    min_var : float
        Floor on the eigenvalues of R (relative to the mean output variance) and
        of Q and P0 (relative to the mean variance of the subspace state).
    seed : int
        Unused (both stages are deterministic); kept for the ncli interface.

    Attributes
    ----------
    A_ : (K, K) float64
        State transition (per bin).
    C_ : (p, K) float64
        Output (loading) matrix.
    d_ : (p,) float64
        Output offset.
    Q_ : (K, K) float64
        State noise covariance.
    R_ : (p, p) float64
        Output noise covariance (diagonal for ``obs_noise="diag"``).
    x0_ : (K,) float64
        Initial state mean.
    P0_ : (K, K) float64
        Initial state covariance.
    loglik_ : (n_iter + 1,) float64
        Log-likelihood (nats) of the training data at the subspace estimate and after
        each EM iteration.
    eigenvalues_ : (K, 2) float64
        Real and imaginary parts of the eigenvalues of ``A_``, by decreasing modulus.
    n_iter_ : int
    converged_ : bool

    References
    ----------
    Shumway & Stoffer (1982) J Time Ser Anal 3, 253-264; Ghahramani & Hinton (1996)
    CRG-TR-96-2; Van Overschee & De Moor (1996) Subspace Identification for Linear
    Systems; CANDY (NeurIPS 2025) for one LDS shared across sessions.
    """

    model_id = "ncli/lds@1"
    _learned = ("A_", "C_", "d_", "Q_", "R_", "x0_", "P0_", "loglik_", "eigenvalues_")
    _learned_scalars = ("n_iter_", "converged_")

    def __init__(self, n_states: int = 4, method: str = "em", obs_noise: str = "full", max_iter: int = 200,
                 tol: float = 1e-6, horizon: int | None = None, min_var: float = 1e-6, seed: int = 0):
        self.n_states = n_states
        self.method = method
        self.obs_noise = obs_noise
        self.max_iter = max_iter
        self.tol = tol
        self.horizon = horizon
        self.min_var = min_var
        self.seed = seed
        for name in self._learned + self._learned_scalars:
            setattr(self, name, None)

    # ------------------------------------------------------------------ helpers
    def _check(self) -> None:
        if self.method not in ("em", "ssid"):
            raise ParameterError("method", f"invalid value '{self.method}' for {{method}}",
                                 hint="choose one of: ssid, em")
        if self.obs_noise not in ("full", "diag"):
            raise ParameterError("obs_noise", f"invalid value '{self.obs_noise}' for {{obs_noise}}",
                                 hint="choose one of: diag, full")
        if int(self.n_states) < 1:
            raise ParameterError("n_states", f"{{n_states}} must be a positive integer, got {self.n_states}")
        if int(self.max_iter) < 0:
            raise ParameterError("max_iter", f"{{max_iter}} must be >= 0, got {self.max_iter}")
        if not self.tol > 0:
            raise ParameterError("tol", f"{{tol}} must be > 0, got {self.tol}")

    def _params(self) -> _Params:
        check_fitted(self, ("A_", "C_", "d_", "Q_", "R_", "x0_", "P0_"))
        f = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
        return _Params(f(self.A_), f(self.C_), f(self.d_), f(self.Q_), f(self.R_), f(self.x0_), f(self.P0_))

    def _set(self, p: _Params) -> None:
        self.A_, self.C_, self.d_, self.Q_, self.R_, self.x0_, self.P0_ = p.A, p.C, p.d, p.Q, p.R, p.x0, p.P0

    def default_horizon(self, n_outputs: int) -> int:
        """Block rows of the subspace identification for ``n_outputs`` outputs (see ``horizon``)."""
        if self.horizon is not None:
            return max(2, int(self.horizon))
        K = int(self.n_states)
        i = max(5, int(np.ceil(2 * K / n_outputs)) + 1)
        return max(2, min(i, 600 // max(n_outputs, 1)))

    # ------------------------------------------------------------------ fitting
    def fit(self, Y) -> "LinearDynamicalSystem":
        """Fit the LDS to one or several output sequences.

        Parameters
        ----------
        Y : (T, p) array or list of (T_s, p) arrays
            Output sequences (sessions); rows holding NaN are missing bins.
            ±inf is an error.

        Returns
        -------
        self

        Raises
        ------
        UsageError
            Invalid hyperparameters.
        DataError
            Invalid arrays, fewer observed bins than needed, or more states than
            subspace identification can deliver.
        """
        self._check()
        from threadpoolctl import threadpool_limits

        # the matrices are small: one BLAS thread is fastest and avoids oversubscription
        with threadpool_limits(limits=1):
            return self._fit(Y)

    def _fit(self, Y) -> "LinearDynamicalSystem":
        seqs = _as_sequences(Y)
        obs = [np.all(np.isfinite(s), axis=1) for s in seqs]
        n_obs = int(sum(int(o.sum()) for o in obs))
        p_out = seqs[0].shape[1]
        K = int(self.n_states)
        if n_obs < 2 * K + 2:
            raise DataError(f"{n_obs} observed bins are too few to fit {K} states")
        params, _ = subspace_identification(seqs, obs, K, self.default_horizon(p_out))
        rows = np.concatenate([s[o] for s, o in zip(seqs, obs)])
        r_floor = float(self.min_var) * max(float(rows.var(axis=0).mean()), 1e-300)
        q_floor = float(self.min_var) * max(float(np.trace(params.P0)) / K, 1e-300)
        if self.obs_noise == "diag":
            params.R = np.diag(np.diag(params.R))
        params.R = _floor_eig(params.R, r_floor)
        params.Q = _floor_eig(params.Q, q_floor)
        params.P0 = _floor_eig(params.P0, q_floor)
        self.n_iter_, self.converged_ = 0, False
        if self.method == "ssid":
            curve = [self._loglik(seqs, obs, params)]
        else:
            curve = []
            for it in range(int(self.max_iter)):
                # the E-step of iteration k evaluates the likelihood of the parameters of iteration k-1
                params, ll_old = self._em_step(seqs, obs, params, q_floor, r_floor)
                curve.append(ll_old)
                self.n_iter_ = it + 1
                if it > 0 and abs(curve[-1] - curve[-2]) <= float(self.tol) * abs(curve[-2]):
                    self.converged_ = True
                    break
            curve.append(self._loglik(seqs, obs, params))
            if not self.converged_ and len(curve) >= 2:
                self.converged_ = abs(curve[-1] - curve[-2]) <= float(self.tol) * abs(curve[-2])
        self._set(params)
        self.loglik_ = np.asarray(curve, dtype=np.float64)
        self.eigenvalues_ = sorted_eigenvalues(params.A)
        return self

    def _loglik(self, seqs, obs, p: _Params) -> float:
        return float(sum(_run(Y, o, p, smooth=False).loglik for Y, o in zip(seqs, obs) if o.any()))

    def _em_step(self, seqs, obs, p: _Params, q_floor: float, r_floor: float) -> tuple[_Params, float]:
        """One EM iteration; returns the new parameters and the log-likelihood of ``p``."""
        K = p.A.shape[0]
        n_out = p.C.shape[0]
        ll = 0.0
        S00 = np.zeros((K, K))
        S11 = np.zeros((K, K))
        S10 = np.zeros((K, K))
        n_tr = 0
        Sxx = np.zeros((K, K))
        SP = np.zeros((K, K))
        Sx = np.zeros(K)
        Syx = np.zeros((n_out, K))
        Sy = np.zeros(n_out)
        n_o = 0
        firsts, first_covs, obs_data = [], [], []
        for Y, o in zip(seqs, obs):
            if not o.any():
                continue
            post = _run(Y, o, p, smooth=True)
            ll += post.loglik
            m, P, V = post.smoothed, post.smoothed_cov, post.cross_cov
            if m.shape[0] > 1:
                S00 += P[:-1].sum(axis=0) + m[:-1].T @ m[:-1]
                S11 += P[1:].sum(axis=0) + m[1:].T @ m[1:]
                S10 += V.sum(axis=0) + m[1:].T @ m[:-1]
                n_tr += m.shape[0] - 1
            mo, yo = m[o], Y[o]
            Po = P[o].sum(axis=0)
            SP += Po
            Sxx += Po + mo.T @ mo
            Sx += mo.sum(axis=0)
            Syx += yo.T @ mo
            Sy += yo.sum(axis=0)
            n_o += mo.shape[0]
            obs_data.append((yo, mo))
            firsts.append(m[0])
            first_covs.append(P[0])
        # C, d: least squares on the augmented state [x; 1]
        Szz = np.zeros((K + 1, K + 1))
        Szz[:K, :K], Szz[:K, K], Szz[K, :K], Szz[K, K] = Sxx, Sx, Sx, n_o
        Syz = np.column_stack([Syx, Sy])
        Gd = _solve_spd(Szz, Syz.T).T
        C, d = Gd[:, :K], Gd[:, K]
        R = C @ SP @ C.T
        for yo, mo in obs_data:
            E = yo - mo @ C.T - d
            R += E.T @ E
        R = _sym(R / n_o)
        if self.obs_noise == "diag":
            R = np.diag(np.maximum(np.diag(R), r_floor))
        else:
            R = _floor_eig(R, r_floor)
        # A, Q
        if n_tr > 0:
            A = _solve_spd(S00, S10.T).T
            Q = (S11 - A @ S10.T - S10 @ A.T + A @ S00 @ A.T) / n_tr
            Q = _floor_eig(Q, q_floor)
        else:
            A, Q = p.A, p.Q
        # initial state
        F = np.asarray(firsts)
        x0 = F.mean(axis=0)
        P0 = np.mean(first_covs, axis=0) + (F - x0).T @ (F - x0) / F.shape[0]
        P0 = _floor_eig(P0, q_floor)
        return _Params(A=A, C=C, d=d, Q=Q, R=R, x0=x0, P0=P0), ll

    # ------------------------------------------------------------------ inference
    def score(self, Y) -> float:
        """Log-likelihood (nats) of the observed bins of ``Y`` under the fitted parameters.

        Parameters
        ----------
        Y : (T, p) array or list of (T_s, p) arrays
            Rows with NaN are missing.

        Returns
        -------
        float

        Raises
        ------
        NotFittedError, DataError
        """
        p = self._params()
        seqs = _as_sequences(Y, n_features=p.C.shape[0])
        return self._loglik(seqs, [np.all(np.isfinite(s), axis=1) for s in seqs], p)

    def smooth(self, Y) -> list[Posterior]:
        """Kalman filter + RTS smoother of every sequence.

        Parameters
        ----------
        Y : (T, p) array or list of (T_s, p) arrays
            Rows with NaN are missing (their states are still estimated).

        Returns
        -------
        list of Posterior
            One per sequence: ``smoothed`` (T, K) means, ``smoothed_cov`` (T, K, K),
            ``filtered``, ``predicted``, ``loglik``.

        Raises
        ------
        NotFittedError, DataError
        """
        from threadpoolctl import threadpool_limits

        p = self._params()
        seqs = _as_sequences(Y, n_features=p.C.shape[0])
        with threadpool_limits(limits=1):
            return [_run(s, np.all(np.isfinite(s), axis=1), p, smooth=True) for s in seqs]

    def forecast(self, Y, max_k: int = 4) -> np.ndarray:
        """k-step-ahead output forecasts from the causal (filtered) state.

        ``ŷ_{t|t-k} = C A^{k-1} E[x_{t-k+1} | y_{0..t-k}] + d``: the forecast of bin
        ``t`` uses the outputs up to bin ``t - k`` only.

        Parameters
        ----------
        Y : (T, p) array
            One sequence; rows with NaN are missing.
        max_k : int
            Largest horizon (bins).

        Returns
        -------
        (max_k, T, p) float64
            ``[k-1, t]`` is the forecast of bin ``t`` made ``k`` bins before it (NaN
            for ``t < k - 1``; the forecasts of the first bins rest on the prior ``x0_``).

        Raises
        ------
        NotFittedError, DataError
        """
        p = self._params()
        Y = check_array(Y, "Y", allow_nan=True, n_features=p.C.shape[0])
        post = _run(Y, np.all(np.isfinite(Y), axis=1), p, smooth=False)
        T = Y.shape[0]
        out = np.full((int(max_k), T, p.C.shape[0]), np.nan)
        # predicted[s] = E[x_s | y_{0..s-1}]; A^{k-1} predicted[s] = E[x_{s+k-1} | y_{0..s-1}]
        X = post.predicted
        for k in range(1, int(max_k) + 1):
            if k > 1:
                X = X @ p.A.T
            if T >= k:
                out[k - 1, k - 1:] = X[: T - k + 1] @ p.C.T + p.d
        return out

    def summary(self, bin_size: float) -> dict:
        """Eigenvalues of ``A_`` with their time constants (s) and rotation frequencies (Hz).

        Parameters
        ----------
        bin_size : float
            Δt of the fitted data (s).

        Returns
        -------
        dict
            ``eigenvalues`` (K, 2), ``modulus``, ``time_constants_s``, ``rotation_hz`` (K,),
            ``loglik`` (final), ``n_iter``, ``converged``.
        """
        check_fitted(self)
        ts = timescales(self.eigenvalues_, bin_size)
        return {"eigenvalues": np.asarray(self.eigenvalues_), **ts,
                "loglik": float(np.asarray(self.loglik_)[-1]), "n_iter": int(self.n_iter_ or 0),
                "converged": bool(self.converged_)}


def forecast_r2(model: LinearDynamicalSystem, sequences: Sequence[np.ndarray], evaluate: Sequence[np.ndarray],
                max_k: int = 4) -> dict:
    """k-step-ahead forecast R² on chosen (held-out) bins.

    The filter runs over each whole sequence with the fitted parameters; the
    forecast of bin ``t`` uses outputs up to ``t - k`` only, and is scored where
    ``evaluate[t]`` is true and bin ``t`` is observed.

    Parameters
    ----------
    model : LinearDynamicalSystem
        Fitted.
    sequences : list of (T_s, p) float
    evaluate : list of (T_s,) bool
        Bins to score (e.g. the last 20 % of each session).
    max_k : int

    Returns
    -------
    dict
        ``r2`` (max_k,): pooled ``1 - Σ residual² / Σ (y - ȳ)²`` over all outputs (the
        fraction of held-out output variance predicted, ȳ the held-out mean per output);
        ``r2_per_output`` (max_k, p); ``n_samples`` (max_k,).
    """
    from ncli.core.metrics import r2_score

    res: list[tuple[list, list]] = [([], []) for _ in range(max_k)]
    for Y, ev in zip(sequences, evaluate):
        Y = np.asarray(Y, dtype=np.float64)
        F = model.forecast(Y, max_k)
        ok = np.asarray(ev, dtype=bool) & np.all(np.isfinite(Y), axis=1)
        for k in range(max_k):
            use = ok & np.all(np.isfinite(F[k]), axis=1)
            res[k][0].append(Y[use])
            res[k][1].append(F[k][use])
    r2, per, n = [], [], []
    for yt, yp in res:
        yt, yp = np.concatenate(yt), np.concatenate(yp)
        n.append(int(yt.shape[0]))
        if yt.shape[0] < 2:
            r2.append(float("nan"))
            per.append([float("nan")] * (yt.shape[1] if yt.ndim == 2 else 0))
            continue
        ss_res = float(np.sum((yt - yp) ** 2))
        ss_tot = float(np.sum((yt - yt.mean(axis=0)) ** 2))
        r2.append(1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"))
        per.append([float(v) for v in r2_score(yt, yp)])
    return {"r2": r2, "r2_per_output": per, "n_samples": n}
