"""``ncli simulate``: ground-truth generators, one subcommand each.

``ncli simulate lds`` writes a Poisson linear-dynamical-system population (see
:class:`ncli.simulators.PoissonLDS`) as an ncli store, plus the ground
truth (``latents/truth`` per session and ``models/truth``), and optionally as
NWB files for the ``convert`` round trip. Later issues add generators here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from ncli.commands._io import write_result
from ncli.commands._options import finite, Debug, NoCache, Output, Overwrite, Quiet, Seed
from ncli.commands._runtime import ncli_command, set_flags
from ncli.core.errors import UsageError
from ncli.formats.session import BehaviorSeries, UnitsSource, write_session
from ncli.formats.store import StoreWriter, normalize_location

#: Recording start time given to every simulated session (and its NWB file).
SIM_START_TIME = "2000-01-01T00:00:00+00:00"

#: Simulator parameter -> flag, where the flag is not ``--`` + the parameter name (errors name the flag).
FLAGS = {"n_units": "--units", "n_sessions": "--sessions", "n_bins": "--bins", "n_concepts": "--concepts",
         "n_states": "--states", "n_repeats": "--repeats", "n_channels": "--channels", "n_days": "--days",
         "n_directions": "--directions", "n_trials": "--trials"}

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


def _write_binned(w: StoreWriter, sess, generator: str, *, behavior: dict | None = None,
                  counts_unit: str = "count", **attrs) -> None:
    """Write a simulated session given as binned counts (no spike times) from t = 0, with its trials and
    epochs; ``attrs`` are added to the session attributes."""
    units = UnitsSource(ids=sess.ids, areas=sess.areas, spikes=lambda u: np.zeros(0))
    write_session(w, sess.session_id, units=units, bin_size=sess.bin_size, t_start=0.0, counts=sess.counts,
                  counts_unit=counts_unit, behavior=behavior, trials=sess.trials, epochs=sess.epochs,
                  attrs={**_session_attrs(generator), **attrs})


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
    from ncli.simulators import PoissonLDS

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

    set_flags(FLAGS)
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
    from ncli.simulators import CandySimulator

    set_flags(FLAGS)
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
    hard: Annotated[bool, typer.Option("--hard", help="Cell types share firing rate and ISI "
                                       "distributions; they differ only in coupling to the population.")] = False,
    bin_size: Annotated[float, typer.Option("--bin-size", help="Store bin width (s).")] = 0.02,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Typed neurons in 3 regions, identifiable from their population context (NuCLR setting).

    Writes sessions sim0, sim1, ... with spike times, binned counts,
    units/area (R0, R1, R2: the regional latent a unit receives, a 4 Hz
    rhythm, fast or slow) and units/cell_type (T0..T3: chorister, weakly
    coupled, anti-phase, soloist coupling to the population; in the easy variant also rate, gain and
    refractory or bursty spike history), and models/truth. Prints the store location.
    """
    from ncli.simulators import NuclrSimulator

    finite(duration, "--duration")
    finite(bin_size, "--bin-size", positive=True)
    set_flags(FLAGS)
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


