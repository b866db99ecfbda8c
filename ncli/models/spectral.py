"""Spectra of spatially extended excitatory/inhibitory rate networks, and what they predict.

The network (1-D ring or 2-D torus, unit length per side): an excitatory (E) and
an inhibitory (I) population, each on a regular grid. Neuron ``j`` of population
``Y`` projects to neuron ``i`` of population ``X`` with probability

    p_ij = min(1, K_XY · G_XY(x_i - x_j) / N_Y),

where ``G_XY`` is a periodic Gaussian of standard deviation ``d_XY`` (the
projection range, in units of the side length) normalised to mean 1 over the
grid, and ``K_XY`` the in-degree (or ``density · N_Y``). No autapses. An existing
connection has weight ``w = µ_XY + σ_XY ξ`` (``ξ`` standard normal) with
``µ_XY = ḡ_XY / K_eff`` and ``σ_XY = g_XY / sqrt(K_eff)``, ``K_eff = Σ_j p_ij``,
so ``ḡ_XY`` is the mean total input from ``Y`` to a neuron of ``X`` and ``g_XY``
the spread. The rate dynamics are ``τ dx/dt = -x + J φ(x) + I_X``.

Theory (what :func:`network_theory` computes):

- the homogeneous fixed point ``x*_X = Σ_Y ḡ_XY φ_Y(x*_Y) + I_X`` and the gains
  ``φ'_Y(x*_Y)``; the linearisation is ``τ dδx/dt = (-1 + J D) δx`` with
  ``D = diag(φ')``, so everything below is about the effective connectivity
  ``W = J D`` (for a linear network ``W = J``);
- the bulk: ``W - E[W]`` has the variance profile ``S_ij = Var(W_ij)``, whose
  row sums depend only on the populations; its eigenvalues fill a disk of
  radius ``r = sqrt(ρ(V))``, where ``V_XY = Σ_{j∈Y} S_ij`` (2x2; ``ρ`` the
  spectral radius), with ``V_XY = φ'_Y² [K_eff(µ² + σ²) - µ² Σ_j p_ij²]``: the
  weight spread plus the Bernoulli (sparseness) term;
- the outliers: ``E[W]`` is translation invariant, so its eigenvectors are
  Fourier modes ``a_X e^{2πi k·x}``; for each wavenumber ``k`` the 2x2 matrix
  ``M(k)_XY = µ_XY φ'_Y Σ_o p_XY(o) e^{2πi k·o}`` gives two eigenvalues, with
  the multiplicity of the wavenumbers that share them (``±k``, and the lattice
  symmetries in 2-D). Those outside the disk are the outliers of ``W``;
- the regime from the rightmost eigenvalue of ``W`` (stability needs
  ``Re λ < 1``): the bulk (``r > 1``: chaos) or an outlier at wavenumber
  ``k`` with frequency ``Im λ / (2π τ)``: global synchrony (k = 0, real),
  global oscillation (k = 0, complex), bump (k ≠ 0, real), travelling wave
  (k ≠ 0, complex); asynchronous when everything is stable.

References
----------
Bridging Scales: Spectral Theory Reveals How Local Connectivity Rules Sculpt
Global Neural Dynamics in Spatially Extended Networks, NeurIPS 2025 (bulk
radius from the block variance profile, outliers from the Fourier-transformed
mean connectivity, the regime diagram).
Rajan K, Abbott LF (2006) Eigenvalue spectra of random matrices for neural
networks. Phys Rev Lett 97, 188104 (E/I variance profile, bulk radius).
Girko VL (1985) Circular law. Theory Probab Appl 29, 694-706.
Tao T (2013) Outliers in the spectrum of iid matrices with bounded rank
perturbations. Probab Theory Relat Fields 155, 231-263.
Sompolinsky H, Crisanti A, Sommers HJ (1988) Chaos in random neural networks.
Phys Rev Lett 61, 259 (bulk crossing Re λ = 1 gives chaos).
Golomb D (2007) Neuronal synchrony measures. Scholarpedia 2(1):1347 (χ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ncli.core.errors import DataError, ParameterDataError, ParameterError, UsageError

POPULATIONS = ("E", "I")
PAIRS = ("EE", "EI", "IE", "II")  # "XY": to X from Y
ACTIVATIONS = ("linear", "tanh", "relu", "sigmoid")
REGIMES = ("asynchronous", "chaos", "global_synchronous", "bump", "global_oscillation", "travelling_wave")
#: Gaussian profiles are truncated beyond this many standard deviations.
TRUNCATE_SD = 5.0
#: Largest N for dense eigenvalues.
DENSE_MAX = 5000


# ----------------------------------------------------------------------------- the specification


@dataclass
class Projection:
    """One projection ``Y -> X``: mean coupling ḡ, spread g, range d, in-degree K or density p.

    ``mean`` is signed (negative for inhibitory projections); ``range`` is the
    standard deviation of the Gaussian profile in units of the side length.
    """

    mean: float
    spread: float = 0.0
    range: float = 0.1
    in_degree: float | None = None
    density: float | None = None


@dataclass
class Population:
    """One population: size (a perfect square on a torus), activation, external input, gain."""

    n: int
    activation: str = "linear"
    input: float = 0.0
    gain: float = 1.0
    threshold: float = 0.0


def _number(value: Any, what: str, where: str | None) -> float | int:
    """A spec value that must be a real number (not a string, boolean or null): UsageError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{what} must be a number, got {value!r}", where)
    return value


