"""Network mode of ``ncli spectrum``: spectrum, spectral theory and regime of a spatial E/I network.

A spatially extended E/I network on a ring or torus is specified, sampled
(sparse) and its effective connectivity's eigenvalues computed (dense for
N <= 5,000, ARPACK otherwise) beside the theory (bulk radius, outliers per
spatial mode, regime); optionally its rate dynamics are simulated. Writes
``spectra/<NAME>/`` (docs/store.md, "Extensions"). The numerics live in
:mod:`ncli.models.spectral`. Reference: "Bridging Scales: Spectral Theory
Reveals How Local Connectivity Rules Sculpt Global Neural Dynamics in
Spatially Extended Networks", NeurIPS 2025.
"""

from __future__ import annotations

import json
import logging

import numpy as np

from ncli.core.errors import UsageError
from ncli.core.jsonutil import jsonable
from ncli.formats.store import StoreWriter
from ncli.methods.results import Job

log = logging.getLogger("ncli")
#: Largest recorded rate array kept in the store (bytes); larger simulations keep only order parameters.
MAX_RATES_BYTES = 64 * 2 ** 20


def build_spec(data: dict, *, dim, n_e, n_i, tau, in_degree, density, means, spreads, ranges, activations,
               inputs, where: str | None):
    """Merge the file's spec with the command-line options (options win) and validate it."""
    from ncli.models.spectral import PAIRS, NetworkSpec

    data = json.loads(json.dumps(data))  # deep copy
    if not isinstance(data, dict):
        raise UsageError(f"network spec must be a table/object, got {type(data).__name__}", where)
    for section in ("defaults", "populations", "projections"):
        if data.get(section) is not None and not isinstance(data[section], dict):
            raise UsageError(f"'{section}' in the network spec must be a table/object, got "
                             f"{type(data[section]).__name__}", where)
        if data.get(section) is None:
            data.pop(section, None)
    for section, keys in (("populations", ("E", "I")), ("projections", PAIRS)):
        for key in keys:
            value = data.get(section, {}).get(key)
            if value is not None and not isinstance(value, dict):
                raise UsageError(f"{section[:-1]} {key} must be a table/object, got {type(value).__name__}", where)
            if key in data.get(section, {}) and value is None:
                data[section].pop(key)
    if dim is not None:
        data["dim"] = dim
    if tau is not None:
        data["tau"] = tau
    pops = data.setdefault("populations", {})
    for name, n, default in (("E", n_e, 800), ("I", n_i, 200)):
        pop = pops.setdefault(name, {})
        if n is not None:
            pop["n"] = n
        pop.setdefault("n", default)
        if name in activations:
            pop["activation"] = activations[name]
        if name in inputs:
            pop["input"] = inputs[name]
    projs = data.setdefault("projections", {})
    defaults = data.setdefault("defaults", {})
    defaults.setdefault("range", 0.1)
    defaults.setdefault("spread", 0.0)
    if "in_degree" not in defaults and "density" not in defaults:
        defaults["in_degree"] = 50
    for key in PAIRS:
        pr = projs.setdefault(key, {})
        for name, table in (("mean", means), ("spread", spreads), ("range", ranges)):
            if key in table:
                pr[name] = table[key]
        if in_degree is not None:
            pr["in_degree"] = in_degree
            pr.pop("density", None)
        if density is not None:
            pr["density"] = density
            pr.pop("in_degree", None)
    return NetworkSpec.from_dict(data, where)


def check_network(spec, method: str, dt: float | None) -> None:
    """Refuse a simulation step or an eigensolver this network cannot use.

    Raises
    ------
    UsageError
        ``--dt`` above half the time constant, or ``--method dense`` for more than 20,000 neurons.
    """
    if dt is not None and dt > spec.tau / 2:
        raise UsageError(f"--dt {dt:g} s is more than half the time constant tau = {spec.tau:g} s: the Euler "
                         "integration would be unstable or show step artefacts", "--dt",
                         hint=f"use --dt <= {spec.tau / 10:g} (the default, tau/10)")
    if method == "dense" and spec.n > 20_000:
        raise UsageError(f"--method dense needs a dense {spec.n} x {spec.n} matrix; use auto or arpack", "--method")


