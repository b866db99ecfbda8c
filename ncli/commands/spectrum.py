"""``ncli spectrum``: eigenvalue spectra and dynamical regimes of E/I networks and of fitted dynamics.

Two modes, decided by the options:

- **network** (``--network FILE`` and/or the network options): a spatially
  extended E/I network on a ring or torus is specified, sampled (sparse) and its
  effective connectivity's eigenvalues computed (dense for N <= 5,000, ARPACK
  otherwise) beside the theory (bulk radius, outliers per spatial mode, regime).
  No input store is read (stdin is never looked at) and the output layer has no
  parent.
- **fitted dynamics** (``STORE --from models/NAME``): the spectrum and regime of
  a fitted transition matrix (``A_`` of ``fit-lds`` or ``align``), so dynamics
  of different states can be compared. The output layer's parent is STORE.

Writes ``spectra/<NAME>/`` (docs/store.md, "Extensions"). The numerics live in
:mod:`ncli.models.spectral`.
"""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from ncli.commands._common import (Debug, InputStore, NoCache, Output, Overwrite, Quiet, Seed, choice,
                                   check_result_name, file_identity, finite, ncli_command, open_input,
                                   refuse_taken_name, write_result)
from ncli.core.errors import DataError, UsageError
from ncli.core.jsonutil import jsonable
from ncli.formats.store import Store, StoreWriter

log = logging.getLogger("ncli")
METHODS = ["auto", "dense", "arpack", "none"]
TIME = ["discrete", "continuous"]
#: Largest recorded rate array kept in the store (bytes); larger simulations keep only order parameters.
MAX_RATES_BYTES = 64 * 2 ** 20


def _pairs(values: list[str] | None, option: str, keys: tuple[str, ...], kind=float) -> dict:
    """Parse repeated ``KEY=VALUE`` options (a bare VALUE applies to every key)."""
    out: dict = {}
    for item in values or []:
        if "=" in item:
            key, _, val = item.partition("=")
            key = key.strip()
            if key not in keys:
                raise UsageError(f"unknown key '{key}' in {option} {item}", option,
                                 hint=f"keys: {', '.join(keys)}")
            targets = [key]
        else:
            val, targets = item, list(keys)
        try:
            parsed = kind(val.strip())
        except ValueError:
            raise UsageError(f"invalid value '{val}' in {option} {item}", option) from None
        if kind is float:
            finite(parsed, option)
        for key in targets:
            out[key] = parsed
    return out


