"""Ground truth for inpainting unrecorded areas: several areas of one chaotic rate RNN, partial recordings.

:class:`AreasSimulator` runs a rate RNN of ``n_areas`` areas of
``units_per_area`` units each (strong random coupling of gain ``gain``
inside an area, sparse weaker coupling between areas: the chaotic regime of
Sompolinsky, Crisanti & Sommers 1988 for gain > 1), in trials that start
from one of ``n_conditions`` condition-specific initial states (plus a small
per-trial perturbation, which chaos amplifies). Each of ``n_sessions``
sessions records Poisson neurons (20-60 per area) from all areas but 1-2
(the "missing" areas), each neuron reading out a random sparse combination
of its area's RNN units. This is the synthetic setting of NeuroPaint
(NeurIPS 2025, "Inpainting the Neural Picture"), rewritten from the paper's
description.

Model, for RNN state ``x`` (n_areas * units_per_area,) and time constant ``tau``::

    tau dx/dt = -x + J tanh(x)                    (Euler steps of dt = bin_size)
    J_ij ~ N(0, gain^2 / M) inside an area (M units), J_ij ~ N(0, g_between^2 / (p M)) w.p. p between areas
    log λ_n(t) = b_n + (w_n · tanh(x_area(t))) / sqrt(k)     (Hz; w_n: k non-zero N(0, readout^2) weights)
    counts ~ Poisson(λ_n · bin_size)

The ``low_rate`` variant lowers every baseline ``b_n`` by ``log(4)`` (a
quarter of the firing), the setting where the paper's GLM baseline beats
most NeuroPaint variants.

References
----------
Sompolinsky, Crisanti & Sommers (1988) Chaos in random neural networks. PRL 61, 259.
NeuroPaint: Inpainting the Neural Picture: Inferring Unrecorded Brain Area Dynamics from
Multi-Animal Datasets (NeurIPS 2025).
"""

from __future__ import annotations

import numpy as np

from ncli.models.base import Estimator, check_fitted, check_params
from ncli.simulators.session import SimulatedSession


def area_names(n_areas: int) -> list[str]:
    """Area labels ``area0``, ``area1``, ... of the simulator (``units/area`` values)."""
    return [f"area{a}" for a in range(int(n_areas))]


