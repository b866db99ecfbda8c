"""``ncli simulate``: ground-truth generators, one subcommand each.

``ncli simulate lds`` writes a Poisson linear-dynamical-system population (see
:class:`ncli.models.simulators.PoissonLDS`) as an ncli store, plus the ground
truth (``latents/truth`` per session and ``models/truth``), and optionally as
NWB files for the ``convert`` round trip. Later issues add generators here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from ncli.commands._common import (finite, Debug, NoCache, Output, Overwrite, Quiet, Seed, ncli_command,
                                   write_result)
from ncli.core.errors import UsageError
from ncli.formats.session import BehaviorSeries, UnitsSource, write_session
from ncli.formats.store import StoreWriter, normalize_location

#: Recording start time given to every simulated session (and its NWB file).
SIM_START_TIME = "2000-01-01T00:00:00+00:00"

app = typer.Typer(help="Ground-truth generators: write a synthetic store with known structure.",
                  no_args_is_help=True, rich_markup_mode=None)


def _session_attrs(generator: str) -> dict:
    """Session attributes of a simulated session (the same for every generator)."""
    return {"subject": "sim", "species": "simulated", "start_time": SIM_START_TIME,
            "source": {"path": f"ncli simulate {generator}", "sha256": ""}}


def nwb_paths(path: str, session_ids: list[str]) -> list[Path]:
    """NWB file per session: ``PATH`` itself for one session, ``<stem>_<sid><suffix>`` for several."""
    p = Path(path)
    if len(session_ids) == 1:
        return [p]
    return [p.with_name(f"{p.stem}_{sid}{p.suffix or '.nwb'}") for sid in session_ids]


def _units(sess) -> UnitsSource:
    return UnitsSource(ids=sess.ids, areas=sess.areas, spikes=lambda u, s=sess: s.spike_times[u])


def _behavior(sess) -> dict[str, BehaviorSeries]:
    return {name: BehaviorSeries(timestamps=b["timestamps"], data=b["data"], unit=b["unit"],
                                 columns=list(b["columns"]), description=f"simulated {name}")
            for name, b in sess.behavior.items()}


@app.command("lds")
@ncli_command("simulate")
def lds(
    output: Output = None,
    nwb: Annotated[Optional[str], typer.Option("--nwb", help="Also write the session(s) as NWB: PATH for one "
                                               "session, PATH_<session>.nwb for several.")] = None,
    units: Annotated[int, typer.Option("--units", help="Units per session (half 'M1', half 'PMd').")] = 60,
    latent_dim: Annotated[int, typer.Option("--latent-dim", help="Latent dimension K.")] = 4,
    duration: Annotated[float, typer.Option("--duration", help="Length of each session (s).")] = 600.0,
    bin_size: Annotated[float, typer.Option("--bin-size", help="Simulation and store bin width (s).")] = 0.02,
    baseline_rate: Annotated[float, typer.Option("--baseline-rate", help="Typical firing rate (Hz).")] = 5.0,
    sessions: Annotated[int, typer.Option("--sessions", help="Number of sessions (shared dynamics, "
                                          "different units).")] = 1,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Poisson linear dynamical system with a 2-d velocity read out from the latent.

    Writes sessions sim0, sim1, ... with units, binned counts, behaviour
    'velocity' (cm/s, 100 Hz), trials, the true latents (latents/truth) and
    parameters (models/truth). Prints the store location.
    """
    from ncli.formats.nwb_writer import write_nwb
    from ncli.models.simulators import PoissonLDS

    finite(duration, "--duration")
    finite(bin_size, "--bin-size")
    finite(baseline_rate, "--baseline-rate")
    if output is not None and nwb is not None:
        out_loc = normalize_location(output)
        for target in nwb_paths(nwb, [f"sim{i}" for i in range(sessions)]):
            if str(target.resolve()) == out_loc:
                raise UsageError("--nwb and -o name the same path", str(target))
    if output is not None and Path(output).exists() and not overwrite:
        raise UsageError("output already exists", normalize_location(output), hint="pass --overwrite to replace it")
    if nwb is not None:
        for target in nwb_paths(nwb, [f"sim{i}" for i in range(sessions)]):
            if not target.resolve().parent.is_dir():
                raise UsageError("NWB output directory does not exist", str(target.resolve().parent))
            if target.exists() and not overwrite:
                raise UsageError("NWB output already exists", str(target), hint="pass --overwrite to replace it")

    sim = PoissonLDS(n_units=units, latent_dim=latent_dim, bin_size=bin_size, baseline_rate=baseline_rate,
                     n_sessions=sessions, seed=seed).init_params()
    sim_sessions = sim.sample(duration)

    params = {"generator": "lds", "units": units, "latent_dim": latent_dim, "duration": duration,
              "bin_size": bin_size, "baseline_rate": baseline_rate, "sessions": sessions, "seed": seed}

    def build(w: StoreWriter) -> None:
        for sess in sim_sessions:
            write_session(w, sess.session_id, units=_units(sess), bin_size=sess.bin_size,
                          t_start=float(sess.epochs[0, 0]), t_stop=float(sess.epochs[0, 1]),
                          behavior=_behavior(sess), trials=sess.trials, epochs=sess.epochs,
                          attrs=_session_attrs("lds"))
            w.array(f"sessions/{sess.session_id}/latents/truth", sess.latents.astype(np.float32),
                    attrs={"description": "true latent state of the simulation"})
        sim.to_group(w.group("models/truth"), extra={"sessions": [s.session_id for s in sim_sessions]})
        if nwb is not None:
            # written last, inside the store's transaction: a failure leaves neither output
            for sess, target in zip(sim_sessions, nwb_paths(nwb, [s.session_id for s in sim_sessions])):
                partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
                try:
                    write_nwb(partial, session_id=sess.session_id, unit_ids=sess.ids, unit_areas=sess.areas,
                              spike_times=sess.spike_times,
                              behavior=sess.behavior, trials=sess.trials, epochs=sess.epochs,
                              start_time=SIM_START_TIME, overwrite=True)
                    os.replace(partial, target)
                finally:
                    if partial.exists():
                        partial.unlink()
    # the NWB files are written by build(): a cache hit would skip them
    write_result("simulate", parent=None, params=params, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache or nwb is not None)