def network_job(spec, *, method: str, simulate: float | None, dt: float | None, noise: float, seed: int,
                name: str, inputs: list, identity: list) -> Job:
    """The ``spectra/<name>`` layer of one network (sampled, solved and simulated when written).

    Parameters
    ----------
    spec : NetworkSpec
    method : {"auto", "dense", "arpack", "none"}
        Eigensolver ("none": theory only).
    simulate : float, optional
        Seconds of rate dynamics to simulate.
    dt, noise : float
        Simulation step (s; None: tau/10) and noise.
    seed : int
    name : str
        The group under ``spectra/``.
    inputs, identity : list of str
        The network file (history) and its SHA-256 (cache key); empty without one.
    """
    params = {"mode": "network", "spec": spec.to_dict(), "method": method, "simulate": simulate, "dt": dt,
              "noise": noise, "seed": seed, "name": name}

    def build(w: StoreWriter) -> None:
        res = _network_result(spec, seed, method, simulate, dt, noise)
        attrs = {"kind": "network", "spec": spec.to_dict(), "regime": res["regime"], "seed": seed,
                 "n": spec.n, "dim": spec.dim, "tau_s": spec.tau,
                 "model": "ncli.models.spectral (Bridging Scales, NeurIPS 2025)"}
        _write_network(w, f"spectra/{name}", spec, res, attrs)
        _log_network(spec, res)

    return Job(params, build, inputs=inputs, identity=identity)


def complex2(values) -> np.ndarray:
    """Complex values as an (n, 2) float64 array of [real, imag]."""
    v = np.asarray(values, dtype=complex).ravel()
    return np.stack([v.real, v.imag], axis=1).astype(np.float64)


def _network_result(spec, seed: int, method: str, simulate: float | None, dt: float | None,
                    noise: float) -> dict:
    """Sample, compute the theory, numerics and (optionally) the simulation of one network."""
    from ncli.models import spectral as S

    profiles = {key: S.profile(spec, key) for key in S.PAIRS}
    theory = S.network_theory(spec, profiles)
    regime = S.classify(theory)
    out = {"theory": theory, "regime": regime, "profiles": profiles}
    need_matrix = method != "none" or simulate
    if need_matrix:
        J = S.sample_connectivity(spec, seed=seed, profiles=profiles)
        W = S.effective_connectivity(J, spec, theory)
        out["nnz"] = int(J.nnz)
        out["sample_bulk_radius"] = S.empirical_bulk_radius(W, spec, theory, profiles)
        if method != "none":
            out["numerics"] = S.spectrum_numerics(W, theory, method=method, seed=seed)
        if simulate:
            out["simulation"] = S.simulate_rates(J, spec, theory, duration=simulate, dt=dt, noise=noise, seed=seed)
    return out