class AreasSimulator(Estimator):
    """A multi-area chaotic rate RNN recorded by sessions that each miss 1-2 areas.

    Parameters
    ----------
    n_areas : int
        Areas (>= 2).
    units_per_area : int
        RNN units per area (>= 10).
    gain : float
        Within-area coupling gain (> 1: chaotic).
    between_gain : float
        Gain of the sparse between-area coupling.
    between_density : float
        Fraction of non-zero between-area weights, in (0, 1].
    n_sessions : int
    neurons_range : (int, int)
        Fewest and most recorded neurons per session and area.
    missing_range : (int, int)
        Fewest and most missing areas per session (at most ``n_areas - 2``).
    n_conditions : int
        Initial states; trials of one condition share it up to ``trial_noise``.
    n_trials : int
        Trials per session.
    n_bins : int
        Bins per trial.
    bin_size : float
        Bin width (s), also the Euler step.
    tau : float
        RNN time constant (s).
    baseline_rate : float
        Typical firing rate (Hz) at zero drive.
    low_rate : bool
        Quarter every baseline (the low-firing-rate variant).
    seed : int

    Attributes
    ----------
    J_ : (U, U) float64
        Coupling matrix, U = n_areas * units_per_area.
    x0_ : (n_conditions, U) float64
        Initial state of each condition.
    missing_ : (n_sessions, n_areas) bool
        Areas not recorded by each session.
    """

    model_id = "ncli/sim-areas@1"
    _learned = ("J_", "x0_", "missing_")

    def __init__(self, n_areas: int = 5, units_per_area: int = 200, gain: float = 3.0, between_gain: float = 1.5,
                 between_density: float = 0.1, n_sessions: int = 10, neurons_range=(20, 60),
                 missing_range=(1, 2), n_conditions: int = 8, n_trials: int = 48, n_bins: int = 50,
                 bin_size: float = 0.02, tau: float = 0.2, baseline_rate: float = 8.0, readout: float = 1.2,
                 trial_noise: float = 0.1, low_rate: bool = False, seed: int = 0):
        self.n_areas = n_areas
        self.units_per_area = units_per_area
        self.gain = gain
        self.between_gain = between_gain
        self.between_density = between_density
        self.n_sessions = n_sessions
        self.neurons_range = tuple(neurons_range)
        self.missing_range = tuple(missing_range)
        self.n_conditions = n_conditions
        self.n_trials = n_trials
        self.n_bins = n_bins
        self.bin_size = bin_size
        self.tau = tau
        self.baseline_rate = baseline_rate
        self.readout = readout
        self.trial_noise = trial_noise
        self.low_rate = low_rate
        self.seed = seed
        self.J_ = self.x0_ = self.missing_ = None

    def init_params(self) -> AreasSimulator:
        """Draw the coupling, the condition initial states and each session's missing areas from ``seed``.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Invalid hyperparameters (the message names the parameter).
        """
        lo, hi = self.missing_range
        check_params([
            (self.n_areas >= 2, f"{{n_areas}} must be at least 2, got {self.n_areas}", "n_areas"),
            (self.units_per_area >= 10, f"{{units_per_area}} must be at least 10, got {self.units_per_area}",
             "units_per_area"),
            (self.n_sessions >= 1, f"{{n_sessions}} must be at least 1, got {self.n_sessions}", "n_sessions"),
            (self.n_trials >= 2, f"{{n_trials}} must be at least 2, got {self.n_trials}", "n_trials"),
            (self.n_bins >= 4, f"{{n_bins}} must be at least 4, got {self.n_bins}", "n_bins"),
            (self.n_conditions >= 1, f"{{n_conditions}} must be at least 1, got {self.n_conditions}",
             "n_conditions"),
            (self.bin_size > 0, f"{{bin_size}} must be > 0 s, got {self.bin_size}", "bin_size"),
            (self.tau >= self.bin_size, f"{{tau}} must be at least the bin size, got {self.tau}", "tau"),
            (self.baseline_rate > 0, f"{{baseline_rate}} must be > 0 Hz, got {self.baseline_rate}",
             "baseline_rate"),
            (0 < self.between_density <= 1, f"{{between_density}} must be in (0, 1], got {self.between_density}",
             "between_density"),
            (1 <= self.neurons_range[0] <= self.neurons_range[1], "{neurons_range} must be positive and ordered",
             "neurons_range"),
            (0 <= lo <= hi <= self.n_areas - 2, f"{{missing_range}} must be ordered within 0..{self.n_areas - 2}",
             "missing_range"),
        ])
        rng = np.random.default_rng([int(self.seed), 71])
        A, M = int(self.n_areas), int(self.units_per_area)
        U = A * M
        J = np.zeros((U, U))
        for a in range(A):
            for b in range(A):
                blk = (slice(a * M, (a + 1) * M), slice(b * M, (b + 1) * M))
                if a == b:
                    J[blk] = rng.normal(0, self.gain / np.sqrt(M), (M, M))
                else:
                    mask = rng.random((M, M)) < self.between_density
                    J[blk] = mask * rng.normal(0, self.between_gain / np.sqrt(self.between_density * M), (M, M))
        self.J_ = J
        self.x0_ = rng.normal(0, 1.0, (int(self.n_conditions), U))
        missing = np.zeros((int(self.n_sessions), A), dtype=bool)
        for s in range(int(self.n_sessions)):
            k = int(rng.integers(lo, hi + 1))
            missing[s, rng.choice(A, k, replace=False)] = True
        self.missing_ = missing
        return self

    def run_rnn(self, x0: np.ndarray, n_bins: int, burn_in: int = 10) -> np.ndarray:
        """Euler-integrate the RNN from initial states ``x0`` (n, U); returns tanh(x) (n, n_bins, U).

        The first ``burn_in`` steps are discarded.
        """
        check_fitted(self)
        a = self.bin_size / self.tau
        x = np.array(np.atleast_2d(x0), dtype=np.float64)
        out = np.empty((x.shape[0], n_bins, x.shape[1]))
        for t in range(burn_in + n_bins):
            x = x + a * (-x + np.tanh(x) @ self.J_.T)
            if t >= burn_in:
                out[:, t - burn_in] = np.tanh(x)
        return out

    def sample(self) -> tuple[list[SimulatedSession], list[np.ndarray]]:
        """Simulate every session: trials laid end to end, neurons of the recorded areas.

        Returns
        -------
        sessions : list of SimulatedSession
            ``s0, s1, ...``: ``counts`` (T, N) int32, ``T = n_trials * n_bins``; ``areas`` (N,) the area
            of each neuron; trials ``start_time``, ``stop_time``, ``condition``; ``latents`` (T, A) the
            mean tanh activity of each area; ``spike_times`` empty.
        rates : list of (T, N) float64
            The true rate of every recorded neuron (Hz), for the true-rate ceiling.

        Raises
        ------
        NotFittedError
            Before :meth:`init_params`.
        """
        check_fitted(self)
        A, M, B, dt = int(self.n_areas), int(self.units_per_area), int(self.n_bins), float(self.bin_size)
        names = area_names(A)
        base = np.log(self.baseline_rate) - (np.log(4.0) if self.low_rate else 0.0)
        sessions, rates = [], []
        for s in range(int(self.n_sessions)):
            rng = np.random.default_rng([int(self.seed), 73, s])
            cond = rng.integers(0, int(self.n_conditions), int(self.n_trials))
            x0 = self.x0_[cond] + self.trial_noise * rng.normal(0, 1, (cond.size, self.x0_.shape[1]))
            R = self.run_rnn(x0, B).reshape(cond.size * B, -1)  # (T, U), trials laid end to end
            lam, areas = [], []
            for a in range(A):
                if self.missing_[s, a]:
                    continue
                n = int(rng.integers(self.neurons_range[0], self.neurons_range[1] + 1))
                k = 10
                W = np.zeros((M, n))
                for j in range(n):
                    W[rng.choice(M, k, replace=False), j] = rng.normal(0, self.readout, k)
                b = base + rng.normal(0, 0.3, n)
                lam.append(np.exp(b[None, :] + R[:, a * M:(a + 1) * M] @ W / np.sqrt(k)))
                areas += [names[a]] * n
            lam = np.concatenate(lam, axis=1)
            counts = rng.poisson(lam * dt).astype(np.int32)
            n_tr, T = cond.size, cond.size * B
            start = np.arange(n_tr) * B * dt
            latents = np.column_stack([R[:, a * M:(a + 1) * M].mean(1) for a in range(A)])
            sessions.append(SimulatedSession(
                session_id=f"s{s}", ids=np.array([str(j) for j in range(lam.shape[1])]), areas=np.array(areas),
                spike_times=[], counts=counts, latents=latents, t_start=0.0, bin_size=dt,
                trials={"start_time": start, "stop_time": start + B * dt, "condition": cond.astype(np.int64)},
                epochs=np.array([[0.0, T * dt]])))
            rates.append(lam)
        return sessions, rates