@app.command("candy")
@ncli_command("simulate")
def candy(
    output: Output = None,
    sessions: Annotated[int, typer.Option("--sessions", help="Number of sessions (each with 30-80 units, "
                                          "no unit correspondence).")] = 4,
    bins: Annotated[int, typer.Option("--bins", help="Bins per session.")] = 3000,
    bin_size: Annotated[float, typer.Option("--bin-size", help="Bin width (s).")] = 0.05,
    noise: Annotated[str, typer.Option("--noise", help="Observation noise: poisson or gaussian.")] = "poisson",
    seed: Seed = 0,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Shared 4-d LDS observed by several sessions through random nonlinear readouts (CANDY setting).

    Writes sessions sim0, sim1, ... with pre-binned counts, behaviour 'velocity'
    (cm/s, a linear readout of the latent), the true latents (latents/truth)
    and parameters with the true eigenvalues (models/truth). Prints the store location.
    """
    from ncli.models.simulators import CandySimulator

    sim = CandySimulator(n_sessions=sessions, n_bins=bins, bin_size=bin_size, noise=noise,
                         seed=seed).init_params()
    sim_sessions = sim.sample()
    params = {"generator": "candy", "sessions": sessions, "bins": bins, "bin_size": bin_size,
              "noise": noise, "seed": seed}

    def build(w: StoreWriter) -> None:
        for sess in sim_sessions:
            sid, counts = sess["session_id"], sess["counts"]
            T = counts.shape[0]
            centres = (np.arange(T) + 0.5) * bin_size
            n = counts.shape[1]
            write_session(w, sid, units=UnitsSource(ids=np.array([str(i) for i in range(n)]),
                                                    areas=np.array([""] * n),
                                                    spikes=lambda u: np.zeros(0)),
                          bin_size=bin_size, t_start=0.0, counts=counts,
                          behavior={"velocity": BehaviorSeries(timestamps=centres, data=sess["velocity"],
                                                               unit="cm/s", columns=["x", "y"],
                                                               description="simulated velocity")},
                          attrs=_session_attrs("candy"))
            w.array(f"sessions/{sid}/latents/truth", sess["latents"].astype(np.float32),
                    attrs={"description": "true latent state of the simulation"})
        sim.to_group(w.group("models/truth"), extra={"sessions": [s["session_id"] for s in sim_sessions]})

    write_result("simulate", parent=None, params=params, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache)


@app.command("nuclr")
@ncli_command("simulate")
def nuclr(
    output: Output = None,
    sessions: Annotated[int, typer.Option("--sessions", help="Number of sessions (independent units, "
                                          "60-150 each).")] = 4,
    duration: Annotated[float, typer.Option("--duration", help="Length of each session (s).")] = 300.0,
    min_units: Annotated[int, typer.Option("--min-units", help="Fewest units per session.")] = 60,
    max_units: Annotated[int, typer.Option("--max-units", help="Most units per session.")] = 150,
    hard: Annotated[bool, typer.Option("--hard", help="Cell types share firing rate, gain and spike "
                                       "history; they differ only in coupling to the population.")] = False,
    bin_size: Annotated[float, typer.Option("--bin-size", help="Store bin width (s).")] = 0.02,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Typed neurons in 3 regions driven by a shared latent (NuCLR setting).

    Writes sessions sim0, sim1, ... with spike times, binned counts,
    units/area (R0, R1, R2: the latent subspace a unit receives) and
    units/cell_type (T0..T3: coupling pattern, gain, refractory or bursty
    spike history), and models/truth. Prints the store location.
    """
    from ncli.models.simulators import NuclrSimulator

    finite(duration, "--duration")
    finite(bin_size, "--bin-size", positive=True)
    sim = NuclrSimulator(n_sessions=sessions, min_units=min_units, max_units=max_units, duration=duration,
                         hard=hard, seed=seed).init_params()
    sim_sessions = sim.sample()
    params = {"generator": "nuclr", "sessions": sessions, "duration": duration, "min_units": min_units,
              "max_units": max_units, "hard": hard, "bin_size": bin_size, "seed": seed}

    def build(w: StoreWriter) -> None:
        for sess in sim_sessions:
            sid = sess["session_id"]
            write_session(w, sid, units=UnitsSource(ids=sess["ids"], areas=sess["areas"],
                                                    spikes=lambda u, s=sess: s["spike_times"][u]),
                          bin_size=bin_size, t_start=0.0, t_stop=sess["duration"],
                          attrs=_session_attrs("nuclr"))
            w.array(f"sessions/{sid}/units/cell_type", sess["cell_type"],
                    attrs={"description": "true cell type of the simulation"})
        sim.to_group(w.group("models/truth"), extra={"sessions": [s["session_id"] for s in sim_sessions]})

    write_result("simulate", parent=None, params=params, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache)
