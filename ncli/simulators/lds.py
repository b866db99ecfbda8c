"""Poisson linear-dynamical-system population with a linear behavioural readout (``ncli simulate lds``).

:class:`PoissonLDS` draws a latent state evolving with known linear dynamics,
spike counts of ``N`` units whose log-rates are linear in the latent, and a
2-d velocity read out linearly from the latent.

Simulators are estimators whose "learned" attributes are the drawn ground
truth, so they are saved to a store (``models/truth``) like any fitted model.
"""

from __future__ import annotations

import numpy as np

from ncli.core.errors import ParameterError
from ncli.models.base import Estimator, check_fitted, check_params
from ncli.simulators.session import SimulatedSession


class PoissonLDS(Estimator):
    """Poisson linear dynamical system with a linear behavioural readout.

    Model, for bin ``t`` of width ``Δ`` (s) and session ``s``::

        x_{t+1} = A x_t + w_t,                 w_t ~ N(0, Q)
        n_t,i   ~ Poisson(Δ · exp(C_s,i · x_t + b_s,i))
        v(τ)    = G x(τ) + e(τ),                e ~ N(0, σ² I)   (cm/s, sampled at f_b Hz)

    ``A`` is block diagonal: 2x2 blocks ``r_j R(θ_j)`` (damped rotations at
    ``f_j`` Hz with time constant ``τ_j`` s; ``r_j = exp(-Δ/τ_j)``,
    ``θ_j = 2π f_j Δ``), plus one real decay when K is odd. ``Q = (1 - r²)`` per
    block makes the stationary latent covariance the identity. The dynamics
    ``A`` and readout ``G`` are shared by all sessions; every session has its
    own units (``C_s``, ``b_s``) and latent trajectory.

    Parameters
    ----------
    n_units : int
        Units per session N (first half area 'M1', second half 'PMd').
    latent_dim : int
        Latent dimension K.
    bin_size : float
        Simulation bin Δ (s).
    baseline_rate : float
        Geometric-mean firing rate (Hz) across units.
    n_sessions : int
    seed : int
        Seed of every random draw.
    modulation : float
        SD of each unit's log-rate driven by the latent.
    velocity_gain : float
        SD of each velocity component (cm/s).
    velocity_noise : float
        SD of the readout noise (cm/s).
    behavior_rate : float
        Sampling rate of the velocity (Hz).
    trial_length : float
        Length of the fixed trials (s).

    Attributes
    ----------
    A_ : (K, K) float64
    Q_ : (K, K) float64
    eigenvalues_ : (K, 2) float64
        Real and imaginary parts of the eigenvalues of ``A``.
    C_ : (n_sessions, N, K) float64
    b_ : (n_sessions, N) float64
    readout_ : (2, K) float64
        ``G`` (cm/s per latent unit).
    """

    model_id = "ncli/sim-lds@1"
    _learned = ("A_", "Q_", "eigenvalues_", "C_", "b_", "readout_")

    def __init__(self, n_units: int = 60, latent_dim: int = 4, bin_size: float = 0.02,
                 baseline_rate: float = 5.0, n_sessions: int = 1, seed: int = 0,
                 modulation: float = 0.8, velocity_gain: float = 10.0, velocity_noise: float = 0.5,
                 behavior_rate: float = 100.0, trial_length: float = 2.0):
        self.n_units = n_units
        self.latent_dim = latent_dim
        self.bin_size = bin_size
        self.baseline_rate = baseline_rate
        self.n_sessions = n_sessions
        self.seed = seed
        self.modulation = modulation
        self.velocity_gain = velocity_gain
        self.velocity_noise = velocity_noise
        self.behavior_rate = behavior_rate
        self.trial_length = trial_length
        for name in self._learned:
            setattr(self, name, None)

    def _check(self) -> None:
        checks = [
            (self.n_units >= 2, f"{{n_units}} must be at least 2, got {self.n_units}", "n_units"),
            (self.latent_dim >= 1, f"{{latent_dim}} must be at least 1, got {self.latent_dim}", "latent_dim"),
            (self.latent_dim <= self.n_units, f"{{latent_dim}} {self.latent_dim} exceeds {{n_units}} {self.n_units}",
             "latent_dim"),
            (self.bin_size > 0, f"{{bin_size}} must be > 0 s, got {self.bin_size}", "bin_size"),
            (self.baseline_rate > 0, f"{{baseline_rate}} must be > 0 Hz, got {self.baseline_rate}", "baseline_rate"),
            (self.n_sessions >= 1, f"{{n_sessions}} must be at least 1, got {self.n_sessions}", "n_sessions"),
            (self.behavior_rate > 0, f"behaviour rate must be > 0 Hz, got {self.behavior_rate}", "behavior_rate"),
        ]
        check_params(checks)

    def init_params(self) -> "PoissonLDS":
        """Draw the ground-truth parameters from ``seed``.

        Returns
        -------
        self

        Raises
        ------
        UsageError
            Invalid hyperparameters.
        """
        self._check()
        K, N, dt = int(self.latent_dim), int(self.n_units), float(self.bin_size)
        rng = np.random.default_rng([int(self.seed), 0])
        A = np.zeros((K, K))
        Q = np.zeros((K, K))
        eig = np.zeros((K, 2))
        n_rot = K // 2
        freqs = np.linspace(0.5, 2.0, n_rot) if n_rot > 1 else np.array([1.0])[:n_rot]
        taus = np.linspace(1.5, 0.75, n_rot) if n_rot > 1 else np.array([1.0])[:n_rot]
        for j in range(n_rot):
            r, th = np.exp(-dt / taus[j]), 2 * np.pi * freqs[j] * dt
            A[2 * j : 2 * j + 2, 2 * j : 2 * j + 2] = r * np.array([[np.cos(th), -np.sin(th)],
                                                                    [np.sin(th), np.cos(th)]])
            Q[2 * j : 2 * j + 2, 2 * j : 2 * j + 2] = (1 - r**2) * np.eye(2)
            eig[2 * j] = (r * np.cos(th), r * np.sin(th))
            eig[2 * j + 1] = (r * np.cos(th), -r * np.sin(th))
        if K % 2:
            r = np.exp(-dt / 0.5)
            A[-1, -1] = r
            Q[-1, -1] = 1 - r**2
            eig[-1] = (r, 0.0)
        C = rng.standard_normal((self.n_sessions, N, K)) * (self.modulation / np.sqrt(K))
        log_rate = np.log(self.baseline_rate) + 0.4 * rng.standard_normal((self.n_sessions, N))
        b = log_rate - 0.5 * np.sum(C**2, axis=2)  # mean rate exp(log_rate) under x ~ N(0, I)
        G = rng.standard_normal((2, K)) * (self.velocity_gain / np.sqrt(K))
        self.A_, self.Q_, self.eigenvalues_, self.C_, self.b_, self.readout_ = A, Q, eig, C, b, G
        return self

    def sample(self, duration: float, t_start: float = 0.0) -> list[SimulatedSession]:
        """Simulate every session for ``duration`` seconds.

        Parameters
        ----------
        duration : float
            Length of each session (s); ``T = floor(duration / bin_size)`` bins.
        t_start : float
            Time of the first bin edge (s).

        Returns
        -------
        list of SimulatedSession

        Raises
        ------
        NotFittedError
            Before :meth:`init_params`.
        ParameterError
            A duration shorter than 10 bins (parameter ``duration``).
        """
        check_fitted(self)
        dt = float(self.bin_size)
        T = int(np.floor(duration / dt + 1e-9))
        if T < 10:
            raise ParameterError("duration", f"{{duration}} {duration} s is shorter than 10 bins of {dt} s")
        t_stop = t_start + T * dt
        K, N = int(self.latent_dim), int(self.n_units)
        areas = np.array(["M1" if i < (N + 1) // 2 else "PMd" for i in range(N)])
        ids = np.array([str(i) for i in range(N)])
        edges = t_start + np.arange(T + 1) * dt
        centres = edges[:-1] + dt / 2
        out = []
        for s in range(int(self.n_sessions)):
            rng = np.random.default_rng([int(self.seed), 1, s])
            # latent trajectory (stationary start)
            L = np.linalg.cholesky(self.Q_ + 1e-15 * np.eye(K))
            noise = rng.standard_normal((T, K)) @ L.T
            x = np.empty((T, K))
            x[0] = rng.standard_normal(K)
            for t in range(1, T):
                x[t] = self.A_ @ x[t - 1] + noise[t]
            rates = np.exp(x @ self.C_[s].T + self.b_[s])  # Hz
            counts = rng.poisson(rates * dt).astype(np.int32)
            spikes = []
            for u in range(N):
                k = np.repeat(np.arange(T), counts[:, u])
                offs = rng.uniform(0.05, 0.95, size=k.size)
                spikes.append(np.sort(edges[k] + offs * dt))
            n_b = int(np.floor((t_stop - t_start) * self.behavior_rate + 1e-9)) + 1
            tb = t_start + np.arange(n_b) / self.behavior_rate
            xb = np.column_stack([np.interp(tb, centres, x[:, j]) for j in range(K)])
            vel = xb @ self.readout_.T + self.velocity_noise * rng.standard_normal((n_b, 2))
            n_trials = int(np.floor((t_stop - t_start) / self.trial_length + 1e-9))
            starts = t_start + np.arange(n_trials) * self.trial_length
            trials = {
                "start_time": starts,
                "stop_time": starts + self.trial_length,
                "condition": rng.integers(0, 8, size=n_trials).astype(np.int64),
            }
            out.append(SimulatedSession(
                session_id=f"sim{s}", ids=ids, areas=areas, spike_times=spikes, counts=counts,
                latents=x, t_start=float(t_start), bin_size=dt,
                behavior={"velocity": {"timestamps": tb, "data": vel, "unit": "cm/s", "columns": ["x", "y"]}},
                trials=trials, epochs=np.array([[t_start, t_stop]]),
            ))
        return out
