"""Ground truth for spike-token decoders: cosine-tuned Poisson units driven by an OU velocity.

:class:`ReachSimulator` draws a 2-d hand velocity from an Ornstein-Uhlenbeck
process and a population of cosine-tuned (log-linear) Poisson units whose
firing leads the velocity by a fixed lag, as in motor cortex. Spikes are drawn
in continuous time (1 ms resolution, uniform inside the millisecond), so a
decoder that reads spike times (POSSM, POYO) and one that reads binned counts
(ridge, Kalman, GRU) see the same data. A second session keeps 70 % of the
units of the first (same ids, same tuning), drops the rest and adds new ones,
the setting of unit-identification fine-tuning (Azabou et al. 2023, §3.4;
POSSM, NeurIPS 2025, §3.3).

References
----------
Georgopoulos, Schwartz & Kettner (1986) Neuronal population coding of movement
direction. Science 233, 1416-1419 (cosine tuning).
Moran & Schwartz (1999) Motor cortical representation of speed and direction
during reaching. J Neurophysiol 82, 2676-2692 (activity leads movement by ~100 ms).
Uhlenbeck & Ornstein (1930) On the theory of the Brownian motion. Phys Rev 36, 823.
"""

from __future__ import annotations

import numpy as np

from ncli.core.errors import ParameterError
from ncli.models.base import Estimator, check_fitted, check_params
from ncli.simulators.ou import ornstein_uhlenbeck
from ncli.simulators.session import SimulatedSession


