"""ncli convert: NWB files, MATLAB/NPZ arrays, suite2p and kilosort/phy folders -> one ncli store."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ncli.commands._io import file_identity, write_result
from ncli.commands._options import finite, Debug, NoCache, Output, Overwrite, Quiet
from ncli.commands._runtime import ncli_command
from ncli.core.errors import DataError, NcliError, UsageError
from ncli.formats import arrays as arr
from ncli.formats import mat_trials as mt
from ncli.formats import nwb_zarr, phy
from ncli.formats.nwb import check_nwb_file, convert_nwb, parse_units_where
from ncli.formats.store import StoreWriter
from ncli.formats.timeunits import TimeScale, time_scale

log = logging.getLogger("ncli")

DEFAULT_BIN_SIZE = 0.02


class TimeUnit(StrEnum):
    """Unit of a source's times (--time-unit, --spike-time-unit)."""

    s = "s"
    ms = "ms"
    us = "us"


class Transpose(StrEnum):
    """Orientation of a counts matrix (--transpose)."""

    auto = "auto"
    yes = "yes"
    no = "no"


def _kind(path: Path) -> str:
    """'nwb', 'mat', 'npz', 'phy' or 'suite2p' for an input path (DataError when it cannot be used)."""
    if not path.exists():
        raise DataError("input not found", str(path))
    if path.is_dir():
        if nwb_zarr.is_nwb_zarr(path):  # NWB with the Zarr backend (hdmf-zarr), before phy and suite2p
            nwb_zarr.check_nwb_zarr(path)
            return "nwb"
        if phy.is_phy_folder(path):  # before suite2p: a phy folder is never "not a suite2p plane folder"
            return "phy"
        if (path / "spike_times.npy").is_file() and not (path / "F.npy").is_file():
            raise DataError("kilosort/phy folder lacks spike_clusters.npy", str(path),
                            hint="a kilosort/phy folder holds spike_times.npy and spike_clusters.npy")
        if arr.is_suite2p_folder(path):
            return "suite2p"
        raise DataError("input folder is not a suite2p plane folder (no F.npy)", str(path),
                        hint="give the folder that holds F.npy, Fneu.npy and iscell.npy (e.g. suite2p/plane0), "
                             "or a kilosort/phy folder (spike_times.npy, spike_clusters.npy)")
    suffix = path.suffix.lower()
    if suffix in (".mat", ".npz"):
        if path.stat().st_size == 0:
            raise DataError("input file is empty", str(path))
        return suffix[1:]
    if suffix == ".nwb":
        check_nwb_file(path)
        return "nwb"
    if path.stat().st_size == 0:
        raise DataError("input file is empty", str(path))
    import h5py

    if h5py.is_hdf5(str(path)):
        check_nwb_file(path)
        return "nwb"
    raise DataError(f"unsupported input type '{path.suffix or path.name}'", str(path),
                    hint="ncli convert reads .nwb, .mat, .npz files, suite2p plane folders and "
                         "kilosort/phy folders")


def _identity(path: Path, kind: str) -> str:
    if kind == "nwb" and path.is_dir():  # NWB-Zarr: every file of the folder, by its relative path
        h = hashlib.sha256()
        for f in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + file_identity(f).encode())
        return h.hexdigest()
    if kind == "phy":
        h = hashlib.sha256()
        for f in phy.identity_files(path):
            h.update(f.name.encode() + file_identity(f).encode())
        return h.hexdigest()
    if kind != "suite2p":
        return file_identity(path)
    h = hashlib.sha256()
    for name in ("F.npy", "Fneu.npy", "iscell.npy", "spks.npy"):
        if (path / name).is_file():
            h.update(name.encode() + file_identity(path / name).encode())
    return h.hexdigest()


def _session_id(stem: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.\-]+", "_", stem).strip("._") or "session"
    sid, k = base, 2
    while sid in taken:
        sid, k = f"{base}_{k}", k + 1
    taken.add(sid)
    return sid


