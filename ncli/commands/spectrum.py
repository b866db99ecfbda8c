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

Writes ``spectra/<NAME>/`` (docs/store.md, "Extensions"). The two analyses
live in :mod:`ncli.methods.spectrum` (``network``, ``dynamics``), the numerics in
:mod:`ncli.models.spectral`. ``--method`` is the eigensolver, not a registered
method (see :mod:`ncli.methods.spectrum`).
"""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path
from typing import Annotated, Optional

import typer

from ncli.commands._io import file_identity, open_input, refuse_taken_name, write_job
from ncli.commands._options import (Debug, InputStore, NoCache, Output, Overwrite, Quiet, Seed, check_result_name,
                                    choice, finite)
from ncli.commands._runtime import ncli_command, set_flags
from ncli.core.errors import UsageError
from ncli.methods.spectrum.dynamics import dynamics_job
from ncli.methods.spectrum.network import build_spec, check_network, network_job

log = logging.getLogger("ncli")
#: the eigensolvers of --method (not registered methods: see ncli.methods.spectrum)
METHODS = ["auto", "dense", "arpack", "none"]
TIME = ["discrete", "continuous"]


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
    from ncli.models.spectral import PAIRS, POPULATIONS

    _check_options(method, time, tau=tau, in_degree=in_degree, density=density, simulate=simulate, dt=dt,
                   noise=noise)
    check_result_name(name)
    net_opts = {"--dim": dim, "--n-e": n_e, "--n-i": n_i, "--tau": tau, "--in-degree": in_degree,
                "--density": density, "--mean": mean, "--spread": spread, "--range": range_,
                "--activation": activation, "--input": input_, "--simulate": simulate, "--dt": dt}
    given = [k for k, v in net_opts.items() if v is not None]
    if source is not None:
        _refuse_for_fitted(network, given, method)
        src = open_input(store)
        job = dynamics_job(src, source, time=time, name=name, seed=seed)
        refuse_taken_name(src, job.params["name"], [f"spectra/{job.params['name']}"], "a spectrum")
        write_job("spectrum", src, job, output=output, overwrite=overwrite, no_cache=no_cache)
        return
    _refuse_for_network(store, network, given)
    spec = build_spec(read_network_file(network) if network is not None else {}, dim=dim, n_e=n_e, n_i=n_i,
                      tau=tau, in_degree=in_degree, density=density, means=_pairs(mean, "--mean", PAIRS),
                      spreads=_pairs(spread, "--spread", PAIRS), ranges=_pairs(range_, "--range", PAIRS),
                      activations=_pairs(activation, "--activation", POPULATIONS, kind=str),
                      inputs=_pairs(input_, "--input", POPULATIONS), where=network or "network options")
    check_network(spec, method, dt)
    set_flags({"duration": "--simulate"})  # simulate_rates(duration=...) is the --simulate option
    job = network_job(spec, method=method, simulate=simulate, dt=dt, noise=noise, seed=seed, name=name or "network",
                      inputs=[network] if network else [],
                      identity=[file_identity(network)] if network is not None else [])
    write_job("spectrum", None, job, output=output, overwrite=overwrite, no_cache=no_cache)


def _check_options(method: str, time: str, **numbers) -> None:
    """The checks of the options that need no input: choices, finite numbers and their bounds.

    Raises
    ------
    UsageError
    """
    choice(method, METHODS, "--method")
    choice(time, TIME, "--time")
    finite(numbers["tau"], "--tau", positive=True)
    finite(numbers["in_degree"], "--in-degree", positive=True)
    finite(numbers["density"], "--density", positive=True, maximum=1.0)
    finite(numbers["simulate"], "--simulate", positive=True)
    finite(numbers["dt"], "--dt", positive=True)
    finite(numbers["noise"], "--noise", minimum=0.0)
    if numbers["in_degree"] is not None and numbers["density"] is not None:
        raise UsageError("--in-degree and --density are mutually exclusive", "--in-degree/--density")


def _refuse_for_fitted(network: str | None, given: list[str], method: str) -> None:
    """``--from`` takes no network options and no sparse eigensolver (UsageError)."""
    if network is not None or given:
        raise UsageError(f"--from analyses a fitted model; it takes no network options ({', '.join(given) or '--network'})",
                         "--from")
    if method not in ("auto", "dense"):
        raise UsageError(f"--method {method} does not apply to --from: fitted matrices are solved densely",
                         "--method")


def _refuse_for_network(store: str | None, network: str | None, given: list[str]) -> None:
    """A network spectrum reads no store and needs a network (UsageError)."""
    if store not in (None, ""):
        raise UsageError("a network spectrum reads no input store", f"argument {store}",
                         hint="drop STORE, or use STORE --from models/NAME for fitted dynamics")
    if network is None and not given:
        raise UsageError("nothing to analyse", "--network/--from",
                         hint="give --network FILE, network options (--mean EE=... etc.), or STORE --from models/NAME")
