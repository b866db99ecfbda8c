"""Typed neurons in three regions, identifiable only through their population context (``ncli simulate nuclr``).

Simulators are estimators whose "learned" attributes are the drawn ground
truth, so they are saved to a store (``models/truth``) like any fitted model.
"""

from __future__ import annotations

import numpy as np

from ncli.core.errors import ParameterError
from ncli.models.base import Estimator, check_fitted
from ncli.simulators.ou import ornstein_uhlenbeck


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
    features of the hand-crafted unit features are at chance for type).

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
            raise ParameterError("n_sessions", f"{{n_sessions}} must be at least 1, got {self.n_sessions}")
        if not 4 <= self.min_units <= self.max_units:
            raise ParameterError("min_units", f"units per session must satisfy 4 <= min <= max, got "
                                 f"{self.min_units}, {self.max_units}", where="{units}")
        if not self.duration >= 20.0:
            raise ParameterError("duration", f"{{duration}} must be at least 20 s, got {self.duration:g}")

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
            shared = ornstein_uhlenbeck(rng, T, np.array([0.5, *self.REGION_TAU]), dt)  # global, R0, R1, R2
            shared[:, 1] = self._rhythm(rng, T, self.RHYTHM_HZ, self.REGION_TAU[0], dt)
            assemblies = ornstein_uhlenbeck(rng, T, np.full(A, 0.3), dt)
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
                drive[:, private] += ornstein_uhlenbeck(rng, T, np.full(private.size, 0.5), dt) * coef[private, 2]
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