@ncli_command("convert")
def convert(
    inputs: Annotated[list[str], typer.Argument(
        help="NWB files, .mat/.npz array files, suite2p plane folders or kilosort/phy folders; one session each.",
        show_default=False, metavar="INPUT")],
    bin_size: Annotated[Optional[float], typer.Option(
        "--bin-size", help="Bin width in seconds. Default 0.02 (spikes, phy); for --counts the data's bin width, "
        "taken from --time when omitted; for --trials the file's bin width (dt); suite2p uses one bin per frame.",
        show_default=False)] = None,
    counts: Annotated[Optional[list[str]], typer.Option(
        "--counts", metavar="VAR", help="[arrays] Variable holding pre-binned counts (T x N or N x T). Repeat for several "
        "sessions in one file.", show_default=False)] = None,
    behavior: Annotated[Optional[list[str]], typer.Option(
        "--behavior", metavar="NAME=VAR", help="[arrays] NAME=VAR[,VAR...][:COLS] behaviour at the same bins, e.g. "
        "hand_velocity=handVel:0,1 (one VAR per --counts variable, or one for all).",
        show_default=False)] = None,
    time: Annotated[Optional[str], typer.Option(
        "--time", help="[arrays] Variable with the bin start times (s).", show_default=False)] = None,
    t_start: Annotated[Optional[float], typer.Option(
        "--t-start", help="[arrays] Start time (s) of the first bin when there is no --time (default 0).",
        show_default=False)] = None,
    transpose: Annotated[Transpose, typer.Option(
        "--transpose", help="[arrays] Counts orientation: auto (match the time/behaviour length), "
        "no (rows are bins), yes (columns are bins).")] = Transpose.auto,
    circular: Annotated[Optional[list[str]], typer.Option(
        "--circular", metavar="NAME", help="[arrays] Behaviour NAME that is an angle in radians.", show_default=False)] = None,
    spike_times: Annotated[Optional[str], typer.Option(
        "--spike-times", help="[arrays] Variable with spike times (s), one per spike.", show_default=False)] = None,
    spike_clusters: Annotated[Optional[str], typer.Option(
        "--spike-clusters", help="[arrays] Variable with the unit/cluster id of each spike.",
        show_default=False)] = None,
    trials: Annotated[list[str] | None, typer.Option(
        "--trials", metavar="VAR", help="[MAT trials] Struct array of trials (dotted path into structs, e.g. "
        "beforeLearning.clouds); trials laid end to end. Repeat for several sessions.", show_default=False)] = None,
    trial_counts: Annotated[str | None, typer.Option(
        "--trial-counts", metavar="FIELD", help="[MAT trials] Field with each trial's counts (default: the 2-D "
        "integer-valued field, e.g. binCounts).", show_default=False)] = None,
    trial_behavior: Annotated[list[str] | None, typer.Option(
        "--trial-behavior", metavar="NAME=FIELD[:COLS]", help="[MAT trials] Per-bin field kept as behaviour NAME "
        "(repeatable; default: every per-bin field).", show_default=False)] = None,
    frame_rate: Annotated[Optional[float], typer.Option(
        "--frame-rate", help="[suite2p] Imaging rate in Hz (required: ops.npy is a pickle and is not read).",
        show_default=False)] = None,
    all_rois: Annotated[bool, typer.Option(
        "--all-rois", help="[suite2p] Keep every ROI, not only iscell == 1.")] = False,
    sampling_rate: Annotated[Optional[float], typer.Option(
        "--sampling-rate", metavar="HZ", help="[phy, arrays] Spike times are sample indices at HZ samples per second "
        "(phy: wins over params.py's sample_rate).", show_default=False)] = None,
    time_unit: Annotated[Optional[TimeUnit], typer.Option(
        "--time-unit", help="[NWB, arrays] Unit of every time in the input (spikes, behaviour, trials, --time, "
        "--t-start) when not seconds.", show_default=False)] = None,
    spike_time_unit: Annotated[Optional[TimeUnit], typer.Option(
        "--spike-time-unit", help="[NWB, arrays] Unit of the spike times only, when it differs from the rest "
        "(e.g. spikes in ms, behaviour in s).", show_default=False)] = None,
    phy_groups: Annotated[Optional[str], typer.Option(
        "--phy-groups", metavar="GROUP[,GROUP...]", help="[phy] Keep only clusters whose group label "
        "(cluster_group.tsv, else cluster_info.tsv group, else KSLabel) is listed, e.g. good,mua.",
        show_default=False)] = None,
    allow_no_units: Annotated[bool, typer.Option(
        "--allow-no-units", help="[NWB] Convert a file without a units table (behaviour and trials only).")] = False,
    units_where: Annotated[Optional[list[str]], typer.Option(
        "--units-where", metavar="COLUMN=VALUE[,VALUE...]", help="[NWB] Keep only units whose units-table column "
        "equals one of the values (compared as strings), e.g. quality=good. Repeat to require several.",
        show_default=False)] = None,
    roi_series: Annotated[Optional[str], typer.Option(
        "--roi-series", metavar="NAME", help="[NWB ophys] RoiResponseSeries to convert as a calcium session (its "
        "name or path, e.g. DfOverF/dff); default: a DfOverF series, else Fluorescence (dF/F computed). Also "
        "converts ophys when the file has units (units win otherwise).", show_default=False)] = None,
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Convert recordings into one ncli store, one session per input.

    \b
    NWB:      ncli convert a.nwb b.nwb [--bin-size 0.02]
    NWB ophys: ncli convert ophys.nwb [--roi-series NAME]   (dF/F, one bin per frame)
    Arrays:   ncli convert FILE.mat|FILE.npz --counts VAR [--bin-size S]
                  [--time VAR | --t-start S] [--behavior NAME=VAR[:COLS]] ... [--transpose auto|yes|no]
              ncli convert FILE.npz --spike-times VAR --spike-clusters VAR [--bin-size S]
    suite2p:  ncli convert path/to/plane0 --frame-rate HZ [--all-rois]
    phy:      ncli convert kilosort_out/ [--sampling-rate HZ] [--phy-groups good,mua] [--bin-size S]
    MAT trials: ncli convert FILE.mat --trials VAR [--trial-counts FIELD] [--trial-behavior NAME=FIELD[:COLS]]
                  [--bin-size S]

    \b
    Examples:
      ncli convert m1_stevenson_2011.mat --counts spikes --time time --behavior hand_velocity=handVel:0,1
      ncli convert s1_data.mat --counts spikes --bin-size 0.05 --behavior velocity=vel
      ncli convert mihi_demo.mat --counts Ytr --counts Yte --bin-size 0.1 --behavior velocity=Xtr,Xte
      ncli convert ephys_spikes.npz --spike-times spike_times --spike-clusters spike_clusters

    NWB files are read with pynwb (never modified): units, electrode areas, every behaviour
    series, trials, epochs and other interval tables. Counts matrices are oriented by matching
    the length of --time or the --behavior variables. suite2p: dF/F of F - 0.7*Fneu over a
    running baseline, stored as calcium counts. Prints the store location on stdout.
    """
    paths = [Path(p).expanduser() for p in inputs]
    kinds = [_kind(p) for p in paths]
    where = parse_units_where(units_where)
    if where and any(k != "nwb" for k in kinds):
        raise UsageError("--units-where applies to NWB inputs only", "--units-where")
    if roi_series is not None and (not roi_series.strip() or any(k != "nwb" for k in kinds)):
        raise UsageError("--roi-series applies to NWB inputs only" if roi_series.strip() else
                         "--roi-series needs a series name", "--roi-series")
    _check_options(paths, kinds, counts=counts, behavior=behavior, time=time, t_start=t_start,
                   spike_times=spike_times, spike_clusters=spike_clusters, circular=circular, frame_rate=frame_rate,
                   all_rois=all_rois, bin_size=bin_size, sampling_rate=sampling_rate, phy_groups=phy_groups,
                   trials=trials, trial_counts=trial_counts, trial_behavior=trial_behavior)
    scale = _time_scale(kinds, time_unit, spike_time_unit, sampling_rate, spike_times)
    groups = phy.parse_phy_groups(phy_groups)
    spec = _arrays_spec(counts=counts, behavior=behavior, time=time, t_start=t_start, bin_size=bin_size,
                        transpose=transpose, circular=None if trials else circular, spike_times=spike_times,
                        spike_clusters=spike_clusters)
    spec.scale = scale
    tspec = mt.TrialsSpec(variables=list(trials or []), counts=trial_counts, bin_size=bin_size,
                          behavior=[mt.parse_trial_behavior(b) for b in (trial_behavior or [])],
                          transpose=transpose.value, circular=list(circular or [])) if trials else None
    plan = _plan(paths, kinds, spec, tspec)
    identity = [_identity(p, kind) for p, kind, _ in plan]
    params = {
        "bin_size": bin_size, "sessions": [s for _, _, sids in plan for s in sids], "kinds": kinds,
        "counts": spec.counts, "behavior": list(behavior or []), "time": time, "t_start": t_start,
        "transpose": spec.transpose, "circular": spec.circular, "spike_times": spike_times,
        "spike_clusters": spike_clusters, "frame_rate": frame_rate, "all_rois": all_rois,
        "allow_no_units": allow_no_units,
    }
    if "phy" in kinds or sampling_rate is not None:
        params["sampling_rate"] = sampling_rate
    if "phy" in kinds:
        params["phy_groups"] = groups
    if time_unit is not None or spike_time_unit is not None:
        params["time_unit"] = time_unit.value if time_unit is not None else None
        params["spike_time_unit"] = spike_time_unit.value if spike_time_unit is not None else None
    if units_where:
        params["units_where"] = list(units_where)
    if roi_series is not None:
        params["roi_series"] = roi_series
    if trials:
        params.update(trials=list(trials), trial_counts=trial_counts, trial_behavior=list(trial_behavior or []))
    build = functools.partial(_build, plan=plan, identity=identity, spec=spec,
                              bin_size=bin_size if bin_size is not None else DEFAULT_BIN_SIZE,
                              frame_rate=frame_rate, all_rois=all_rois, allow_no_units=allow_no_units,
                              units_where=where, sampling_rate=sampling_rate, phy_groups=groups, scale=scale,
                              roi_series=roi_series, trials_spec=tspec)
    write_result("convert", parent=None, params=params, build=build, output=output, overwrite=overwrite,
                 no_cache=no_cache, inputs=[str(p.resolve()) for p in paths], identity=identity)


def _check_options(paths: list[Path], kinds: list[str], *, counts, behavior, time, t_start, spike_times,
                   spike_clusters, circular, frame_rate, all_rois, bin_size, sampling_rate=None,
                   phy_groups=None, trials=None, trial_counts=None, trial_behavior=None) -> None:
    """Refuse options that do not fit the inputs' kinds, and non-finite or non-positive numbers.

    Raises
    ------
    UsageError
    """
    array_opts = {"--counts": counts, "--behavior": behavior, "--time": time, "--t-start": t_start,
                  "--spike-times": spike_times, "--spike-clusters": spike_clusters, "--circular": circular}
    given = [k for k, v in array_opts.items() if v]
    _check_trial_options(paths, kinds, trials=trials, trial_counts=trial_counts, trial_behavior=trial_behavior,
                         counts=counts, behavior=behavior, time=time, spike_times=spike_times)
    if any(k in ("mat", "npz") for k in kinds) and not trials:
        if not counts and not spike_times:
            raise UsageError("array files need --counts VAR, --spike-times VAR --spike-clusters VAR, or (a .mat "
                             "struct array of trials) --trials VAR",
                             str(paths[kinds.index("mat") if "mat" in kinds else kinds.index("npz")]),
                             hint="see `ncli convert --help` and docs/commands/convert.md")
        if counts and spike_times:
            raise UsageError("give --counts or --spike-times, not both", "--counts")
        if spike_times and not spike_clusters:
            raise UsageError("--spike-times needs --spike-clusters", "--spike-clusters")
        if spike_times and behavior:
            raise UsageError("--behavior applies to --counts (behaviour at the same bins)", "--behavior")
    elif given and not (trials and given == ["--circular"]):
        raise UsageError(f"{', '.join(given)} apply to .mat/.npz inputs only", given[0])
    if (frame_rate is not None or all_rois) and "suite2p" not in kinds:
        raise UsageError("--frame-rate and --all-rois apply to suite2p folders only", "--frame-rate")
    if "suite2p" in kinds and frame_rate is None:
        raise UsageError("suite2p folders need --frame-rate", str(paths[kinds.index("suite2p")]),
                         hint="give the imaging rate in Hz, e.g. --frame-rate 30 (ncli does not read ops.npy, "
                              "which is a pickle)")
    if "suite2p" in kinds and bin_size is not None:
        log.warning("--bin-size does not apply to suite2p folders (one bin per frame)")
    if phy_groups is not None and "phy" not in kinds:
        raise UsageError("--phy-groups applies to kilosort/phy folders only", "--phy-groups")
    if sampling_rate is not None and "phy" not in kinds and not spike_times:
        raise UsageError("--sampling-rate applies to kilosort/phy folders and to --spike-times of array files only",
                         "--sampling-rate", hint="NWB spike times are seconds by the standard; for NWB files in "
                                                  "other units use --time-unit / --spike-time-unit")
    finite(sampling_rate, "--sampling-rate", positive=True)
    if sampling_rate is None:
        for p, kind in zip(paths, kinds):
            if kind == "phy" and phy.read_sample_rate(p) is None:
                raise phy.missing_rate_error(p)
    finite(bin_size, "--bin-size", positive=True)
    finite(t_start, "--t-start")
    finite(frame_rate, "--frame-rate", positive=True)


def _time_scale(kinds: list[str], time_unit, spike_time_unit, sampling_rate, spike_times) -> TimeScale:
    """The :class:`TimeScale` of the options; they apply to NWB and array inputs only.

    Raises
    ------
    UsageError
        ``--time-unit`` / ``--spike-time-unit`` with suite2p or phy inputs (frames and samples have their own
        rate options), ``--sampling-rate`` with ``--spike-time-unit``.
    """
    given = [f for f, v in (("--time-unit", time_unit), ("--spike-time-unit", spike_time_unit)) if v is not None]
    other = sorted({k for k in kinds if k not in ("nwb", "mat", "npz")})
    if given and other:
        raise UsageError(f"{given[0]} applies to NWB and .mat/.npz inputs only (not {', '.join(other)})", given[0],
                         hint="phy spike times are samples (--sampling-rate); suite2p uses --frame-rate")
    rate = sampling_rate if spike_times else None  # phy folders convert their samples themselves
    return time_scale(time_unit.value if time_unit is not None else None,
                      spike_time_unit.value if spike_time_unit is not None else None, rate)


def _arrays_spec(*, counts, behavior, time, t_start, bin_size, transpose, circular, spike_times,
                 spike_clusters) -> arr.ArraysSpec:
    """What to read from .mat/.npz files (``--counts``, ``--behavior``, ...).

    Raises
    ------
    UsageError
        Two behaviours of one name, or a ``--circular`` that names no behaviour.
    """
    spec = arr.ArraysSpec(counts=list(counts or []),
                          behavior=[arr.parse_behavior_spec(b) for b in (behavior or [])],
                          time=time, t_start=t_start, bin_size=bin_size, transpose=transpose.value,
                          circular=list(circular or []), spike_times=spike_times, spike_clusters=spike_clusters)
    names = [b.name for b in spec.behavior]
    if len(set(names)) != len(names):
        raise UsageError("--behavior names must be distinct", "--behavior")
    for c in spec.circular:
        if c not in names:
            raise UsageError(f"--circular {c} names no --behavior", "--circular")
    return spec


def _check_trial_options(paths: list[Path], kinds: list[str], *, trials, trial_counts, trial_behavior, counts,
                         behavior, time, spike_times) -> None:
    """Refuse ``--trial-*`` options without ``--trials``, and ``--trials`` with other inputs or array options.

    Raises
    ------
    UsageError
    """
    if not trials:
        given = [f for f, v in (("--trial-counts", trial_counts), ("--trial-behavior", trial_behavior)) if v]
        if given:
            raise UsageError(f"{given[0]} applies to --trials only", given[0])
        return
    if any(k != "mat" for k in kinds):
        raise UsageError("--trials applies to .mat files only", "--trials",
                         hint="convert other inputs in a separate run")
    clash = [f for f, v in (("--counts", counts), ("--behavior", behavior), ("--time", time),
                            ("--spike-times", spike_times)) if v]
    if clash:
        raise UsageError(f"give --trials or {clash[0]}, not both", clash[0],
                         hint="per-bin fields of the trials are named with --trial-behavior NAME=FIELD")


def _plan(paths: list[Path], kinds: list[str], spec: arr.ArraysSpec,
          trials: mt.TrialsSpec | None = None) -> list[tuple[Path, str, list[str]]]:
    """(path, kind, session ids) per input: one session each, one per --counts variable of an array file."""
    taken: set[str] = set()
    plan: list[tuple[Path, str, list[str]]] = []
    for p, kind in zip(paths, kinds):
        stem = p.stem
        if kind == "nwb" and p.is_dir():  # session.nwb.zarr -> session, like session.nwb
            stem = p.resolve().name.removesuffix(".zarr").removesuffix(".nwb")
        if kind == "phy":  # the folder's own name (no suffix stripping: ks2.5 stays ks2.5)
            stem = p.resolve().name
        if kind == "suite2p":  # suite2p/plane0 -> suite2p_plane0
            folder = p.resolve()
            stem = f"{folder.parent.name}_{folder.name}" if folder.name.startswith("plane") else folder.name
        if trials is not None and len(trials.variables) > 1:
            sids = [_session_id(f"{stem}_{v}", taken) for v in trials.variables]
        elif kind in ("mat", "npz") and len(spec.counts) > 1:
            sids = [_session_id(f"{stem}_{c}", taken) for c in spec.counts]
        else:
            sids = [_session_id(stem, taken)]
        plan.append((p, kind, sids))
    return plan


def _build(w: StoreWriter, *, plan, identity: list[str], spec: arr.ArraysSpec, bin_size: float,
           frame_rate: float | None, all_rois: bool, allow_no_units: bool,
           units_where: list[tuple[str, list[str]]] | None = None, sampling_rate: float | None = None,
           phy_groups: list[str] | None = None, scale: TimeScale | None = None,
           roi_series: str | None = None, trials_spec: mt.TrialsSpec | None = None) -> None:
    """Convert every input into its session(s) of the store being written."""
    for (p, kind, sids), sha in zip(plan, identity):
        try:
            if kind == "nwb":
                grids = [convert_nwb(w, p, sids[0], bin_size=bin_size, sha256=sha, allow_no_units=allow_no_units,
                                     units_where=units_where, scale=scale, roi_series=roi_series)]
            elif kind == "phy":
                grids = [phy.convert_phy(w, p, sids[0], bin_size=bin_size, sampling_rate=sampling_rate,
                                         groups=phy_groups, sha256=sha)]
            elif kind == "suite2p":
                grids = [arr.convert_suite2p(w, p, sids[0], frame_rate=frame_rate, all_rois=all_rois, sha256=sha)]
            elif trials_spec is not None:
                grids = mt.convert_mat_trials(w, p, sids, trials_spec, sha256=sha)
            elif spec.counts:
                grids = arr.convert_counts(w, arr.ArrayFile(p), sids, spec, sha256=sha)
            else:
                grids = [arr.convert_spike_arrays(w, arr.ArrayFile(p), sids[0], spec, bin_size=bin_size,
                                                  sha256=sha)]
        except NcliError as err:
            if not err.where:
                err.where = str(p)
            raise
        for sid, g in zip(sids, grids):
            log.info("session %s: %d bins of %g s from %.6g s (%s)", sid, g.n_bins, g.bin_size, g.t_start, p.name)
