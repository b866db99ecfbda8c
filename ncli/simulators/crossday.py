"""Ground truth for cross-day decoding: one electrode array recorded on several days, with instabilities.

:class:`CrossDaySimulator` records a centre-out task (``n_directions`` targets,
``n_trials`` trials each, ``n_bins`` bins per trial) from ``n_channels``
channels of a chronic array. Every channel of day 0 carries one cosine-tuned
Poisson unit. Each later day applies a planted instability to the array, the
setting of CRRL (NeurIPS 2025) and of the stabiliser of Degenhart et al. (2020):

- ``shuffle``: a fraction of the channels is permuted among itself (electrode
  shifts, re-referencing): channel ``j`` of the day records day-0 unit ``perm[j]``;
- ``lost``: a fraction of the channels goes silent (lost neurons), and a
  fraction records a new unit with new tuning;
- ``tuning``: a fraction of the units changes its preferred direction and depth;
- ``mixed``: all three at once.

Kinematics are the same on every day: a minimum-jerk reach of peak speed
``speed`` toward the trial's target, so a decoder fitted on day 0 is exact on
day 0's statistics and only the array changes.

References
----------
Georgopoulos, Schwartz & Kettner (1986) Science 233, 1416-1419 (cosine tuning).
Flash & Hogan (1985) J Neurosci 5, 1688-1703 (minimum-jerk reaches).
Degenhart et al. (2020) Stabilization of a brain-computer interface via the
alignment of low-dimensional spaces of neural activity. Nat Biomed Eng 4, 672-685.
"""

from __future__ import annotations

import numpy as np

from ncli.core.errors import ParameterError
from ncli.models.base import Estimator, check_fitted, check_params
from ncli.simulators.session import SimulatedSession

#: Instabilities a later day can have.
SCENARIOS = ("none", "shuffle", "lost", "tuning", "mixed")


def min_jerk_speed(n_bins: int) -> np.ndarray:
    """(n_bins,) speed profile of a minimum-jerk reach, peak 1, zero at both ends (Flash & Hogan 1985)."""
    tau = (np.arange(n_bins) + 0.5) / n_bins
    s = 30 * tau ** 2 * (1 - tau) ** 2  # derivative of 10 t^3 - 15 t^4 + 6 t^5
    return s / s.max()


