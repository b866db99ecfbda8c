"""Several sessions observing one shared 4-d LDS through different nonlinear populations (``ncli simulate candy``).

Simulators are estimators whose "learned" attributes are the drawn ground
truth, so they are saved to a store (``models/truth``) like any fitted model.
"""

from __future__ import annotations

import numpy as np

from ncli.models.base import Estimator, check_fitted, check_params


class CandySimulator(Estimator):
    """Several sessions observing one shared 4-d LDS through different nonlinear populations.

    Model, for bin ``t`` (width ``Δ`` s) and session ``s``::

        x_{t+1} = A x_t + w_t,              w_t ~ N(0, Q),  Q = I - A Aᵀ (stationary cov. I)
        v_t     = G x_t + e_t,              e_t ~ N(0, σ_v² I)         (2-d velocity, cm/s)
        n_t,i   ~ Poisson(exp(c_s,i · x_t + b_s,i))        (noise = "poisson"), or
        n_t,i   = softplus(c_s,i · x_t + b_s,i) + N(0, σ²)  (noise = "gaussian")

    ``A`` is block diagonal: a rotating pair ``0.97 R(2π/40)`` (eigenvalues
    ``0.97·e^{±i2π/40}``, a period of 40 bins) and two slow decays (0.98 and
    0.92). ``G`` is a random 2x4 readout of all four latent dimensions. Each
    session has its own number of units (uniform in 30..80) and random readout
    ``c_s`` (no unit correspondence between sessions).

    Parameters
    ----------
    n_sessions : int
        3-5 sessions is the CANDY setting (any number >= 1 is accepted).
    n_bins : int
        Bins per session T.
    bin_size : float
        Δ (s).
    mean_count : float
        Typical spike count per bin (Poisson).
    modulation : float
        SD of each unit's log-rate driven by the latent.
    noise : {"poisson", "gaussian"}
    velocity_gain : float
        SD of each velocity component (cm/s).
    velocity_noise : float
        σ_v (cm/s).
    seed : int

    Attributes
    ----------
    A_ : (4, 4) float64
    Q_ : (4, 4) float64
    eigenvalues_ : (4, 2) float64
        Real and imaginary parts of the true eigenvalues.
    readout_ : (2, 4) float64
        ``G``.
    n_units_ : (n_sessions,) int64
    """

    model_id = "ncli/sim-candy@1"
    _learned = ("A_", "Q_", "eigenvalues_", "readout_", "n_units_")

    def __init__(self, n_sessions: int = 4, n_bins: int = 3000, bin_size: float = 0.05,
                 mean_count: float = 2.0, modulation: float = 1.0, noise: str = "poisson",
                 velocity_gain: float = 10.0, velocity_noise: float = 0.5, seed: int = 0):
        self.n_sessions = n_sessions
        self.n_bins = n_bins
        self.bin_size = bin_size
        self.mean_count = mean_count
        self.modulation = modulation
        self.noise = noise
        self.velocity_gain = velocity_gain
        self.velocity_noise = velocity_noise
        self.seed = seed
        for name in self._learned:
            setattr(self, name, None)
        self._readouts = None

    def init_params(self) -> "CandySimulator":
        """Draw the dynamics, the behaviour readout and each session's population.

        Returns
        -------
        self

        Raises
        ------
        UsageError
            Invalid hyperparameters.
        """
        checks = [
            (self.n_sessions >= 1, f"{{n_sessions}} must be at least 1, got {self.n_sessions}", "n_sessions"),
            (self.n_bins >= 50, f"{{n_bins}} must be at least 50, got {self.n_bins}", "n_bins"),
            (self.bin_size > 0, f"{{bin_size}} must be > 0 s, got {self.bin_size}", "bin_size"),
            (self.mean_count > 0, f"{{mean_count}} must be > 0, got {self.mean_count}", "mean_count"),
            (self.noise in ("poisson", "gaussian"), f"invalid value '{self.noise}' for {{noise}}", "noise"),
        ]
        check_params(checks)
        rng = np.random.default_rng([int(self.seed), 10])
        th, r = 2 * np.pi / 40, 0.97
        A = np.zeros((4, 4))
        A[:2, :2] = r * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        A[2, 2], A[3, 3] = 0.98, 0.92
        Q = np.eye(4) - A @ A.T
        eig = np.array([[r * np.cos(th), r * np.sin(th)], [r * np.cos(th), -r * np.sin(th)],
                        [0.98, 0.0], [0.92, 0.0]])
        G = rng.standard_normal((2, 4)) * (self.velocity_gain / 2.0)
        n_units = rng.integers(30, 81, size=int(self.n_sessions)).astype(np.int64)
        readouts = []
        for n in n_units:
            C = rng.standard_normal((int(n), 4)) * (self.modulation / 2.0)
            b = np.log(self.mean_count) + 0.3 * rng.standard_normal(int(n)) - 0.5 * np.sum(C**2, 1)
            readouts.append((C, b))
        self.A_, self.Q_, self.eigenvalues_, self.readout_, self.n_units_ = A, Q, eig, G, n_units
        self._readouts = readouts
        return self

    def sample(self) -> list[dict]:
        """Simulate every session.

        Returns
        -------
        list of dict
            Per session: ``session_id`` ("sim0", ...), ``counts`` (T, N_s)
            (int32 for Poisson, float64 for Gaussian noise), ``latents`` (T, 4),
            ``velocity`` (T, 2) cm/s at bin centres, ``bin_size`` (s).

        Raises
        ------
        NotFittedError
            Before :meth:`init_params`.
        """
        check_fitted(self)
        T = int(self.n_bins)
        L = np.linalg.cholesky(self.Q_ + 1e-12 * np.eye(4))
        out = []
        for s, (C, b) in enumerate(self._readouts):
            rng = np.random.default_rng([int(self.seed), 11, s])
            w = rng.standard_normal((T, 4)) @ L.T
            x = np.empty((T, 4))
            x[0] = rng.standard_normal(4)
            for t in range(1, T):
                x[t] = self.A_ @ x[t - 1] + w[t]
            eta = x @ C.T + b
            if self.noise == "poisson":
                counts = rng.poisson(np.exp(eta)).astype(np.int32)
            else:
                counts = np.logaddexp(0.0, eta) + 0.3 * rng.standard_normal(eta.shape)
            vel = x @ self.readout_.T + self.velocity_noise * rng.standard_normal((T, 2))
            out.append({"session_id": f"sim{s}", "counts": counts, "latents": x, "velocity": vel,
                        "bin_size": float(self.bin_size)})
        return out