def read_network_file(path: str) -> dict:
    """Read a network spec file: TOML (``.toml``) or JSON (anything else that parses as JSON).

    Raises
    ------
    UsageError
        The file is missing or does not parse.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError("network file not found", str(p))
    text = p.read_bytes()
    try:
        if p.suffix.lower() == ".toml":
            return tomllib.loads(text.decode("utf-8"))
        return json.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot parse the network file: {exc}", str(p),
                         hint="TOML needs a .toml suffix; other files are read as JSON") from None


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


def _complex2(values) -> np.ndarray:
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
    w.array(f"{path}/theory/eigenvalues", _complex2(th.eigenvalues),
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
        w.array(f"{path}/eigenvalues", _complex2(num["eigenvalues"]),
                attrs={"description": "computed eigenvalues of W = J diag(phi'(x*)) [re, im], by |lambda|",
                       "method": num["method"]})
        w.array(f"{path}/predicted_outliers", _complex2(num["predicted"]))
        w.array(f"{path}/matched_outliers", _complex2(num["matched"]))
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


def _load_dynamics(src: Store, source: str) -> tuple[np.ndarray, dict, str]:
    """The transition matrix named by ``--from`` (a model group with ``A_``, or an array) and its attrs."""
    path = source.strip("/")
    if src.is_array(path):
        arr_path, attrs = path, src.attrs(path.rpartition("/")[0]) if "/" in path else {}
    elif src.exists(path):
        arr_path, attrs = f"{path}/A_", src.attrs(path)
        if not src.is_array(arr_path):
            raise DataError(f"'{path}' holds no transition matrix A_", src.location,
                            hint="--from takes a model with dynamics (fit-lds, align) or a square array")
    else:
        models = ", ".join(f"models/{m}" for m in src.children("models")) or "(none)"
        raise UsageError(f"'{path}' is not in the store", "--from", hint=f"models in this store: {models}")
    return np.asarray(src.read(arr_path), dtype=np.float64), attrs, arr_path


@ncli_command("spectrum")
def spectrum(
    store: InputStore = None,
    network: Annotated[Optional[str], typer.Option("--network", help="Network spec file (TOML or JSON); "
                                                   "options below override it.", show_default=False)] = None,
    source: Annotated[Optional[str], typer.Option("--from", help="Analyse fitted dynamics in STORE instead: "
                                                  "a model group with A_ (models/lds) or a square array.",
                                                  show_default=False)] = None,
    dim: Annotated[Optional[int], typer.Option("--dim", help="1: ring, 2: torus.", show_default=False)] = None,
    n_e: Annotated[Optional[int], typer.Option("--n-e", help="Excitatory neurons (default 800; a square on a "
                                               "torus).", show_default=False)] = None,
    n_i: Annotated[Optional[int], typer.Option("--n-i", help="Inhibitory neurons (default 200).",
                                               show_default=False)] = None,
    tau: Annotated[Optional[float], typer.Option("--tau", help="Time constant (s, default 0.01).",
                                                 show_default=False)] = None,
    in_degree: Annotated[Optional[float], typer.Option("--in-degree", help="In-degree K of every projection "
                                                       "(default 50).", show_default=False)] = None,
    density: Annotated[Optional[float], typer.Option("--density", help="Connection density of every "
                                                     "projection (K = density N_Y), instead of --in-degree.",
                                                     show_default=False)] = None,
    mean: Annotated[Optional[list[str]], typer.Option("--mean", help="Mean coupling ḡ, XY=VALUE (to X from Y; "
                                                      "negative from I), repeatable.", show_default=False)] = None,
    spread: Annotated[Optional[list[str]], typer.Option("--spread", help="Coupling spread g: VALUE or XY=VALUE "
                                                        "(default 0).", show_default=False)] = None,
    range_: Annotated[Optional[list[str]], typer.Option("--range", help="Projection range d (Gaussian sd, "
                                                        "fraction of the side): VALUE or XY=VALUE (default 0.1).",
                                                        show_default=False)] = None,
    activation: Annotated[Optional[list[str]], typer.Option("--activation", help="linear, tanh, relu or "
                                                            "sigmoid: NAME or E=NAME, I=NAME.",
                                                            show_default=False)] = None,
    input_: Annotated[Optional[list[str]], typer.Option("--input", help="External input I_X: VALUE or E=VALUE.",
                                                        show_default=False)] = None,
    method: Annotated[str, typer.Option("--method", help="Eigenvalues: auto (dense for N <= 5000, else "
                                        "ARPACK), dense, arpack, none (theory only).")] = "auto",
    simulate: Annotated[Optional[float], typer.Option("--simulate", help="Also simulate the rate dynamics for "
                                                      "this many seconds (order parameters).",
                                                      show_default=False)] = None,
    dt: Annotated[Optional[float], typer.Option("--dt", help="Simulation step (s, default tau/10).",
                                                show_default=False)] = None,
    noise: Annotated[float, typer.Option("--noise", help="Simulation noise (sd per sqrt(tau)).")] = 0.01,
    time: Annotated[str, typer.Option("--time", help="With --from: the matrix is discrete (x_t+1 = A x_t) "
                                      "or continuous (dx/dt = A x).")] = "discrete",
    name: Annotated[Optional[str], typer.Option("--name", help="Output group spectra/NAME (default: network, "
                                                "or the --from model's name).", show_default=False)] = None,
    seed: Seed = 0,
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Eigenvalue spectrum, spectral theory and dynamical regime of an E/I network or of fitted dynamics.

    Network mode (--network FILE and/or the network options; no input store is
    read): writes spectra/NAME with the computed eigenvalues of the effective
    connectivity, the theory (bulk radius, outlier modes with wavenumbers and
    multiplicities) and the regime (asynchronous, chaos, global_synchronous,
    bump, global_oscillation, travelling_wave) with wavenumber and frequency;
    --simulate adds a rate simulation with order parameters. Fitted mode
    (STORE --from models/NAME): the spectrum and regime of the model's A_.
    Prints the output store's location; a summary goes to stderr.
    """
    from ncli.models import spectral as S

    choice(method, METHODS, "--method")
    choice(time, TIME, "--time")
    finite(tau, "--tau", positive=True)
    finite(in_degree, "--in-degree", positive=True)
    finite(density, "--density", positive=True, maximum=1.0)
    finite(simulate, "--simulate", positive=True)
    finite(dt, "--dt", positive=True)
    finite(noise, "--noise", minimum=0.0)
    if in_degree is not None and density is not None:
        raise UsageError("--in-degree and --density are mutually exclusive", "--in-degree/--density")
    check_result_name(name)
    net_opts = {"--dim": dim, "--n-e": n_e, "--n-i": n_i, "--tau": tau, "--in-degree": in_degree,
                "--density": density, "--mean": mean, "--spread": spread, "--range": range_,
                "--activation": activation, "--input": input_, "--simulate": simulate, "--dt": dt}
    given = [k for k, v in net_opts.items() if v is not None]
    if source is not None:
        if network is not None or given:
            raise UsageError(f"--from analyses a fitted model; it takes no network options ({', '.join(given) or '--network'})",
                             "--from")
        if method not in ("auto", "dense"):
            raise UsageError(f"--method {method} does not apply to --from: fitted matrices are solved densely",
                             "--method")
        _fitted(store, source, time, name, seed, output, overwrite, no_cache)
        return
    if store not in (None, ""):
        raise UsageError("a network spectrum reads no input store", f"argument {store}",
                         hint="drop STORE, or use STORE --from models/NAME for fitted dynamics")
    if network is None and not given:
        raise UsageError("nothing to analyse", "--network/--from",
                         hint="give --network FILE, network options (--mean EE=... etc.), or STORE --from models/NAME")
    data = read_network_file(network) if network is not None else {}
    means = _pairs(mean, "--mean", S.PAIRS)
    spreads = _pairs(spread, "--spread", S.PAIRS)
    ranges = _pairs(range_, "--range", S.PAIRS)
    acts = _pairs(activation, "--activation", S.POPULATIONS, kind=str)
    inputs = _pairs(input_, "--input", S.POPULATIONS)
    spec = build_spec(data, dim=dim, n_e=n_e, n_i=n_i, tau=tau, in_degree=in_degree, density=density,
                      means=means, spreads=spreads, ranges=ranges, activations=acts, inputs=inputs,
                      where=network or "network options")
    if dt is not None and dt > spec.tau / 2:
        raise UsageError(f"--dt {dt:g} s is more than half the time constant tau = {spec.tau:g} s: the Euler "
                         "integration would be unstable or show step artefacts", "--dt",
                         hint=f"use --dt <= {spec.tau / 10:g} (the default, tau/10)")
    if method == "dense" and spec.n > 20_000:
        raise UsageError(f"--method dense needs a dense {spec.n} x {spec.n} matrix; use auto or arpack", "--method")
    gname = name or "network"
    params = {"mode": "network", "spec": spec.to_dict(), "method": method, "simulate": simulate, "dt": dt,
              "noise": noise, "seed": seed, "name": gname}
    identity = [file_identity(network)] if network is not None else []

    def build(w: StoreWriter) -> None:
        res = _network_result(spec, seed, method, simulate, dt, noise)
        attrs = {"kind": "network", "spec": spec.to_dict(), "regime": res["regime"], "seed": seed,
                 "n": spec.n, "dim": spec.dim, "tau_s": spec.tau,
                 "model": "ncli.models.spectral (Bridging Scales, NeurIPS 2025)"}
        _write_network(w, f"spectra/{gname}", spec, res, attrs)
        _log_network(spec, res)

    write_result("spectrum", parent=None, params=params, build=build, output=output, overwrite=overwrite,
                 no_cache=no_cache, inputs=[network] if network else [], identity=identity)