@dataclass
class NetworkSpec:
    """A spatially extended E/I network (see the module docstring for the model).

    Attributes
    ----------
    dim : int
        1 (ring) or 2 (torus).
    tau : float
        Time constant of the rate dynamics, s.
    populations : dict
        ``{"E": Population, "I": Population}``.
    projections : dict
        ``{"EE": Projection, "EI": ..., "IE": ..., "II": ...}``, key "XY" = to X from Y.
    """

    dim: int = 1
    tau: float = 0.01
    populations: dict[str, Population] = field(default_factory=dict)
    projections: dict[str, Projection] = field(default_factory=dict)

    # -- construction
    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | None = None) -> "NetworkSpec":
        """Build and validate a spec from a TOML/JSON-like dict.

        Accepted layout::

            dim = 1; tau = 0.01
            [defaults]  spread, range, in_degree or density (used where a projection omits them)
            [populations.E] n, activation, input, gain, threshold
            [projections.EE] mean, spread, range, in_degree | density

        Raises
        ------
        UsageError
            Unknown keys, missing populations/projections or means, invalid values.
        """
        if not isinstance(data, dict):
            raise UsageError("network spec must be a table/object", where)
        known = {"dim", "tau", "defaults", "populations", "projections"}
        extra = sorted(set(data) - known)
        if extra:
            raise UsageError(f"unknown key(s) in network spec: {', '.join(extra)}", where,
                             hint=f"allowed: {', '.join(sorted(known))}")
        for section in ("defaults", "populations", "projections"):
            if data.get(section) is not None and not isinstance(data[section], dict):
                raise UsageError(f"'{section}' in the network spec must be a table/object, got "
                                 f"{type(data[section]).__name__}", where)
        defaults = dict(data.get("defaults") or {})
        pops, projs = {}, {}
        for name in POPULATIONS:
            raw = (data.get("populations") or {}).get(name)
            if raw is None:
                raise UsageError(f"network spec misses population '{name}'", where)
            if not isinstance(raw, dict):
                raise UsageError(f"population {name} must be a table/object, got {type(raw).__name__}", where)
            bad = sorted(set(raw) - {"n", "activation", "input", "gain", "threshold"})
            if bad:
                raise UsageError(f"unknown key(s) in population {name}: {', '.join(bad)}", where)
            if "n" not in raw:
                raise UsageError(f"population {name} needs a size n", where)
            pops[name] = Population(**raw)
        for key in PAIRS:
            raw = (data.get("projections") or {}).get(key) or {}
            if not isinstance(raw, dict):
                raise UsageError(f"projection {key} must be a table/object, got {type(raw).__name__}", where)
            raw = dict(raw)
            bad = sorted(set(raw) - {"mean", "spread", "range", "in_degree", "density"})
            if bad:
                raise UsageError(f"unknown key(s) in projection {key}: {', '.join(bad)}", where)
            for k in ("spread", "range"):
                if k not in raw and k in defaults:
                    raw[k] = defaults[k]
            if "in_degree" not in raw and "density" not in raw:
                for k in ("in_degree", "density"):
                    if k in defaults:
                        raw[k] = defaults[k]
            if "mean" not in raw:
                raise UsageError(f"projection {key} needs a mean coupling", where,
                                 hint="e.g. [projections.EE] mean = 1.0 (negative from I)")
            for k in ("mean", "spread", "range", "in_degree", "density"):
                if k in raw and (raw[k] is not None or k in ("mean", "spread", "range")):
                    raw[k] = _number(raw[k], f"projection {key}: {k}", where)
            projs[key] = Projection(**raw)
        for name, pop in pops.items():
            for k in ("n", "input", "gain", "threshold"):
                setattr(pop, k, _number(getattr(pop, k), f"population {name}: {k}", where))
            if not isinstance(pop.activation, str):
                raise UsageError(f"population {name}: activation must be a name (choose "
                                 f"{', '.join(ACTIVATIONS)}), got {pop.activation!r}", where)
        dim = _number(data.get("dim", 1), "dim", where)
        if dim not in (1, 2):
            raise UsageError(f"dim must be 1 (ring) or 2 (torus), got {data.get('dim')!r}", where)
        spec = cls(dim=int(dim), tau=_number(data.get("tau", 0.01), "tau", where), populations=pops,
                   projections=projs)
        spec.validate(where)
        return spec

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-friendly dict (the layout :meth:`from_dict` reads)."""
        return {"dim": self.dim, "tau": self.tau,
                "populations": {k: vars(v).copy() for k, v in self.populations.items()},
                "projections": {k: {a: b for a, b in vars(v).items() if b is not None}
                                for k, v in self.projections.items()}}

    def validate(self, where: str | None = None) -> None:
        """Check every value (UsageError with the offending key otherwise)."""
        def bad(msg: str) -> None:
            raise UsageError(msg, where)

        if self.dim not in (1, 2):
            bad(f"dim must be 1 (ring) or 2 (torus), got {self.dim}")
        if not (np.isfinite(self.tau) and self.tau > 0):
            bad(f"tau must be a finite number > 0 (s), got {self.tau}")
        for name, p in self.populations.items():
            if not np.isfinite(p.n) or int(p.n) != p.n or p.n < 4:
                bad(f"population {name}: n must be an integer >= 4, got {p.n}")
            p.n = int(p.n)
            if self.dim == 2 and math.isqrt(p.n) ** 2 != p.n:
                bad(f"population {name}: n = {p.n} is not a perfect square (a torus needs side x side)")
            if p.activation not in ACTIVATIONS:
                bad(f"population {name}: unknown activation '{p.activation}' (choose {', '.join(ACTIVATIONS)})")
            for k in ("input", "gain", "threshold"):
                if not np.isfinite(float(getattr(p, k))):
                    bad(f"population {name}: {k} must be finite")
            if not p.gain > 0:
                bad(f"population {name}: gain must be > 0")
        for key, pr in self.projections.items():
            y = key[1]
            for k in ("mean", "spread", "range"):
                if not np.isfinite(float(getattr(pr, k))):
                    bad(f"projection {key}: {k} must be a finite number")
            if pr.spread < 0:
                bad(f"projection {key}: spread must be >= 0")
            if not pr.range > 0:
                bad(f"projection {key}: range must be > 0 (a fraction of the side length)")
            if pr.in_degree is not None and pr.density is not None:
                bad(f"projection {key}: give in_degree or density, not both")
            if pr.in_degree is None and pr.density is None:
                bad(f"projection {key}: needs in_degree or density")
            if pr.density is not None and not (0 < pr.density <= 1):
                bad(f"projection {key}: density must be in (0, 1], got {pr.density}")
            if pr.in_degree is not None and not (0 < pr.in_degree <= self.populations[y].n):
                bad(f"projection {key}: in_degree must be in (0, N_{y}], got {pr.in_degree}")
            if (y == "E" and pr.mean < 0) or (y == "I" and pr.mean > 0):
                bad(f"projection {key}: mean must be >= 0 from E and <= 0 from I (Dale's law), got {pr.mean}")

    def in_degree(self, key: str) -> float:
        """Nominal in-degree K_XY (before the p <= 1 cap and without autapses)."""
        pr = self.projections[key]
        return float(pr.in_degree) if pr.in_degree is not None else float(pr.density) * self.populations[key[1]].n

    @property
    def n(self) -> int:
        """Total number of neurons (E first, then I)."""
        return sum(p.n for p in self.populations.values())


# ----------------------------------------------------------------------------- activations


def activation(name: str, x: np.ndarray, gain: float = 1.0, threshold: float = 0.0) -> np.ndarray:
    """φ(x) for ``name`` in linear, tanh, relu, sigmoid (slope ``gain`` at/after ``threshold``)."""
    z = gain * (np.asarray(x, dtype=np.float64) - threshold)
    if name == "linear":
        return z
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    raise UsageError(f"unknown activation '{name}'")


def activation_slope(name: str, x: np.ndarray, gain: float = 1.0, threshold: float = 0.0) -> np.ndarray:
    """φ'(x) for the activations of :func:`activation`."""
    z = gain * (np.asarray(x, dtype=np.float64) - threshold)
    if name == "linear":
        return np.full_like(z, gain)
    if name == "tanh":
        return gain / np.cosh(z) ** 2
    if name == "relu":
        return np.where(z > 0, gain, 0.0)
    if name == "sigmoid":
        s = 0.5 * (1.0 + np.tanh(0.5 * z))
        return gain * s * (1.0 - s)
    raise UsageError(f"unknown activation '{name}'")