class ReachSimulator(Estimator):
    """Cosine-tuned Poisson population driven by an Ornstein-Uhlenbeck velocity.

    Model, for unit ``i`` with preferred direction ``d_i`` (unit vector),
    depth ``k_i`` and baseline ``a_i``::

        dv = -v/τ dt + σ √(2/τ) dW                      (v: 2-d velocity, cm/s; stationary SD σ)
        λ_i(t) = exp(a_i + k_i · d_i·v(t + lag) / σ - k_i²/2)   (Hz)

    so the mean rate of unit ``i`` is about ``exp(a_i)`` and its firing leads
    the velocity by ``lag`` seconds. Spikes are drawn with probability
    ``λ dt`` in each 1 ms step (at most one per step), at a uniform time inside
    the step. Session 0 has ``n_units`` units (ids ``u000``...); each later
    session keeps a random ``1 - drop_fraction`` of session 0's units (same ids
    and tuning) and adds ``new_units`` units with new ids (``n<s>_000``...).
    Each session has its own velocity trajectory.

    Parameters
    ----------
    n_units : int
        Units of session 0.
    n_sessions : int
        Number of sessions (>= 1).
    drop_fraction : float
        Fraction of session 0's units absent from each later session, in [0, 1).
    new_units : int
        New units added to each later session.
    tau : float
        OU time constant (s).
    speed : float
        Stationary SD of each velocity component σ (cm/s).
    lag : float
        Lead of the neurons over the velocity (s, >= 0).
    rate_range : (float, float)
        Range of the units' mean rates ``exp(a_i)`` (Hz, log-uniform).
    depth_range : (float, float)
        Range of the modulation depths ``k_i`` (uniform).
    behavior_rate : float
        Sampling rate of the written velocity (Hz).
    seed : int

    Attributes
    ----------
    preferred_ : (U, 2) float64
        Preferred direction of every unit of every session (``U`` = all distinct units).
    depth_ : (U,) float64
    log_rate_ : (U,) float64
        ``a_i``.
    unit_ids_ : (U,) str
        Not saved by ``to_group`` (they follow from the hyperparameters).
    session_units_ : (n_sessions, U) bool
        Which units each session records.
    """

    model_id = "ncli/sim-reach@1"
    _learned = ("preferred_", "depth_", "log_rate_", "session_units_")

    def __init__(self, n_units: int = 100, n_sessions: int = 2, drop_fraction: float = 0.3,
                 new_units: int = 20, tau: float = 0.4, speed: float = 10.0, lag: float = 0.08,
                 rate_range=(2.0, 20.0), depth_range=(0.3, 0.9), behavior_rate: float = 100.0,
                 seed: int = 0):
        self.n_units = n_units
        self.n_sessions = n_sessions
        self.drop_fraction = drop_fraction
        self.new_units = new_units
        self.tau = tau
        self.speed = speed
        self.lag = lag
        self.rate_range = tuple(rate_range)
        self.depth_range = tuple(depth_range)
        self.behavior_rate = behavior_rate
        self.seed = seed
        self.unit_ids_ = None
        for name in self._learned:
            setattr(self, name, None)

    def init_params(self) -> "ReachSimulator":
        """Draw the units' tuning and each session's unit set from ``seed``.

        Returns
        -------
        self

        Raises
        ------
        UsageError
            Invalid hyperparameters.
        """
        check_params([
            (self.n_units >= 2, f"{{n_units}} must be at least 2, got {self.n_units}", "n_units"),
            (self.n_sessions >= 1, f"{{n_sessions}} must be at least 1, got {self.n_sessions}", "n_sessions"),
            (0 <= self.drop_fraction < 1, f"{{drop_fraction}} must be in [0, 1), got {self.drop_fraction}",
             "drop_fraction"),
            (self.new_units >= 0, f"{{new_units}} must be >= 0, got {self.new_units}", "new_units"),
            (self.tau > 0, f"{{tau}} must be > 0 s, got {self.tau}", "tau"),
            (self.speed > 0, f"{{speed}} must be > 0, got {self.speed}", "speed"),
            (self.lag >= 0, f"{{lag}} must be >= 0 s, got {self.lag}", "lag"),
            (0 < self.rate_range[0] <= self.rate_range[1], "rate range must be positive and ordered", "rate_range"),
        ])
        rng = np.random.default_rng([int(self.seed), 7])
        n0, S, n_new = int(self.n_units), int(self.n_sessions), int(self.new_units)
        U = n0 + (S - 1) * n_new
        ang = rng.uniform(0, 2 * np.pi, U)
        self.preferred_ = np.column_stack([np.cos(ang), np.sin(ang)])
        self.depth_ = rng.uniform(*self.depth_range, U)
        self.log_rate_ = rng.uniform(np.log(self.rate_range[0]), np.log(self.rate_range[1]), U)
        ids = [f"u{i:03d}" for i in range(n0)]
        member = np.zeros((S, U), dtype=bool)
        member[0, :n0] = True
        n_keep = int(round(n0 * (1 - self.drop_fraction)))
        for s in range(1, S):
            keep = np.sort(rng.choice(n0, size=n_keep, replace=False))
            member[s, keep] = True
            start = n0 + (s - 1) * n_new
            member[s, start:start + n_new] = True
            ids += [f"n{s}_{j:03d}" for j in range(n_new)]
        self.unit_ids_ = np.array(ids)
        self.session_units_ = member
        return self

    def sample(self, duration: float) -> list[SimulatedSession]:
        """Simulate every session for ``duration`` seconds (from t = 0).

        Returns
        -------
        list of SimulatedSession
            Sessions ``reach0, reach1, ...`` with spike times, behaviour
            ``velocity`` (cm/s, ``behavior_rate`` Hz) and one epoch.
            ``counts`` and ``latents`` are empty (the store bins the spikes).

        Raises
        ------
        NotFittedError
            Before :meth:`init_params`.
        ParameterError
            ``duration`` shorter than 2 s.
        """
        check_fitted(self)
        if not duration >= 2.0:
            raise ParameterError("duration", f"{{duration}} must be at least 2 s, got {duration}")
        dt = 1e-3
        n_lag = int(round(self.lag / dt))
        out = []
        for s in range(int(self.n_sessions)):
            rng = np.random.default_rng([int(self.seed), 11, s])
            v = ornstein_uhlenbeck(rng, int(round((duration + self.lag) / dt)) + 1, self.tau, dt, n_dims=2,
                                   sd=self.speed)  # exact AR(1) recursion
            n = int(round(duration / dt))
            drive = v[n_lag:n_lag + n] / self.speed  # v(t + lag) on the 1 ms grid
            units = np.flatnonzero(self.session_units_[s])
            spikes = []
            for u in units:
                k = self.depth_[u]
                lam = np.exp(self.log_rate_[u] + k * (drive @ self.preferred_[u]) - 0.5 * k * k)
                steps = np.flatnonzero(rng.random(n) < np.minimum(lam * dt, 1.0))
                spikes.append(np.sort((steps + rng.random(steps.size)) * dt))
            step_b = int(round(1.0 / (self.behavior_rate * dt)))
            idx = np.arange(0, n, step_b)
            out.append(SimulatedSession(
                session_id=f"reach{s}", ids=self.unit_ids_[units], areas=np.array(["M1"] * units.size),
                spike_times=spikes, counts=np.zeros((0, units.size), dtype=np.int32),
                latents=np.zeros((0, 2)), t_start=0.0, bin_size=dt,
                behavior={"velocity": {"timestamps": idx * dt, "data": v[idx], "unit": "cm/s",
                                       "columns": ["x", "y"]}},
                trials={}, epochs=np.array([[0.0, n * dt]]),
            ))
        return out