def _fitted(store, source: str, time: str, name: str | None, seed: int, output, overwrite, no_cache) -> None:
    """``STORE --from models/NAME``: spectrum and regime of fitted dynamics."""
    from ncli.models.spectral import dynamics_spectrum

    src = open_input(store)
    A, attrs, arr_path = _load_dynamics(src, source)
    bin_size = attrs.get("bin_size_s") if time == "discrete" else None
    if time == "discrete" and bin_size is None:
        log.warning("spectrum: %s has no bin_size_s; time constants and frequencies are per bin", source)
    res = dynamics_spectrum(A, bin_size=bin_size, discrete=time == "discrete")
    parts = source.strip("/").split("/")
    gname = name or (parts[-2] if src.is_array(source.strip("/")) and len(parts) > 1 else parts[-1])
    refuse_taken_name(src, gname, [f"spectra/{gname}"], "a spectrum")
    params = {"mode": "fitted", "from": source, "time": time, "name": gname, "seed": seed}

    def build(w: StoreWriter) -> None:
        path = f"spectra/{gname}"
        w.group(path)
        w.array(f"{path}/eigenvalues", _complex2(res["eigenvalues"]),
                attrs={"description": f"eigenvalues of {arr_path} [re, im], least stable first",
                       "method": "dense"})
        w.array(f"{path}/continuous_eigenvalues", _complex2(res["continuous"]), unit="1/s" if bin_size else "1/bin",
                attrs={"description": "log(lambda)/bin_size for discrete dynamics [re, im]"})
        regime = {k: res[k] for k in ("regime", "stable", "frequency_hz", "time_constant_s", "margin")}
        w.group(path, attrs={"kind": "dynamics", "source": arr_path, "time": time, "bin_size_s": bin_size,
                             "regime": regime, "metrics": {"bulk_radius_entries": res["bulk_radius"],
                                                           "n_eigenvalues": int(A.shape[0])}})
        unit = "Hz" if bin_size else "cycles/bin"
        log.info("spectrum %s: %d eigenvalues, regime %s (least stable |λ| %.4g, %.3g %s)", arr_path,
                 A.shape[0], res["regime"], float(np.abs(res["eigenvalues"][0])), res["frequency_hz"], unit)

    write_result("spectrum", parent=src, params=params, build=build, output=output, overwrite=overwrite,
                 no_cache=no_cache)