# ----------------------------------------------------------------------------- geometry and profiles


def grid_side(n: int, dim: int) -> int:
    """Grid points per side: ``n`` on a ring, ``sqrt(n)`` on a torus."""
    return n if dim == 1 else math.isqrt(n)


def positions(n: int, dim: int) -> np.ndarray:
    """Grid positions in [0, 1)^dim, shape (n, dim); 2-D index ``i = row * side + col``, x = col."""
    s = grid_side(n, dim)
    if dim == 1:
        return (np.arange(n) / n)[:, None]
    idx = np.arange(n)
    return np.stack([(idx % s) / s, (idx // s) / s], axis=1)


def _periodic_gaussian_1d(side: int, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (grid steps, centred) and the periodic Gaussian on a ring of ``side`` points, mean 1."""
    offsets = np.arange(side) - side // 2
    d = offsets / side
    images = np.arange(-3, 4)[:, None]
    g = np.exp(-((d[None, :] + images) ** 2) / (2 * sd * sd)).sum(axis=0)
    g /= g.mean()
    half = int(math.ceil(TRUNCATE_SD * sd * side))
    if 2 * half + 1 < side:
        g[np.abs(offsets) > half] = 0.0
    return offsets, g


@dataclass
class Profile:
    """Connection probability over offsets for one projection ``Y -> X``.

    Attributes
    ----------
    offsets : (n_off, dim) int
        Offsets on the Y grid (grid steps) with non-zero probability.
    p : (n_off,) float
        Connection probability at each offset (capped at 1; 0 for autapses).
    mu, sigma : float
        Mean and standard deviation of a connection's weight.
    k_eff : float
        Expected in-degree Σ p.
    side : int
        Grid side of Y.
    """

    offsets: np.ndarray
    p: np.ndarray
    mu: float
    sigma: float
    k_eff: float
    side: int

    def fourier(self, dim: int) -> np.ndarray:
        """``µ Σ_o p(o) e^{2πi k·o/side}`` on the full Y wavenumber grid (real part), side^dim values."""
        s = self.side
        full = np.zeros((s,) * dim)
        idx = tuple((self.offsets[:, a] % s) for a in range(dim))[::-1]  # (row=y, col=x)
        np.add.at(full, idx, self.p)
        return self.mu * np.real(np.fft.fftn(full))

    def row_variance(self) -> float:
        """Σ_j Var(J_ij) over the Y inputs of one X neuron: ``K(µ²+σ²) - µ² Σ p²``."""
        return float(self.k_eff * (self.mu ** 2 + self.sigma ** 2) - self.mu ** 2 * np.sum(self.p ** 2))


def profile(spec: NetworkSpec, key: str) -> Profile:
    """The connection profile of projection ``key`` ("XY": to X from Y).

    Raises
    ------
    DataError
        The projection has no connections at all (range far below the grid step).
    """
    pr = spec.projections[key]
    ny = spec.populations[key[1]].n
    s = grid_side(ny, spec.dim)
    off1, g1 = _periodic_gaussian_1d(s, pr.range)
    keep1 = g1 > 0
    off1, g1 = off1[keep1], g1[keep1]
    if spec.dim == 1:
        offsets, g = off1[:, None], g1
    else:
        ox, oy = np.meshgrid(off1, off1, indexing="xy")
        offsets = np.stack([ox.ravel(), oy.ravel()], axis=1)
        g = np.outer(g1, g1).ravel()  # row = y offset, col = x offset, matching ox/oy ravel order
    K = spec.in_degree(key)
    p = np.minimum(1.0, K * g / ny)
    if key[0] == key[1]:
        p[np.all(offsets == 0, axis=1)] = 0.0
    k_eff = float(p.sum())
    if not k_eff > 0:
        raise DataError(f"projection {key} has no connections (range {pr.range} too short for the grid)")
    return Profile(offsets=offsets.astype(np.int64), p=p, mu=pr.mean / k_eff,
                   sigma=pr.spread / math.sqrt(k_eff), k_eff=k_eff, side=s)


# ----------------------------------------------------------------------------- theory


def fixed_point(spec: NetworkSpec) -> tuple[np.ndarray, np.ndarray]:
    """Homogeneous fixed point x*_X = Σ_Y ḡ_XY φ_Y(x*_Y) + I_X and the gains φ'_Y(x*_Y).

    Returns
    -------
    x : (2,) float
        Fixed point (E, I).
    slope : (2,) float
        φ' at the fixed point (E, I).

    Raises
    ------
    DataError
        No homogeneous fixed point was found.
    """
    from scipy.optimize import fsolve

    G = np.array([[spec.projections[a + b].mean for b in POPULATIONS] for a in POPULATIONS])
    pops = [spec.populations[a] for a in POPULATIONS]
    inp = np.array([p.input for p in pops])

    def phi(x):
        return np.array([activation(p.activation, x[i], p.gain, p.threshold) for i, p in enumerate(pops)])

    def slope(x):
        return np.array([activation_slope(p.activation, x[i], p.gain, p.threshold) for i, p in enumerate(pops)])

    if all(p.activation == "linear" for p in pops):
        gains = np.array([p.gain for p in pops])
        A = np.eye(2) - G * gains[None, :]
        rhs = inp - G @ (gains * np.array([p.threshold for p in pops]))
        try:
            x = np.linalg.solve(A, rhs)
        except np.linalg.LinAlgError:
            raise DataError("the linear network has no unique homogeneous fixed point (1 - ḡ·gain singular)") \
                from None
        return x, slope(x)
    best = None
    for x0 in (inp, np.zeros(2), inp + 1.0, inp - 1.0):
        x, info, ier, _ = fsolve(lambda x: x - G @ phi(x) - inp, x0, full_output=True)
        res = float(np.max(np.abs(x - G @ phi(x) - inp)))
        if best is None or res < best[1]:
            best = (x, res)
        if ier == 1 and res < 1e-9:
            break
    x, res = best
    if not res < 1e-6:
        raise DataError(f"no homogeneous fixed point found (residual {res:.2g})",
                        hint="change the inputs or couplings")
    return x, slope(x)


def _wavevectors(spec: NetworkSpec) -> np.ndarray:
    """Wavenumbers shared by both grids: (n_k, dim) ints, |k_a| < min side / 2, one per symmetry class."""
    smin = min(grid_side(p.n, spec.dim) for p in spec.populations.values())
    kmax = (smin - 1) // 2
    if spec.dim == 1:
        return np.arange(kmax + 1)[:, None]
    return np.array([(a, b) for a in range(kmax + 1) for b in range(a + 1)])


def _multiplicity(k: np.ndarray) -> int:
    """Number of lattice wavevectors in the symmetry class of ``k`` (signs, and swaps in 2-D)."""
    if k.size == 1:
        return 1 if k[0] == 0 else 2
    a, b = int(k[0]), int(k[1])
    signs = (1 if a == 0 else 2) * (1 if b == 0 else 2)
    return signs * (1 if a == b else 2)


@dataclass
class Theory:
    """What the spectral theory predicts for a network (see :func:`network_theory`).

    Attributes
    ----------
    fixed_point, slope : (2,) float
        Homogeneous fixed point and φ' there (E, I).
    mean_coupling : (2, 2) float
        ḡ_XY φ'_Y, the k = 0 effective mean coupling.
    variance_profile : (2, 2) float
        V_XY, row sums of the variance profile of W (including the Bernoulli term).
    bulk_radius : float
        sqrt(ρ(V)).
    wavevectors : (n_modes, dim) int
        One wavevector per mode (two modes, the two 2x2 eigenvalues, per class).
    eigenvalues : (n_modes,) complex
        Eigenvalues of the mean effective connectivity per mode.
    multiplicity : (n_modes,) int
        How many eigenvalues of E[W] equal each mode's.
    k_eff : (2, 2) float
        Expected in-degrees.
    tau : float
        Time constant, s.
    condition : (n_modes,) float
        Eigenvalue condition number of each mode in its 2x2 block,
        ``‖l‖‖r‖/|l^H r|`` (1 for a normal block; large near an exceptional
        point where the two eigenvalues of a wavenumber merge). A finite
        network's outlier moves by about condition x the perturbation, so
        modes with a large condition number are predicted less precisely.
    """

    fixed_point: np.ndarray
    slope: np.ndarray
    mean_coupling: np.ndarray
    variance_profile: np.ndarray
    bulk_radius: float
    wavevectors: np.ndarray
    eigenvalues: np.ndarray
    multiplicity: np.ndarray
    k_eff: np.ndarray
    tau: float
    condition: np.ndarray | None = None

    @property
    def wavenumber(self) -> np.ndarray:
        """|k| per mode (cycles per side length)."""
        return np.sqrt((self.wavevectors.astype(float) ** 2).sum(axis=1))

    def outliers(self, margin: float = 0.0) -> np.ndarray:
        """Boolean mask of modes with |λ| > (1 + margin) · bulk radius."""
        return np.abs(self.eigenvalues) > (1.0 + margin) * self.bulk_radius

    def expanded_outliers(self, margin: float = 0.0) -> np.ndarray:
        """Outlier eigenvalues repeated by multiplicity, (n,) complex."""
        m = self.outliers(margin)
        return np.repeat(self.eigenvalues[m], self.multiplicity[m])


def _eig_condition(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of a small matrix and their condition numbers ``‖l‖‖r‖/|l^H r|`` (inf if defective)."""
    from scipy.linalg import eig

    lam, vl, vr = eig(M, left=True, right=True)
    cond = np.empty(lam.size)
    for i in range(lam.size):
        dot = abs(np.vdot(vl[:, i], vr[:, i]))
        cond[i] = np.linalg.norm(vl[:, i]) * np.linalg.norm(vr[:, i]) / dot if dot > 1e-300 else np.inf
    return lam, cond


def network_theory(spec: NetworkSpec, profiles: dict[str, Profile] | None = None) -> Theory:
    """Bulk radius, outlier modes and fixed point of a network (the module docstring has the model).

    Parameters
    ----------
    spec : NetworkSpec
    profiles : dict, optional
        Precomputed :func:`profile` per projection.

    Returns
    -------
    Theory

    References
    ----------
    Bridging Scales (NeurIPS 2025): bulk from the block variance profile,
    outliers from the Fourier-transformed mean couplings; Rajan & Abbott (2006).
    """
    profiles = profiles or {key: profile(spec, key) for key in PAIRS}
    x, slope = fixed_point(spec)
    V = np.zeros((2, 2))
    G = np.zeros((2, 2))
    K = np.zeros((2, 2))
    for a, X in enumerate(POPULATIONS):
        for b, Y in enumerate(POPULATIONS):
            pr = profiles[X + Y]
            V[a, b] = pr.row_variance() * slope[b] ** 2
            G[a, b] = pr.mu * pr.k_eff * slope[b]
            K[a, b] = pr.k_eff
    radius = float(np.sqrt(max(0.0, np.max(np.real(np.linalg.eigvals(V))))))
    ks = _wavevectors(spec)
    hats = {key: profiles[key].fourier(spec.dim) for key in PAIRS}
    sides = {key: profiles[key].side for key in PAIRS}
    vecs, eigs, mult, cond = [], [], [], []
    for k in ks:
        M = np.empty((2, 2))
        for a, X in enumerate(POPULATIONS):
            for b, Y in enumerate(POPULATIONS):
                s = sides[X + Y]
                idx = tuple(int(c) % s for c in k[::-1])
                M[a, b] = hats[X + Y][idx] * slope[b]
        lam, cond_k = _eig_condition(M)
        for val, c in zip(lam, cond_k):
            vecs.append(k)
            eigs.append(complex(val))
            mult.append(_multiplicity(k))
            cond.append(c)
    return Theory(fixed_point=x, slope=slope, mean_coupling=G, variance_profile=V, bulk_radius=radius,
                  wavevectors=np.array(vecs, dtype=np.int64), eigenvalues=np.array(eigs, dtype=complex),
                  multiplicity=np.array(mult, dtype=np.int64), k_eff=K, tau=spec.tau,
                  condition=np.array(cond, dtype=np.float64))


def classify(theory: Theory, tol: float = 1e-9) -> dict[str, Any]:
    """The dynamical regime the linearised network enters, from its rightmost eigenvalue.

    The homogeneous state is stable when every eigenvalue of W has Re λ < 1
    (the Jacobian is (W - 1)/τ). Otherwise the rightmost part of the spectrum
    decides: the bulk (its right edge is at r) gives chaos; an outlier mode at
    wavenumber k gives global synchrony (k = 0, real λ), global oscillation
    (k = 0, complex), a bump / stationary pattern (k ≠ 0, real) or a travelling
    wave (k ≠ 0, complex).

    Returns
    -------
    dict
        ``regime`` (one of REGIMES), ``stable`` (bool), ``source`` ("bulk",
        "outlier" or "none"), ``wavenumber`` (|k| of the leading mode, 0 for the
        bulk), ``wavevector`` (list of ints), ``eigenvalue`` [re, im] of W,
        ``growth_rate_hz`` (Re (λ-1)/τ, 1/s), ``frequency_hz`` (|Im λ|/(2πτ)),
        ``margin`` (rightmost Re λ - 1), ``bulk_radius``.

    References
    ----------
    Bridging Scales (NeurIPS 2025), regime diagram; Sompolinsky et al. (1988).
    """
    lam = theory.eigenvalues
    outlier = theory.outliers()
    lead = None
    if outlier.any():
        cand = np.flatnonzero(outlier)
        lead = int(cand[np.argmax(lam[cand].real)])
    r = theory.bulk_radius
    lead_re = lam[lead].real if lead is not None else -np.inf
    rightmost = max(lead_re, r)
    out: dict[str, Any] = {"bulk_radius": r, "margin": float(rightmost - 1.0)}
    if rightmost < 1.0:
        regime, source = "asynchronous", "none"
    elif lead is not None and lead_re >= r:
        source = "outlier"
        k0 = not np.any(theory.wavevectors[lead])
        osc = abs(lam[lead].imag) > tol * max(1.0, abs(lam[lead]))
        regime = ("global_oscillation" if osc else "global_synchronous") if k0 else \
            ("travelling_wave" if osc else "bump")
    else:
        regime, source = "chaos", "bulk"
    if source == "outlier" or (source == "none" and lead is not None and lead_re >= r):
        ev = lam[lead]
        out.update(wavenumber=float(theory.wavenumber[lead]), wavevector=theory.wavevectors[lead].tolist(),
                   eigenvalue=[float(ev.real), float(ev.imag)], multiplicity=int(theory.multiplicity[lead]))
    else:
        ev = complex(r, 0.0)
        out.update(wavenumber=0.0, wavevector=[0] * theory.wavevectors.shape[1], eigenvalue=[r, 0.0],
                   multiplicity=0)
    out.update(regime=regime, stable=regime == "asynchronous", source=source,
               growth_rate_hz=float((ev.real - 1.0) / theory.tau),
               frequency_hz=float(abs(ev.imag) / (2 * np.pi * theory.tau)))
    return out


# ----------------------------------------------------------------------------- sampling


def _row_anchor(n_x: int, side_y: int, dim: int) -> np.ndarray:
    """For each X neuron, the index of the nearest Y grid point per axis, (n_x, dim)."""
    return np.rint(positions(n_x, dim) * side_y).astype(np.int64) % side_y


def _sample_block(pr: Profile, anchors: np.ndarray, dim: int, rng: np.random.Generator,
                  max_block: int = 4_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample one block: (rows, cols, weights) of the edges ``Y -> X`` with probabilities ``pr.p``.

    Each (row, offset) is an independent Bernoulli(p(o)) trial. With small
    probabilities, trials run at the envelope p_max by geometric skipping and
    are thinned with probability p(o)/p_max (exact and O(edges)); otherwise by
    direct comparison.
    """
    n_rows = anchors.shape[0]
    n_off = pr.p.size
    p_max = float(pr.p.max())
    s = pr.side
    rows_out, offs_out = [], []
    expected = n_off * p_max
    if p_max > 0.3:
        step = max(1, max_block // max(n_off, 1))
        for start in range(0, n_rows, step):
            stop = min(n_rows, start + step)
            hit = rng.random((stop - start, n_off)) < pr.p[None, :]
            r, o = np.nonzero(hit)
            rows_out.append(r + start)
            offs_out.append(o)
    else:
        L = int(math.ceil(expected + 8 * math.sqrt(expected) + 16))
        step = max(1, max_block // L)
        for start in range(0, n_rows, step):
            stop = min(n_rows, start + step)
            while True:
                gaps = rng.geometric(p_max, size=(stop - start, L))
                pos = np.cumsum(gaps, axis=1) - 1
                if np.all(pos[:, -1] >= n_off):
                    break
                L *= 2  # some row did not exhaust its offsets; redraw the block with more trials
            r, c = np.nonzero(pos < n_off)
            o = pos[r, c]
            keep = rng.random(o.size) * p_max < pr.p[o]
            rows_out.append(r[keep] + start)
            offs_out.append(o[keep])
    rows = np.concatenate(rows_out) if rows_out else np.zeros(0, np.int64)
    offs = np.concatenate(offs_out) if offs_out else np.zeros(0, np.int64)
    target = (anchors[rows] + pr.offsets[offs]) % s
    cols = target[:, 0] if dim == 1 else target[:, 1] * s + target[:, 0]
    w = pr.mu + pr.sigma * rng.standard_normal(rows.size) if pr.sigma > 0 else np.full(rows.size, pr.mu)
    return rows, cols, w


def sample_connectivity(spec: NetworkSpec, seed: int = 0, profiles: dict[str, Profile] | None = None):
    """Sample the sparse connectivity J, (N, N) CSR float64; rows/columns are E then I.

    Parameters
    ----------
    spec : NetworkSpec
    seed : int
        Seed of numpy's default generator (same seed, same matrix).
    profiles : dict, optional
        Precomputed :func:`profile` per projection.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``J[i, j]``: weight from neuron j to neuron i.
    """
    import scipy.sparse as sp

    profiles = profiles or {key: profile(spec, key) for key in PAIRS}
    rng = np.random.default_rng(seed)
    start = {"E": 0, "I": spec.populations["E"].n}
    R, C, W = [], [], []
    for key in PAIRS:
        X, Y = key
        pr = profiles[key]
        anchors = _row_anchor(spec.populations[X].n, pr.side, spec.dim)
        r, c, w = _sample_block(pr, anchors, spec.dim, rng)
        R.append((r + start[X]).astype(np.int32))
        C.append((c + start[Y]).astype(np.int32))
        W.append(w)
    N = spec.n
    J = sp.csr_matrix((np.concatenate(W), (np.concatenate(R), np.concatenate(C))), shape=(N, N))
    J.sum_duplicates()
    return J


def effective_connectivity(J, spec: NetworkSpec, theory: Theory):
    """W = J D with D = diag(φ'(x*)) per population: the linearisation's connectivity (CSR)."""
    import scipy.sparse as sp

    d = np.concatenate([np.full(spec.populations[p].n, theory.slope[i]) for i, p in enumerate(POPULATIONS)])
    return (J @ sp.diags(d)).tocsr()


def empirical_bulk_radius(W, spec: NetworkSpec, theory: Theory, profiles: dict[str, Profile]) -> float:
    """Radius sqrt(ρ(V̂)) from the sampled matrix's own variance profile (row sums of (W - E[W])²).

    Uses Σ_j (W_ij - m_ij)² = Σ_j W_ij² - 2 Σ_j W_ij m_ij + Σ_j m_ij², with the
    mean m_ij known from the profile; a matrix-free bulk-edge estimate for
    networks too large for dense eigenvalues.
    """
    n = {p: spec.populations[p].n for p in POPULATIONS}
    start = {"E": 0, "I": n["E"]}
    W = W.tocsr()
    V = np.zeros((2, 2))
    for a, X in enumerate(POPULATIONS):
        for b, Y in enumerate(POPULATIONS):
            pr = profiles[X + Y]
            block = W[start[X]:start[X] + n[X], start[Y]:start[Y] + n[Y]].tocoo()
            anchors = _row_anchor(n[X], pr.side, spec.dim)
            s = pr.side
            # offset of each edge on the Y grid -> its mean m_ij = µ φ' p(o)
            if spec.dim == 1:
                o = (block.col - anchors[block.row, 0] + s // 2) % s - s // 2
                lookup = np.zeros(s)
                lookup[pr.offsets[:, 0] + s // 2] = pr.p
                p_edge = lookup[o + s // 2]
            else:
                ox = (block.col % s - anchors[block.row, 0] + s // 2) % s - s // 2
                oy = (block.col // s - anchors[block.row, 1] + s // 2) % s - s // 2
                lookup = np.zeros((s, s))
                lookup[pr.offsets[:, 1] + s // 2, pr.offsets[:, 0] + s // 2] = pr.p
                p_edge = lookup[oy + s // 2, ox + s // 2]
            m_scale = pr.mu * theory.slope[b]
            total = np.sum(block.data ** 2) - 2 * m_scale * np.sum(block.data * p_edge) \
                + n[X] * m_scale ** 2 * np.sum(pr.p ** 2)
            V[a, b] = total / n[X]
    return float(np.sqrt(max(0.0, np.max(np.real(np.linalg.eigvals(V))))))


# ----------------------------------------------------------------------------- numerics


def match_outliers(predicted: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Assign each predicted eigenvalue its nearest distinct computed one (Hungarian); (n,) complex.

    Entries are NaN when fewer eigenvalues were computed than predicted.
    """
    from scipy.optimize import linear_sum_assignment

    out = np.full(predicted.size, np.nan + 0j)
    if predicted.size == 0 or found.size == 0:
        return out
    cost = np.abs(predicted[:, None] - found[None, :])
    r, c = linear_sum_assignment(cost)
    out[r] = found[c]
    return out


def spectrum_numerics(W, theory: Theory, method: str = "auto", n_extra: int | None = None, seed: int = 0,
                      tol: float = 1e-6, arpack_margin: float = 0.2) -> dict[str, Any]:
    """Eigenvalues of the sampled effective connectivity: all (dense) or the leading ones (ARPACK).

    Parameters
    ----------
    W : scipy.sparse matrix, (N, N)
    theory : Theory
        Used to size the ARPACK request and to match outliers.
    method : {"auto", "dense", "arpack"}
        "auto": dense for N <= 5,000, ARPACK otherwise.
    n_extra : int, optional
        Eigenvalues requested beyond the targeted outliers (ARPACK; default 2,
        or 6 when no outlier is predicted). Extra eigenvalues sit in the dense
        cloud at the bulk edge and converge slowly.
    seed : int
        Seed of ARPACK's start vector.
    tol : float
        ARPACK relative tolerance.
    arpack_margin : float
        ARPACK targets the outliers "well outside" the bulk, |λ| > (1 +
        margin) r; those nearer the edge are not separated from the bulk.

    Returns
    -------
    dict
        ``eigenvalues`` (M,) complex sorted by decreasing |λ|, ``method``,
        ``predicted`` (the targeted outliers of the theory, repeated by
        multiplicity: all outliers for dense, those beyond the margin for
        ARPACK), ``matched`` (computed eigenvalue nearest to each, Hungarian
        assignment), ``p99_modulus`` (99th percentile of |λ|, dense only; NaN
        otherwise), ``p99_bulk_modulus`` (the same without the matched
        outliers), ``bulk_edge`` (largest |λ| not matched to an outlier; with
        ARPACK a lower bound near the edge), ``converged`` (bool).

    Raises
    ------
    DataError
        ARPACK returned fewer eigenvalues than the outliers it was asked for.
    """
    N = W.shape[0]
    if method == "auto":
        method = "dense" if N <= DENSE_MAX else "arpack"
    converged = True
    if method == "dense":
        predicted = theory.expanded_outliers()
        lam = np.linalg.eigvals(W.toarray())
        p99 = float(np.percentile(np.abs(lam), 99))
    else:
        from scipy.sparse.linalg import ArpackNoConvergence, eigs

        predicted = theory.expanded_outliers(arpack_margin)
        extra = n_extra if n_extra is not None else (2 if predicted.size else 6)
        k = int(min(N - 2, predicted.size + extra))
        v0 = np.random.default_rng(seed).standard_normal(N)
        try:
            lam = eigs(W.astype(np.float64), k=k, which="LM", return_eigenvectors=False, tol=tol, v0=v0,
                       ncv=min(N - 1, max(2 * k + 1, k + 40)), maxiter=5000)
        except ArpackNoConvergence as err:
            lam = np.asarray(err.eigenvalues)
            converged = False
            if lam.size < predicted.size:
                raise ParameterDataError(f"ARPACK converged for {lam.size} of {k} eigenvalues",
                                         hint="use {method} dense for N <= 20000") from None
        p99 = float("nan")
    lam = np.asarray(lam, dtype=complex)
    lam = lam[np.argsort(-np.abs(lam))]
    matched = match_outliers(predicted, lam)
    rest = np.ones(lam.size, dtype=bool)
    for m in matched[np.isfinite(matched)]:
        rest[np.flatnonzero(lam == m)[:1]] = False
    bulk_edge = float(np.max(np.abs(lam[rest]))) if rest.any() else float("nan")
    p99_bulk = float(np.percentile(np.abs(lam[rest]), 99)) if method == "dense" and rest.any() else float("nan")
    return {"eigenvalues": lam, "method": method, "p99_modulus": p99, "p99_bulk_modulus": p99_bulk,
            "bulk_edge": bulk_edge, "matched": matched, "predicted": predicted, "converged": converged}


# ----------------------------------------------------------------------------- simulation


def simulate_rates(W_J, spec: NetworkSpec, theory: Theory, duration: float, dt: float | None = None,
                   noise: float = 0.01, seed: int = 0, n_record: int = 400,
                   transient: float = 0.5) -> dict[str, Any]:
    """Integrate τ dx/dt = -x + J φ(x) + I (Euler-Maruyama) from the fixed point plus noise.

    Parameters
    ----------
    W_J : scipy.sparse matrix, (N, N)
        The connectivity J (not the effective W).
    spec, theory : the network and its :func:`network_theory`.
    duration : float
        Simulated time, s.
    dt : float, optional
        Step, s (default τ/10).
    noise : float
        Standard deviation of the white-noise input, in units of x per sqrt(τ).
    seed : int
    n_record : int
        Number of recorded frames of the E population (evenly spaced).
    transient : float
        Fraction of the recording discarded before the order parameters.

    Returns
    -------
    dict
        ``times`` (n_record,) s, ``rates_e`` (n_record, N_E) float32 (x_E - x*_E),
        ``spatial_power`` (side_E^dim,) time-averaged |FFT|² of x_E - x*_E
        (numpy FFT layout), and the order parameters: ``global_synchrony``
        (Golomb's χ over all E neurons), ``local_synchrony`` (χ within patches
        of width 2 d_EE), ``dominant_wavenumber`` (|k| at the peak of the
        spatial power, cycles per side), ``dominant_wavevector``,
        ``dominant_frequency_hz`` (peak of the neuron-averaged temporal power
        spectrum, 0 for a static pattern), ``pattern_amplitude`` (RMS deviation
        from the fixed point).

    References
    ----------
    Golomb (2007) for χ.
    """
    rng = np.random.default_rng(seed)
    tau = spec.tau
    dt = tau / 10.0 if dt is None else dt
    n_steps = int(round(duration / dt))
    if n_steps < 10:
        raise ParameterError("duration", f"simulation of {duration} s with dt {dt} s has fewer than 10 steps",
                             where="{duration}/{dt}")
    pops = [spec.populations[p] for p in POPULATIONS]
    nE = pops[0].n
    xstar = np.concatenate([np.full(p.n, theory.fixed_point[i]) for i, p in enumerate(pops)])
    inp = np.concatenate([np.full(p.n, p.input) for p in pops])
    sl = [slice(0, nE), slice(nE, spec.n)]
    x = xstar + noise * rng.standard_normal(spec.n)
    J = W_J.tocsr()
    every = max(1, n_steps // n_record)
    frames, times = [], []
    a = dt / tau
    sq = noise * math.sqrt(dt / tau)
    r = np.empty_like(x)
    diverged = DataError("the rate simulation diverged (an unstable network without saturation grows "
                         "without bound)",
                         hint="use a saturating activation (tanh, sigmoid) to simulate an unstable regime")
    with np.errstate(over="ignore", invalid="ignore"):
        for step in range(1, n_steps + 1):
            for i, p in enumerate(pops):
                r[sl[i]] = activation(p.activation, x[sl[i]], p.gain, p.threshold)
            x += a * (-x + J @ r + inp) + sq * rng.standard_normal(spec.n)
            if step % 100 == 0 and not np.all(np.abs(x) < 1e100):
                raise diverged
            if step % every == 0:
                frames.append((x[:nE] - xstar[:nE]).astype(np.float32))
                times.append(step * dt)
    X = np.stack(frames)
    T = X.shape[0]
    keep = X[int(transient * T):]
    if not np.all(np.isfinite(keep)):
        raise diverged
    s = grid_side(nE, spec.dim)
    shaped = keep.reshape((keep.shape[0],) + ((s,) if spec.dim == 1 else (s, s)))
    axes = tuple(range(1, spec.dim + 1))
    power = np.mean(np.abs(np.fft.fftn(shaped, axes=axes)) ** 2, axis=0) / nE
    freqs = np.fft.fftfreq(s, d=1.0 / s)
    peak = np.unravel_index(int(np.argmax(power)), power.shape)
    vec = [int(freqs[i]) for i in peak[::-1]]  # (kx[, ky])
    dom_k = float(np.sqrt(sum(v * v for v in vec)))
    chi_global = _chi(keep)
    width = max(1, int(round(2 * spec.projections["EE"].range * s)))
    if spec.dim == 1:
        patches = [keep[:, i:i + width] for i in range(0, s - width + 1, width)]
    else:
        sq_ = keep.reshape(keep.shape[0], s, s)
        patches = [sq_[:, i:i + width, j:j + width].reshape(keep.shape[0], -1)
                   for i in range(0, s - width + 1, width) for j in range(0, s - width + 1, width)]
    chi_local = float(np.nanmean([_chi(p) for p in patches])) if patches else float("nan")
    centred = keep - keep.mean(axis=0, keepdims=True)
    tpow = np.mean(np.abs(np.fft.rfft(centred, axis=0)) ** 2, axis=1)
    fr = np.fft.rfftfreq(centred.shape[0], d=every * dt)
    dyn = float(np.mean(centred ** 2))
    total = float(np.mean(keep.astype(np.float64) ** 2))
    # a static (or slowly drifting) pattern: temporal variance < 20% of the deviation power, no frequency
    dom_f = float(fr[1 + int(np.argmax(tpow[1:]))]) if tpow.size > 1 and dyn > 0.2 * total else 0.0
    return {"times": np.asarray(times), "rates_e": X, "spatial_power": power,
            "global_synchrony": chi_global, "local_synchrony": chi_local,
            "dominant_wavenumber": dom_k, "dominant_wavevector": vec, "dominant_frequency_hz": dom_f,
            "pattern_amplitude": float(np.sqrt(np.mean(keep.astype(np.float64) ** 2)))}


def _chi(X: np.ndarray) -> float:
    """Golomb's synchrony χ = sqrt(Var_t(mean_i x_i) / mean_i Var_t(x_i)); NaN for no variance."""
    var_i = X.var(axis=0).mean()
    if not var_i > 1e-20:
        return float("nan")
    return float(np.sqrt(X.mean(axis=1).var() / var_i))


# ----------------------------------------------------------------------------- fitted dynamics


def dynamics_spectrum(A: np.ndarray, bin_size: float | None = None, discrete: bool = True) -> dict[str, Any]:
    """Spectrum and regime of fitted linear dynamics (e.g. an LDS transition matrix A).

    Parameters
    ----------
    A : (K, K) float
        x_{t+1} = A x_t (discrete) or dx/dt = A x (continuous).
    bin_size : float, optional
        Time step of a discrete model, s (for time constants and frequencies).
    discrete : bool

    Returns
    -------
    dict
        ``eigenvalues`` (K,) complex sorted by decreasing stability margin,
        ``stable``, ``regime`` ("stable", "stable_oscillatory", "unstable",
        "unstable_oscillatory", from the least stable mode), ``frequency_hz``
        and ``time_constant_s`` of that mode (per bin when no bin size),
        ``bulk_radius`` (circular-law radius sqrt(Σ(A - mean)²/K) of the
        entries, a reference scale for large A).

    Raises
    ------
    DataError
        A is not square or not finite.
    """
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        raise DataError(f"dynamics matrix must be square (K, K), got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise DataError("dynamics matrix contains NaN or infinite values")
    lam = np.linalg.eigvals(A)
    dt = float(bin_size) if bin_size else 1.0
    if discrete:
        with np.errstate(divide="ignore"):
            cont = np.log(lam.astype(complex)) / dt
        margin = np.abs(lam) - 1.0
    else:
        cont = lam.astype(complex)
        margin = lam.real
    order = np.argsort(-margin)
    lam, cont, margin = lam[order], cont[order], margin[order]
    lead = 0
    osc = abs(cont[lead].imag) > 1e-9
    stable = bool(margin[lead] < 0)
    regime = ("stable" if stable else "unstable") + ("_oscillatory" if osc else "")
    K = A.shape[0]
    radius = float(np.sqrt(np.sum((A - A.mean()) ** 2) / K))
    with np.errstate(divide="ignore"):
        tc = float(-1.0 / cont[lead].real) if cont[lead].real != 0 else float("inf")
    return {"eigenvalues": lam, "continuous": cont, "stable": stable, "regime": regime,
            "frequency_hz": float(abs(cont[lead].imag) / (2 * np.pi)), "time_constant_s": tc,
            "margin": float(margin[lead]), "bulk_radius": radius}