def _write_network(w: StoreWriter, path: str, spec, res: dict, attrs: dict) -> None:
    from ncli.models.spectral import POPULATIONS

    th = res["theory"]
    g = w.group(path)
    t = w.group(f"{path}/theory")
    w.array(f"{path}/theory/eigenvalues", complex2(th.eigenvalues),
            attrs={"description": "eigenvalues of the mean effective connectivity per spatial mode [re, im]"})
    w.array(f"{path}/theory/wavevector", th.wavevectors.astype(np.int64),
            attrs={"description": "wavevector of each mode, cycles per side length", "unit": "1/side"})
    w.array(f"{path}/theory/wavenumber", th.wavenumber, unit="1/side")
    w.array(f"{path}/theory/multiplicity", th.multiplicity.astype(np.int64))
    w.array(f"{path}/theory/outlier", th.outliers())
    w.array(f"{path}/theory/condition", th.condition,
            attrs={"description": "eigenvalue condition number of each mode in its 2x2 block"})
    for name in ("variance_profile", "mean_coupling", "k_eff"):
        w.array(f"{path}/theory/{name}", np.asarray(getattr(th, name), dtype=np.float64),
                attrs={"rows": "to E, I", "columns": "from E, I"})
    w.array(f"{path}/theory/fixed_point", th.fixed_point, attrs={"populations": list(POPULATIONS)})
    w.array(f"{path}/theory/slope", th.slope, attrs={"populations": list(POPULATIONS)})
    t.attrs.update({"bulk_radius": th.bulk_radius})
    metrics = {"bulk_radius_theory": th.bulk_radius, "n_outlier_modes": int(th.outliers().sum()),
               "n_outliers": int(th.multiplicity[th.outliers()].sum())}
    if "sample_bulk_radius" in res:
        metrics["bulk_radius_sample"] = res["sample_bulk_radius"]
        metrics["nnz"] = res["nnz"]
    num = res.get("numerics")
    if num is not None:
        w.array(f"{path}/eigenvalues", complex2(num["eigenvalues"]),
                attrs={"description": "computed eigenvalues of W = J diag(phi'(x*)) [re, im], by |lambda|",
                       "method": num["method"]})
        w.array(f"{path}/predicted_outliers", complex2(num["predicted"]))
        w.array(f"{path}/matched_outliers", complex2(num["matched"]))
        pred, got = num["predicted"], num["matched"]
        ok = np.isfinite(got)
        rel = np.abs(got[ok] - pred[ok]) / np.abs(pred[ok]) if ok.any() else np.zeros(0)
        metrics.update(method=num["method"], n_eigenvalues=int(num["eigenvalues"].size),
                       p99_modulus=num["p99_modulus"], p99_bulk_modulus=num["p99_bulk_modulus"],
                       bulk_edge_computed=num["bulk_edge"],
                       outlier_rel_error_max=float(rel.max()) if rel.size else None,
                       outlier_rel_error_median=float(np.median(rel)) if rel.size else None)
        if np.isfinite(num["p99_bulk_modulus"]):
            metrics["bulk_radius_rel_error"] = abs(num["p99_bulk_modulus"] - th.bulk_radius) / th.bulk_radius
    sim = res.get("simulation")
    if sim is not None:
        sim_attrs = {k: v for k, v in sim.items() if not isinstance(v, np.ndarray)}
        w.group(f"{path}/simulation", attrs=sim_attrs)
        w.array(f"{path}/simulation/times", sim["times"], unit="s")
        w.array(f"{path}/simulation/spatial_power", sim["spatial_power"].astype(np.float64),
                attrs={"description": "time-averaged |FFT|^2 of x_E - x*_E (numpy FFT order)"})
        if sim["rates_e"].nbytes <= MAX_RATES_BYTES:
            w.array(f"{path}/simulation/rates_e", sim["rates_e"],
                    attrs={"description": "x_E(t) - x*_E of the E population, (T, N_E)"})
        metrics.update({f"sim_{k}": v for k, v in sim_attrs.items()})
    g.attrs.update(jsonable({**attrs, "metrics": metrics}))


def _log_network(spec, res: dict) -> None:
    th, reg = res["theory"], res["regime"]
    desc = f"regime {reg['regime']}"
    if reg["source"] == "outlier":
        desc += f" (wavenumber {reg['wavenumber']:.3g}"
        desc += f", {reg['frequency_hz']:.3g} Hz)" if reg["frequency_hz"] > 0 else ")"
    log.info("spectrum: N=%d (%d E, %d I) on a %s; %s", spec.n, spec.populations["E"].n, spec.populations["I"].n,
             "ring" if spec.dim == 1 else "torus", desc)
    line = f"  bulk radius: theory {th.bulk_radius:.4g}"
    if "sample_bulk_radius" in res:
        line += f", sampled variance profile {res['sample_bulk_radius']:.4g}"
    num = res.get("numerics")
    if num is not None and np.isfinite(num["p99_bulk_modulus"]):
        line += f", 99th percentile |λ| of the bulk {num['p99_bulk_modulus']:.4g} (all: {num['p99_modulus']:.4g})"
    log.info(line)
    m = th.outliers()
    if m.any():
        order = np.argsort(-th.eigenvalues[m].real)[:6]
        parts = [f"k={th.wavenumber[m][i]:.3g}: {th.eigenvalues[m][i]:.3g} (x{th.multiplicity[m][i]})"
                 for i in order]
        log.info("  outliers (theory, rightmost first): %s%s", ", ".join(parts), " ..." if m.sum() > 6 else "")
    sim = res.get("simulation")
    if sim is not None:
        log.info("  simulation: dominant wavenumber %.3g, frequency %.3g Hz, global χ %.3g, local χ %.3g",
                 sim["dominant_wavenumber"], sim["dominant_frequency_hz"], sim["global_synchrony"],
                 sim["local_synchrony"])