class CrossDaySimulator(Estimator):
    """Cosine-tuned channels of one array on several days, each later day with a planted instability.

    Model, for channel ``j`` carrying unit ``u`` with preferred direction ``d_u``
    (unit vector), depth ``k_u`` and log baseline ``a_u``::

        v(t) = speed · s(t) · (cos θ, sin θ)             (cm/s; s: minimum-jerk profile, θ: target angle)
        λ_j(t) = exp(a_u + k_u · d_u·v(t) / speed)         (Hz); counts ~ Poisson(λ_j · bin_size)

    A silenced channel has λ = 0. Day ``d`` (``d >= 1``) applies
    ``scenarios[d - 1]``; the fractions set how many of the ``n_channels``
    channels each instability touches (at least 2 for a shuffle, so the
    permutation moves every channel it picks).

    Parameters
    ----------
    n_channels : int
        Channels of the array (>= 8).
    n_days : int
        Days (sessions ``day0``, ``day1``, ...), >= 1.
    scenarios : tuple of str
        The instability of each later day, one of ``SCENARIOS``; shorter
        than ``n_days - 1`` repeats its last entry.
    shuffle_fraction, lost_fraction, new_fraction, tuning_fraction : float
        Fractions of channels permuted, silenced, given a new unit, re-tuned, in [0, 0.9].
    n_directions : int
        Reach targets, evenly spaced on the circle.
    n_trials : int
        Trials per direction and day.
    n_bins : int
        Bins per trial.
    bin_size : float
        Bin width (s).
    speed : float
        Peak reach speed (cm/s).
    rate_range : (float, float)
        Range of the baseline rates ``exp(a_u)`` (Hz, log-uniform).
    depth_range : (float, float)
        Range of the modulation depths ``k_u``.
    seed : int

    Attributes
    ----------
    preferred_ : (n_days, n_channels, 2) float64
        Preferred direction of the unit each channel records on each day.
    depth_ : (n_days, n_channels) float64
    log_rate_ : (n_days, n_channels) float64
        ``-inf`` for a silenced channel.
    perm_ : (n_days, n_channels) int64
        Day-0 channel whose unit channel ``j`` records (identity on day 0 and for unmoved channels;
        -1 where the channel is silent or records a new unit).
    lost_, new_, changed_ : (n_days, n_channels) bool
        Channels silenced, carrying a new unit, or whose unit changed tuning.
    """

    model_id = "ncli/sim-crossday@1"
    _learned = ("preferred_", "depth_", "log_rate_", "perm_", "lost_", "new_", "changed_")

    def __init__(self, n_channels: int = 100, n_days: int = 4, scenarios=("shuffle", "lost", "tuning"),
                 shuffle_fraction: float = 0.1, lost_fraction: float = 0.15, new_fraction: float = 0.05,
                 tuning_fraction: float = 0.1, n_directions: int = 8, n_trials: int = 100, n_bins: int = 50,
                 bin_size: float = 0.05, speed: float = 20.0, rate_range=(10.0, 40.0), depth_range=(0.8, 1.5),
                 seed: int = 0):
        self.n_channels = n_channels
        self.n_days = n_days
        self.scenarios = tuple(scenarios)
        self.shuffle_fraction = shuffle_fraction
        self.lost_fraction = lost_fraction
        self.new_fraction = new_fraction
        self.tuning_fraction = tuning_fraction
        self.n_directions = n_directions
        self.n_trials = n_trials
        self.n_bins = n_bins
        self.bin_size = bin_size
        self.speed = speed
        self.rate_range = tuple(rate_range)
        self.depth_range = tuple(depth_range)
        self.seed = seed
        for name in self._learned:
            setattr(self, name, None)

    def day_scenario(self, day: int) -> str:
        """The instability of ``day`` ('none' for day 0)."""
        if day == 0 or not self.scenarios:
            return "none"
        return self.scenarios[min(day - 1, len(self.scenarios) - 1)]

    def init_params(self) -> CrossDaySimulator:
        """Draw day 0's tuning and every later day's instability from ``seed``.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Invalid hyperparameters (the message names the parameter).
        """
        fr = {"shuffle_fraction": self.shuffle_fraction, "lost_fraction": self.lost_fraction,
              "new_fraction": self.new_fraction, "tuning_fraction": self.tuning_fraction}
        check_params([
            (self.n_channels >= 8, f"{{n_channels}} must be at least 8, got {self.n_channels}", "n_channels"),
            (self.n_days >= 1, f"{{n_days}} must be at least 1, got {self.n_days}", "n_days"),
            (self.n_directions >= 2, f"{{n_directions}} must be at least 2, got {self.n_directions}", "n_directions"),
            (self.n_trials >= 1, f"{{n_trials}} must be at least 1, got {self.n_trials}", "n_trials"),
            (self.n_bins >= 4, f"{{n_bins}} must be at least 4, got {self.n_bins}", "n_bins"),
            (self.bin_size > 0, f"{{bin_size}} must be > 0 s, got {self.bin_size}", "bin_size"),
            (self.speed > 0, f"{{speed}} must be > 0, got {self.speed}", "speed"),
            (0 < self.rate_range[0] <= self.rate_range[1], "rate range must be positive and ordered", "rate_range"),
            *[(0 <= v <= 0.9, f"{{{k}}} must be in [0, 0.9], got {v}", k) for k, v in fr.items()],
            *[(s in SCENARIOS, f"{{scenarios}} must be among {', '.join(SCENARIOS)}, got '{s}'", "scenarios")
              for s in self.scenarios],
        ])
        if self.lost_fraction + self.new_fraction > 0.9:
            raise ParameterError("lost_fraction", "{lost_fraction} + {new_fraction} must be at most 0.9")
        rng = np.random.default_rng([int(self.seed), 31])
        N, D = int(self.n_channels), int(self.n_days)
        ang0 = rng.uniform(0, 2 * np.pi, N)
        depth0 = rng.uniform(*self.depth_range, N)
        rate0 = rng.uniform(np.log(self.rate_range[0]), np.log(self.rate_range[1]), N)
        self.preferred_ = np.zeros((D, N, 2))
        self.depth_ = np.zeros((D, N))
        self.log_rate_ = np.zeros((D, N))
        self.perm_ = np.tile(np.arange(N), (D, 1))
        self.lost_ = np.zeros((D, N), dtype=bool)
        self.new_ = np.zeros((D, N), dtype=bool)
        self.changed_ = np.zeros((D, N), dtype=bool)
        for d in range(D):
            ang, depth, rate = ang0.copy(), depth0.copy(), rate0.copy()
            scen = self.day_scenario(d)
            drng = np.random.default_rng([int(self.seed), 37, d])
            if scen in ("tuning", "mixed"):  # the unit itself changes: rotate by 30-90 degrees, rescale depth
                m = max(1, int(round(self.tuning_fraction * N)))
                idx = drng.choice(N, m, replace=False)
                ang[idx] += drng.choice([-1, 1], m) * drng.uniform(np.pi / 6, np.pi / 2, m)
                depth[idx] *= drng.uniform(0.6, 1.4, m)
                self.changed_[d, idx] = True
            perm = np.arange(N)
            if scen in ("shuffle", "mixed"):
                m = max(2, int(round(self.shuffle_fraction * N)))
                idx = np.sort(drng.choice(N, m, replace=False))
                shift = drng.permutation(m)
                while np.any(shift == np.arange(m)):  # a derangement: every picked channel moves
                    shift = drng.permutation(m)
                perm[idx] = idx[shift]
            self.perm_[d] = perm
            ang, depth, rate = ang[perm], depth[perm], rate[perm]
            self.changed_[d] = self.changed_[d][perm]
            if scen in ("lost", "mixed"):
                n_lost = int(round(self.lost_fraction * N))
                n_new = int(round(self.new_fraction * N))
                idx = drng.choice(N, n_lost + n_new, replace=False)
                lost, new = idx[:n_lost], idx[n_lost:]
                rate[lost] = -np.inf
                ang[new] = drng.uniform(0, 2 * np.pi, new.size)
                depth[new] = drng.uniform(*self.depth_range, new.size)
                rate[new] = drng.uniform(np.log(self.rate_range[0]), np.log(self.rate_range[1]), new.size)
                self.lost_[d, lost] = True
                self.new_[d, new] = True
                self.perm_[d, idx] = -1
                self.changed_[d, idx] = False
            self.preferred_[d] = np.column_stack([np.cos(ang), np.sin(ang)])
            self.depth_[d], self.log_rate_[d] = depth, rate
        return self

    def sample(self) -> list[SimulatedSession]:
        """Simulate every day: ``n_directions * n_trials`` trials in random order, laid end to end.

        Returns
        -------
        list of SimulatedSession
            Sessions ``day0, day1, ...`` with ``counts`` (T, n_channels) int32, ``T = n_directions *
            n_trials * n_bins``, from ``t_start = 0``; behaviour ``velocity`` (cm/s) and ``position`` (cm)
            at the bin centres; trials ``start_time``, ``stop_time``, ``target`` (0..n_directions-1),
            ``target_angle`` (rad); ``latents`` the (T, 2) velocity. ``spike_times`` is empty.

        Raises
        ------
        NotFittedError
            Before :meth:`init_params`.
        """
        check_fitted(self)
        N, B, dt = int(self.n_channels), int(self.n_bins), float(self.bin_size)
        prof = min_jerk_speed(B)
        angles = 2 * np.pi * np.arange(self.n_directions) / self.n_directions
        out = []
        for d in range(int(self.n_days)):
            rng = np.random.default_rng([int(self.seed), 41, d])
            targets = rng.permutation(np.repeat(np.arange(self.n_directions), self.n_trials))
            n_tr = targets.size
            th = angles[targets]
            vel = (self.speed * prof[None, :, None] * np.stack([np.cos(th), np.sin(th)], -1)[:, None, :])
            vel = vel.reshape(n_tr * B, 2)  # (T, 2)
            pos = np.cumsum(vel, axis=0) * dt
            pos -= np.repeat(pos[::B] - vel[::B] * dt, B, axis=0)  # every reach starts at the centre
            drive = vel @ self.preferred_[d].T / self.speed  # (T, N)
            with np.errstate(divide="ignore"):
                lam = np.exp(self.log_rate_[d][None, :] + self.depth_[d][None, :] * drive)
            counts = rng.poisson(lam * dt).astype(np.int32)
            start = np.arange(n_tr) * B * dt
            centres = (np.arange(n_tr * B) + 0.5) * dt
            out.append(SimulatedSession(
                session_id=f"day{d}", ids=np.array([f"ch{j:03d}" for j in range(N)]),
                areas=np.array(["M1"] * N), spike_times=[], counts=counts, latents=vel, t_start=0.0,
                bin_size=dt,
                behavior={"velocity": {"timestamps": centres, "data": vel, "unit": "cm/s", "columns": ["x", "y"]},
                          "position": {"timestamps": centres, "data": pos, "unit": "cm", "columns": ["x", "y"]}},
                trials={"start_time": start, "stop_time": start + B * dt, "target": targets.astype(np.int64),
                        "target_angle": th},
                epochs=np.array([[0.0, n_tr * B * dt]]),
            ))
        return out
