"""Ground-truth generators for testing models on data with known structure.

:class:`PoissonLDS` draws a Poisson linear-dynamical-system population: a
latent state evolving with known linear dynamics, spike counts of ``N`` units
whose log-rates are linear in the latent, and a 2-d velocity read out
linearly from the latent. Later generators (CANDY, NuCLR, ...) live here too.

Simulators are estimators whose "learned" attributes are the drawn ground
truth, so they are saved to a store (``models/truth``) like any fitted model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ncli.core.errors import UsageError
from ncli.models.base import Estimator, check_fitted, check_params


@dataclass
class SimulatedSession:
    """One simulated recording, as plain arrays.

    Attributes
    ----------
    session_id : str
    ids : (N,) str
        Unit ids ("0", "1", ...).
    areas : (N,) str
        Brain area of each unit.
    spike_times : list of (S_u,) float64
        Sorted spike times (s) of each unit; each spike lies strictly inside its bin.
    counts : (T, N) int32
        Spike counts on the simulation grid.
    latents : (T, K) float64
        True latent state at each bin.
    t_start : float
        Left edge of the first bin (s).
    bin_size : float
        Bin width (s).
    behavior : dict
        ``name -> {"timestamps": (Tb,), "data": (Tb, D), "unit": str, "columns": [..]}``.
    trials : dict
        ``column -> (n_trials,)`` with ``start_time``, ``stop_time``, ``condition``.
    epochs : (1, 2) float64
        The recorded epoch ``[t_start, t_stop]`` (s).
    """

    session_id: str
    ids: np.ndarray
    areas: np.ndarray
    spike_times: list
    counts: np.ndarray
    latents: np.ndarray
    t_start: float
    bin_size: float
    behavior: dict = field(default_factory=dict)
    trials: dict = field(default_factory=dict)
    epochs: np.ndarray | None = None


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
            (self.n_units >= 2, f"--units must be at least 2, got {self.n_units}", "--units"),
            (self.latent_dim >= 1, f"--latent-dim must be at least 1, got {self.latent_dim}", "--latent-dim"),
            (self.latent_dim <= self.n_units, f"--latent-dim {self.latent_dim} exceeds --units {self.n_units}",
             "--latent-dim"),
            (self.bin_size > 0, f"--bin-size must be > 0 s, got {self.bin_size}", "--bin-size"),
            (self.baseline_rate > 0, f"--baseline-rate must be > 0 Hz, got {self.baseline_rate}", "--baseline-rate"),
            (self.n_sessions >= 1, f"--sessions must be at least 1, got {self.n_sessions}", "--sessions"),
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
        UsageError
            A duration shorter than 10 bins.
        """
        check_fitted(self)
        dt = float(self.bin_size)
        T = int(np.floor(duration / dt + 1e-9))
        if T < 10:
            raise UsageError(f"--duration {duration} s is shorter than 10 bins of {dt} s", "--duration")
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
            (self.n_sessions >= 1, f"--sessions must be at least 1, got {self.n_sessions}", "--sessions"),
            (self.n_bins >= 50, f"--bins must be at least 50, got {self.n_bins}", "--bins"),
            (self.bin_size > 0, f"--bin-size must be > 0 s, got {self.bin_size}", "--bin-size"),
            (self.mean_count > 0, f"--mean-count must be > 0, got {self.mean_count}", "--mean-count"),
            (self.noise in ("poisson", "gaussian"), f"invalid value '{self.noise}' for --noise", "--noise"),
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


# ----------------------------------------------------------------------------- NuCLR (neuron identity)