@app.command("reach")
@ncli_command("simulate")
def reach(
    output: Output = None,
    units: Annotated[int, typer.Option("--units", help="Units of the first session.")] = 100,
    sessions: Annotated[int, typer.Option("--sessions", help="Sessions; each later one keeps 1 - --drop-fraction of the "
                                          "first session's units and adds --new-units.")] = 2,
    new_units: Annotated[int, typer.Option("--new-units", help="New units in each later session.")] = 20,
    drop_fraction: Annotated[float, typer.Option("--drop-fraction", help="Fraction of the first session's "
                                                 "units missing from each later session.")] = 0.3,
    duration: Annotated[float, typer.Option("--duration", help="Length of each session (s).")] = 600.0,
    lag: Annotated[float, typer.Option("--lag", help="Lead of the neurons over the velocity (s).")] = 0.08,
    tau: Annotated[float, typer.Option("--tau", help="Time constant of the OU velocity (s).")] = 0.4,
    bin_size: Annotated[float, typer.Option("--bin-size", help="Store bin width (s).")] = 0.05,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Cosine-tuned Poisson units leading a 2-d OU velocity (POSSM/POYO decoding setting).

    Writes sessions reach0, reach1, ... with spike times, binned counts,
    behaviour 'velocity' (cm/s, 100 Hz) and models/truth (preferred directions,
    depths, rates, unit membership). Prints the store location.
    """
    from ncli.simulators import ReachSimulator

    for value, name in ((duration, "--duration"), (lag, "--lag"), (tau, "--tau"), (drop_fraction,
                                                                                 "--drop-fraction")):
        finite(value, name)
    finite(bin_size, "--bin-size", positive=True)
    set_flags(FLAGS)
    sim = ReachSimulator(n_units=units, n_sessions=sessions, new_units=new_units, drop_fraction=drop_fraction,
                         tau=tau, lag=lag, seed=seed).init_params()
    sim_sessions = sim.sample(duration)
    params = {"generator": "reach", "units": units, "sessions": sessions, "new_units": new_units,
              "drop_fraction": drop_fraction, "duration": duration, "lag": lag, "tau": tau,
              "bin_size": bin_size, "seed": seed}

    def build(w: StoreWriter) -> None:
        for sess in sim_sessions:
            write_session(w, sess.session_id, units=_units(sess), bin_size=bin_size, t_start=0.0,
                          t_stop=float(sess.epochs[0, 1]), behavior=_behavior(sess), epochs=sess.epochs,
                          attrs=_session_attrs("reach"))
        sim.to_group(w.group("models/truth"), extra={"sessions": [s.session_id for s in sim_sessions]})

    write_result("simulate", parent=None, params=params, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache)


@app.command("crossday")
@ncli_command("simulate")
def crossday(
    output: Output = None,
    channels: Annotated[int, typer.Option("--channels", help="Channels of the array (one unit each on day 0).")] = 100,
    days: Annotated[int, typer.Option("--days", help="Days (sessions day0, day1, ...).")] = 4,
    scenarios: Annotated[str, typer.Option("--scenarios", help="Instability of each later day, comma-separated: "
                                           "none, shuffle, lost, tuning, mixed (the last repeats).")] =
    "shuffle,lost,tuning",
    shuffle_fraction: Annotated[float, typer.Option("--shuffle-fraction", help="Fraction of channels permuted "
                                                    "among themselves.")] = 0.1,
    lost_fraction: Annotated[float, typer.Option("--lost-fraction", help="Fraction of channels silenced.")] = 0.15,
    new_fraction: Annotated[float, typer.Option("--new-fraction", help="Fraction of channels recording a new "
                                                "unit.")] = 0.05,
    tuning_fraction: Annotated[float, typer.Option("--tuning-fraction", help="Fraction of units whose tuning "
                                                   "changes.")] = 0.1,
    directions: Annotated[int, typer.Option("--directions", help="Reach targets.")] = 8,
    trials: Annotated[int, typer.Option("--trials", help="Trials per target and day.")] = 100,
    bins: Annotated[int, typer.Option("--bins", help="Bins per trial.")] = 50,
    bin_size: Annotated[float, typer.Option("--bin-size", help="Bin width (s).")] = 0.05,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """One electrode array over several days with planted instabilities (cross-day decoding, CRRL).

    Writes sessions day0, day1, ... with binned counts of cosine-tuned channels during
    centre-out reaches (trials laid end to end), behaviour 'velocity' and 'position',
    trials (target, target_angle) and models/truth (per day: perm, lost, new, changed).
    Prints the store location.
    """
    from ncli.simulators import CrossDaySimulator

    for value, name in ((shuffle_fraction, "--shuffle-fraction"), (lost_fraction, "--lost-fraction"),
                        (new_fraction, "--new-fraction"), (tuning_fraction, "--tuning-fraction")):
        finite(value, name)
    finite(bin_size, "--bin-size", positive=True)
    set_flags(FLAGS)
    scen = tuple(s.strip() for s in scenarios.split(",") if s.strip())
    sim = CrossDaySimulator(n_channels=channels, n_days=days, scenarios=scen, shuffle_fraction=shuffle_fraction,
                            lost_fraction=lost_fraction, new_fraction=new_fraction, tuning_fraction=tuning_fraction,
                            n_directions=directions, n_trials=trials, n_bins=bins, bin_size=bin_size,
                            seed=seed).init_params()
    sim_sessions = sim.sample()
    params = {"generator": "crossday", "channels": channels, "days": days, "scenarios": list(scen),
              "shuffle_fraction": shuffle_fraction, "lost_fraction": lost_fraction, "new_fraction": new_fraction,
              "tuning_fraction": tuning_fraction, "directions": directions, "trials": trials, "bins": bins,
              "bin_size": bin_size, "seed": seed}

    def build(w: StoreWriter) -> None:
        for d, sess in enumerate(sim_sessions):
            _write_binned(w, sess, "crossday", behavior=_behavior(sess), scenario=sim.day_scenario(d))
        sim.to_group(w.group("models/truth"), extra={"sessions": [s.session_id for s in sim_sessions],
                                                     "scenarios": [sim.day_scenario(d) for d in range(days)]})

    write_result("simulate", parent=None, params=params, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache)


@app.command("areas")
@ncli_command("simulate")
def areas(
    output: Output = None,
    n_areas: Annotated[int, typer.Option("--areas", help="Areas of the rate RNN (area0, area1, ...).")] = 5,
    units_per_area: Annotated[int, typer.Option("--units-per-area", help="RNN units per area.")] = 200,
    gain: Annotated[float, typer.Option("--gain", help="Within-area coupling gain (> 1: chaotic).")] = 3.0,
    sessions: Annotated[int, typer.Option("--sessions", help="Sessions (s0, s1, ...), each missing 1-2 "
                                          "areas.")] = 10,
    trials: Annotated[int, typer.Option("--trials", help="Trials per session.")] = 48,
    bins: Annotated[int, typer.Option("--bins", help="Bins per trial.")] = 50,
    low_rate: Annotated[bool, typer.Option("--low-rate", help="Quarter every neuron's baseline rate (the "
                                           "low-firing-rate variant).")] = False,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Several areas of one chaotic rate RNN; each session records Poisson neurons of all but 1-2 areas.

    Writes sessions s0, s1, ... with binned counts, units/area, trials (condition:
    the initial state), latents/truth (T, areas) the mean RNN activity of each area,
    predictions/truth_rates (T, N) Hz the true rates (the inpainting ceiling) and
    models/truth (coupling, initial states, missing areas). Prints the store location.
    """
    from ncli.simulators.areas import AreasSimulator

    finite(gain, "--gain", positive=True)
    set_flags({**FLAGS, "n_areas": "--areas"})
    sim = AreasSimulator(n_areas=n_areas, units_per_area=units_per_area, gain=gain, n_sessions=sessions,
                         n_trials=trials, n_bins=bins, low_rate=low_rate, seed=seed).init_params()
    sim_sessions, rates = sim.sample()
    params = {"generator": "areas", "areas": n_areas, "units_per_area": units_per_area, "gain": gain,
              "sessions": sessions, "trials": trials, "bins": bins, "low_rate": low_rate, "seed": seed}

    def build(w: StoreWriter) -> None:
        for sess, lam in zip(sim_sessions, rates):
            _write_binned(w, sess, "areas")
            w.array(f"sessions/{sess.session_id}/latents/truth", sess.latents.astype(np.float32),
                    attrs={"description": "mean tanh activity of each area's RNN units"})
            w.array(f"sessions/{sess.session_id}/predictions/truth_rates", lam.astype(np.float32), unit="Hz",
                    attrs={"description": "true firing rate of every neuron"})
        sim.to_group(w.group("models/truth"), extra={"sessions": [s.session_id for s in sim_sessions]})

    write_result("simulate", parent=None, params=params, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache)


@app.command("speech")
@ncli_command("simulate")
def speech(
    output: Output = None,
    electrodes: Annotated[int, typer.Option("--electrodes", help="Electrodes (features: threshold crossings "
                                            "and spike-band power of each).")] = 32,
    phonemes: Annotated[int, typer.Option("--phonemes", help="Phoneme classes (16-39).")] = 24,
    days: Annotated[int, typer.Option("--days", help="Days (sessions day0, day1, ...); decode on days 0-4, "
                                      "test on 5-7.")] = 8,
    trials: Annotated[int, typer.Option("--trials", help="Sentences per day.")] = 100,
    words: Annotated[int, typer.Option("--words", help="Words of the lexicon (2-5 phonemes each).")] = 60,
    min_phonemes: Annotated[int, typer.Option("--min-phonemes", help="Fewest phonemes per sentence.")] = 8,
    max_phonemes: Annotated[int, typer.Option("--max-phonemes", help="Most phonemes per sentence.")] = 20,
    drift: Annotated[float, typer.Option("--drift", help="Day-to-day step of the feature mixing's random walk "
                                         "(0: the same every day).")] = 0.8,
    gain: Annotated[float, typer.Option("--gain", help="Template amplitude (signal to noise).")] = 1.0,
    bin_size: Annotated[float, typer.Option("--bin-size", help="Bin width (s).")] = 0.02,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Attempted speech on several days: phoneme templates in threshold crossings and spike-band power.

    Writes sessions day0, day1, ... with binned features (T, 2 x electrodes), trials laid end
    to end (start_time, stop_time, phonemes: space-separated tokens with '|' between words,
    attrs sequence/vocabulary; text; n_phonemes), latents/truth (the token spoken per bin)
    and models/truth (templates, lexicon, each day's mixing and offsets). Prints the store location.
    """
    from ncli.simulators.speech import SpeechSimulator

    for value, name in ((drift, "--drift"), (gain, "--gain")):
        finite(value, name)
    finite(bin_size, "--bin-size", positive=True)
    set_flags({**FLAGS, "n_electrodes": "--electrodes", "n_phonemes": "--phonemes", "n_words": "--words",
               "min_phonemes": "--min-phonemes", "max_phonemes": "--max-phonemes"})
    sim = SpeechSimulator(n_electrodes=electrodes, n_phonemes=phonemes, n_days=days, n_trials=trials,
                          n_words=words, min_phonemes=min_phonemes, max_phonemes=max_phonemes, gain=gain,
                          drift=drift, bin_size=bin_size, seed=seed).init_params()
    sim_sessions = sim.sample()
    params = {"generator": "speech", "electrodes": electrodes, "phonemes": phonemes, "days": days,
              "trials": trials, "words": words, "min_phonemes": min_phonemes, "max_phonemes": max_phonemes,
              "drift": drift, "gain": gain, "bin_size": bin_size, "seed": seed}
    vocab = sim.vocabulary

    def build(w: StoreWriter) -> None:
        for sess in sim_sessions:
            base = f"sessions/{sess.session_id}"
            _write_binned(w, sess, "speech", counts_unit="a.u.")
            w.array(f"{base}/trials/phonemes", sess.trials["phonemes"],
                    attrs={"sequence": True, "vocabulary": vocab,
                           "description": "phonemes of the sentence, '|' between words"})
            w.array(f"{base}/latents/truth", sess.latents.astype(np.float32),
                    attrs={"description": "token spoken at each bin (index into the vocabulary; -1: silence)"})
        sim.to_group(w.group("models/truth"), extra={"sessions": [s.session_id for s in sim_sessions],
                                                     "vocabulary": vocab})

    write_result("simulate", parent=None, params=params, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache)


@app.command("chunks")
@ncli_command("simulate")
def chunks(
    ctx: typer.Context,
    output: Output = None,
    variant: Annotated[str, typer.Option("--variant", help="concepts: planted concept patterns on random neuron "
                                         "subsets (pa, ucd); sequence: a recurring chunk of population states "
                                         "(dsc).")] = "concepts",
    units: Annotated[Optional[int], typer.Option("--units", help="Neurons (default 200 for concepts, 40 for "
                                                 "sequence).", show_default=False)] = None,
    concepts: Annotated[int, typer.Option("--concepts", help="[concepts] Planted concepts.")] = 5,
    subset_size: Annotated[int, typer.Option("--subset-size", help="[concepts] Neurons per concept.")] = 30,
    bins: Annotated[int, typer.Option("--bins", help="[concepts] Bins.")] = 6000,
    extra_rate: Annotated[float, typer.Option("--extra-rate", help="[concepts] Largest extra rate of a member "
                                              "neuron during its concept (Hz).")] = 40.0,
    states: Annotated[int, typer.Option("--states", help="[sequence] Distinct population states.")] = 8,
    chunk_length: Annotated[int, typer.Option("--chunk-length", help="[sequence] States in the planted "
                                              "chunk.")] = 4,
    repeats: Annotated[int, typer.Option("--repeats", help="[sequence] Chunk instances.")] = 300,
    bin_size: Annotated[Optional[float], typer.Option("--bin-size", help="Bin width (s); default 0.05 "
                                                      "(concepts), 0.1 (sequence).", show_default=False)] = None,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Ground truth for `ncli chunk`: planted concept patterns or a recurring state sequence.

    Writes session sim0 with pre-binned counts, chunks/truth/labels (T,) int32
    (concept per bin, or 0 inside a planted chunk instance; -1 elsewhere) and
    models/truth; concepts also get intervals/concepts (start_time, stop_time,
    concept), sequence also chunks/truth/states. Prints the store location.
    """
    from ncli.commands._options import choice
    from ncli.simulators import ConceptChunkSimulator, SequenceChunkSimulator

    choice(variant, ["concepts", "sequence"], "--variant")
    own = {"concepts": ("--concepts", "--subset-size", "--bins", "--extra-rate"),
           "sequence": ("--states", "--chunk-length", "--repeats")}
    def given(option: str) -> bool:
        source = ctx.get_parameter_source(option[2:].replace("-", "_"))
        return source is not None and source.name != "DEFAULT"

    other = [(o, v) for v, opts in own.items() if v != variant for o in opts if given(o)]
    if other:
        raise UsageError(f"{other[0][0]} applies to --variant {other[0][1]} only", other[0][0])
    finite(extra_rate, "--extra-rate", positive=True)
    finite(bin_size, "--bin-size", positive=True)
    set_flags(FLAGS)
    if variant == "concepts":
        sim = ConceptChunkSimulator(n_units=200 if units is None else units, n_concepts=concepts, subset_size=subset_size,
                                    n_bins=bins, bin_size=0.05 if bin_size is None else bin_size,
                                    extra_rate=extra_rate,
                                    seed=seed).init_params()
    else:
        sim = SequenceChunkSimulator(n_units=40 if units is None else units, n_states=states, chunk_length=chunk_length,
                                     n_repeats=repeats, bin_size=0.1 if bin_size is None else bin_size,
                                     seed=seed).init_params()
    data = sim.sample()
    params = {"generator": "chunks", "variant": variant, **sim.get_config()}

    def build(w: StoreWriter) -> None:
        counts, dt = data["counts"], data["bin_size"]
        n = counts.shape[1]
        write_session(w, "sim0", units=UnitsSource(ids=np.array([str(i) for i in range(n)]),
                                                   areas=np.array([""] * n), spikes=lambda u: np.zeros(0)),
                      bin_size=dt, t_start=0.0, counts=counts, attrs=_session_attrs("chunks"),
                      intervals=None if variant != "concepts" else {"concepts": {
                          "start_time": data["occurrences"][:, 0] * dt,
                          "stop_time": data["occurrences"][:, 1] * dt,
                          "concept": np.array([f"c{k}" for k in data["occurrences"][:, 2]])}})
        if variant == "concepts":
            names = [f"c{k}" for k in range(concepts)]
            extra = {}
        else:
            names = ["chunk"]
            extra = {"parse_length": data["parse_length"], "chunk": sim.chunk_.tolist()}
            w.array("sessions/sim0/chunks/truth/states", data["states"],
                    attrs={"description": "true population state per bin"})
        w.array("sessions/sim0/chunks/truth/labels", data["labels"],
                attrs={"description": "true chunk per bin (-1: none)"})
        w.group("sessions/sim0/chunks/truth", {"method": "truth", "model": "models/truth", "names": names,
                                               **extra})
        sim.to_group(w.group("models/truth"), extra={"sessions": ["sim0"], "names": names, **extra})

    write_result("simulate", parent=None, params=params, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache)