class NuclrSimulator(Estimator):
    """Typed neurons in three regions, identifiable only through their population context.

    Every session has its own latent paths (Ornstein-Uhlenbeck processes, unit
    variance): a global latent ``g`` (τ 0.5 s) shared by all units, one
    latent ``r_k`` per region with its own dynamics (``R0``: a damped 4 Hz
    rhythm, τ 0.5 s; ``R1``: fast, τ 0.15 s; ``R2``: slow, τ 1.5 s), 16
    assembly latents ``a_j`` (τ 0.3 s) and one private latent per unit (τ 0.5 s,
    the same dynamics as ``g``). Every unit reads its region's latent with
    weight ``REGION_W`` (0.7); its cell type ``T0``-``T3`` fixes how the rest
    of its drive (weight 0.71) splits between the global and its private latent,
    i.e. its *coupling to the population*:

    - ``T0`` chorister: global weight ``+0.9 × 0.71``, the rest private;
    - ``T1`` weakly coupled: global weight ``+0.45 × 0.71``;
    - ``T2`` anti-phase: global weight ``-0.9 × 0.71`` (suppressed when the population is active);
    - ``T3`` soloist: no global weight (private latent only);

    each coefficient jittered by ±15 % per unit (weights before the assemblies
    below are added; the summed drive is then rescaled to unit variance). Every
    mix has unit variance and
    (since ``g`` and the private latents share their dynamics) the same
    autocorrelation whatever the type. On top, each unit reads two random
    assemblies (weights ±U(0.3, 0.6)) and has an individual baseline rate
    (log-normal, SD 0.8), an individual coupling strength (gain × log-normal,
    SD 0.3) and an individual spike-history kernel (recovery time constant,
    burst strength): the unit's own identity.

    Spiking is a Bernoulli process on a 5 ms grid with conditional intensity
    ``λ_u(t) = b_u exp(gain_u · m_u(t) + Σ_k h_u[k] s_u(t-k))``, where
    ``m_u`` is the unit's latent mix. In the easy variant types also differ in
    baseline rate, gain and spike history (refractory for T0/T2, bursty for
    T1/T3). With ``hard=True`` every type draws its rate, gain and refractory
    history from the same distributions, so firing-rate, ISI and
    autocorrelogram distributions are the same for all types: only the
    coupling to the rest of the population tells them apart (the hand-crafted
    features of ``embed --method features`` are at chance for type).

    Parameters
    ----------
    n_sessions : int
        Number of sessions (independent latent paths and units).
    min_units, max_units : int
        Units per session are drawn uniformly in ``[min_units, max_units]``.
    duration : float
        Length of each session (s).
    hard : bool
        The hard variant (see above).
    seed : int

    Attributes
    ----------
    n_units_ : (n_sessions,) int64
        Units per session.
    history_ : (4, 8) float64
        Typical spike-history kernel of each type (log-rate change 5-40 ms after a
        spike); each unit's own kernel varies around it.
    base_rate_ : (4,) float64
        Median baseline rate of each type (Hz).
    gain_ : (4,) float64
        Gain of each type.
    coupling_ : (4, 3) float64
        Loadings of each type on (global, region, private) latents.

    References
    ----------
    NuCLR: "Know Thyself by Knowing Others: Learning Neuron Identity from
    Population Context", NeurIPS 2025 (neuron identity as a function of the
    unit's relation to its population; types by coupling and dynamics,
    regions by their inputs).
    """

    model_id = "ncli/sim-nuclr@1"
    _learned = ("n_units_", "history_", "base_rate_", "gain_", "coupling_")
    DT = 0.005
    N_TYPES = 4
    N_ASSEMBLIES = 16
    REGIONS = ("R0", "R1", "R2")
    REGION_TAU = (0.5, 0.15, 1.5)
    RHYTHM_HZ = 4.0
    ASSEMBLY_W = (0.3, 0.6)
    REGION_W = 0.7

    def __init__(self, n_sessions: int = 4, min_units: int = 60, max_units: int = 150,
                 duration: float = 300.0, hard: bool = False, seed: int = 0):
        self.n_sessions = n_sessions
        self.min_units = min_units
        self.max_units = max_units
        self.duration = duration
        self.hard = hard
        self.seed = seed
        for name in self._learned:
            setattr(self, name, None)

    def _check(self) -> None:
        if self.n_sessions < 1:
            raise UsageError(f"--sessions must be at least 1, got {self.n_sessions}", "--sessions")
        if not 4 <= self.min_units <= self.max_units:
            raise UsageError(f"units per session must satisfy 4 <= min <= max, got {self.min_units}, "
                             f"{self.max_units}", "--units")
        if not self.duration >= 20.0:
            raise UsageError(f"--duration must be at least 20 s, got {self.duration:g}", "--duration")

    def init_params(self) -> "NuclrSimulator":
        """Draw the per-type parameters and the number of units per session."""
        self._check()
        rng = np.random.default_rng([int(self.seed), 71])
        self.n_units_ = rng.integers(self.min_units, self.max_units + 1, self.n_sessions).astype(np.int64)
        lag = np.arange(1, 9)
        refractory = -6.0 * np.exp(-(lag - 1) / 1.5)
        bursty = np.where(lag == 1, -4.0, 1.6 * np.exp(-((lag - 3.5) ** 2) / 2.0))
        wr = self.REGION_W
        rest = np.sqrt(1 - wr ** 2)
        glob = np.array([0.9, 0.45, -0.9, 0.0])  # global coefficient, as a fraction of the non-regional weight
        mix = np.stack([glob * rest, np.full(4, wr), np.sqrt(1 - glob ** 2) * rest], 1)
        self.coupling_ = mix / np.linalg.norm(mix, axis=1, keepdims=True)
        if self.hard:
            self.history_ = np.tile(refractory, (4, 1))
            self.base_rate_ = np.full(4, 8.0)
            self.gain_ = np.full(4, 0.8)
        else:
            self.history_ = np.stack([refractory, bursty, refractory, bursty])
            self.base_rate_ = np.array([6.0, 4.0, 12.0, 8.0])
            self.gain_ = np.array([0.8, 1.0, 0.7, 0.6])
        return self

    def _unit_history(self, rng, ctype: np.ndarray) -> np.ndarray:
        """(n, 8) individual spike-history kernels: recovery time and burst strength vary from unit to unit.

        Refractory units recover with a time constant of U(1, 2.5) grid steps; bursty
        units (easy variant, T1/T3) have a burst bump scaled by U(0.6, 1.4). The
        distributions do not depend on the type beyond refractory vs bursty.
        """
        lag = np.arange(1, 9)
        n = ctype.size
        tau = rng.uniform(1.0, 2.5, n)
        amp = rng.uniform(0.6, 1.4, n)
        refractory = -6.0 * np.exp(-(lag[None, :] - 1) / tau[:, None])
        bursty = np.where(lag[None, :] == 1, -4.0, amp[:, None] * 1.6 * np.exp(-((lag[None, :] - 3.5) ** 2) / 2.0))
        is_bursty = self.history_[ctype, 1] > 0
        return np.where(is_bursty[:, None], bursty, refractory)

    @staticmethod
    def _ou(rng, T: int, taus: np.ndarray, dt: float) -> np.ndarray:
        """(T, len(taus)) unit-variance Ornstein-Uhlenbeck paths."""
        a = np.exp(-dt / np.asarray(taus, float))
        noise = rng.standard_normal((T, a.size)) * np.sqrt(1 - a ** 2)
        z = np.empty((T, a.size))
        z[0] = rng.standard_normal(a.size)
        for t in range(1, T):
            z[t] = a * z[t - 1] + noise[t]
        return z

    @staticmethod
    def _rhythm(rng, T: int, freq: float, tau: float, dt: float) -> np.ndarray:
        """(T,) unit-variance damped oscillation (stochastically driven rotation at ``freq`` Hz)."""
        a, w = np.exp(-dt / tau), 2 * np.pi * freq * dt
        R = a * np.array([[np.cos(w), -np.sin(w)], [np.sin(w), np.cos(w)]])
        noise = rng.standard_normal((T, 2)) * np.sqrt(1 - a ** 2)
        z = np.empty((T, 2))
        z[0] = rng.standard_normal(2)
        for t in range(1, T):
            z[t] = R @ z[t - 1] + noise[t]
        return z[:, 0]

    def sample(self) -> list[dict]:
        """Simulate every session.

        Returns
        -------
        list of dict
            Per session: ``session_id``, ``ids`` (N,), ``areas`` (N,) str,
            ``cell_type`` (N,) str, ``spike_times`` list of (S_u,) float64 (s),
            ``latents`` (T5, 4) float32 on the 5 ms grid (global, R0, R1, R2),
            ``duration`` (s).

        Raises
        ------
        NotFittedError
            Before :meth:`init_params`.
        """
        check_fitted(self)
        out = []
        dt = self.DT
        T = int(round(self.duration / dt))
        A = self.N_ASSEMBLIES
        for s in range(self.n_sessions):
            rng = np.random.default_rng([int(self.seed), 72, s])
            n = int(self.n_units_[s])
            shared = self._ou(rng, T, np.array([0.5, *self.REGION_TAU]), dt)  # global, R0, R1, R2
            shared[:, 1] = self._rhythm(rng, T, self.RHYTHM_HZ, self.REGION_TAU[0], dt)
            assemblies = self._ou(rng, T, np.full(A, 0.3), dt)
            region = rng.integers(0, 3, n)
            ctype = rng.integers(0, 4, n)
            coef = self.coupling_[ctype] * rng.uniform(0.85, 1.15, (n, 3))
            W = np.zeros((n, 4 + A))
            W[:, 0] = coef[:, 0]
            W[np.arange(n), 1 + region] = coef[:, 1]
            for u in range(n):  # two assemblies per unit: its individual signature
                W[u, 4 + rng.choice(A, 2, replace=False)] = rng.choice([-1, 1], 2) * rng.uniform(*self.ASSEMBLY_W, 2)
            private = np.flatnonzero(coef[:, 2] > 0)
            drive = np.concatenate([shared, assemblies], 1) @ W.T  # (T, n)
            if private.size:
                drive[:, private] += self._ou(rng, T, np.full(private.size, 0.5), dt) * coef[private, 2]
            drive /= np.sqrt((W ** 2).sum(1) + coef[:, 2] ** 2)  # unit variance whatever the mix
            # individual coupling strength to the population (same spread for every type)
            gain = self.gain_[ctype] * np.exp(np.clip(0.3 * rng.standard_normal(n), -0.6, 0.6))
            rate = self.base_rate_[ctype] * np.exp(np.clip(0.8 * rng.standard_normal(n), -1.6, 1.6))
            logb = np.log(rate * dt) - 0.5 * gain ** 2  # mean rate ≈ rate whatever the gain
            drive *= gain
            H = self._unit_history(rng, ctype)  # (n, 8)
            S = np.zeros((T, n), dtype=np.int8)
            u = rng.random((T, n))
            hist = np.zeros((8, n))  # hist[k] = spike at t-1-k
            for t in range(T):
                eta = logb + drive[t] + np.einsum("kn,nk->n", hist, H)
                p = -np.expm1(-np.exp(np.minimum(eta, 1.0)))
                spk = u[t] < p
                S[t] = spk
                hist = np.roll(hist, 1, axis=0)
                hist[0] = spk
            jitter = rng.uniform(0.05, 0.95, (T, n))
            spikes = [np.sort((np.flatnonzero(S[:, k]) + jitter[S[:, k] > 0, k]) * dt) for k in range(n)]
            out.append({"session_id": f"sim{s}", "ids": np.array([str(k) for k in range(n)]),
                        "areas": np.array([self.REGIONS[r] for r in region]),
                        "cell_type": np.array([f"T{c}" for c in ctype]), "spike_times": spikes,
                        "latents": shared.astype(np.float32), "duration": float(self.duration)})
        return out
