"""Import plain arrays: MATLAB ``.mat`` (v5 and v7.3), NumPy ``.npz``, suite2p folders.

Three shapes of data are accepted (see ``docs/commands/convert.md``):

- pre-binned counts ``--counts VAR`` (one session per counts variable), with
  behaviour at the same bins ``--behavior NAME=VAR[,VAR...][:COLS]`` and the bin
  start times ``--time VAR`` (or ``--t-start S``). The time axis of each matrix
  is found by matching the length of the time or behaviour variables;
  ``--transpose`` overrides it for the counts.
- spike-time arrays ``--spike-times VAR --spike-clusters VAR`` (one spike per
  element; a unit per distinct cluster id).
- suite2p ``plane`` folders: ``F.npy``, ``Fneu.npy``, ``iscell.npy`` (and
  ``spks.npy``), read with ``np.load(allow_pickle=False)``. ``ops.npy`` and
  ``stat.npy`` are pickles and are never read, so the frame rate must be given.

Nothing here unpickles: ``.npz``/``.npy`` are loaded with ``allow_pickle=False``
and an object array is refused with a clear error.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ncli.core.binning import Grid
from ncli.core.errors import DataError, NcliError, UsageError
from ncli.formats.session import BehaviorSeries, UnitsSource, write_session
from ncli.formats.timeunits import TimeScale, check_not_samples, check_rates

log = logging.getLogger("ncli")

#: Fraction of the neuropil trace subtracted from each ROI's fluorescence (suite2p's default).
NEUROPIL_COEFF = 0.7
SUITE2P_FILES = ("F.npy", "Fneu.npy", "iscell.npy")


# ----------------------------------------------------------------------------- variable files


class ArrayFile:
    """Named numeric arrays of a ``.mat`` (v5/v7.3) or ``.npz`` file, loaded on request.

    MATLAB v7.3 files are HDF5; their datasets are transposed back to the
    shapes MATLAB shows. Arrays come back as numpy arrays in MATLAB/NumPy shape.

    Parameters
    ----------
    path : str or Path

    Raises
    ------
    DataError
        Missing, empty or unreadable file, or an unsupported extension.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise DataError("input file not found", str(self.path))
        if self.path.stat().st_size == 0:
            raise DataError("input file is empty", str(self.path))
        self.kind = self.path.suffix.lower().lstrip(".")
        if self.kind not in ("mat", "npz"):
            raise DataError(f"unsupported array file type '.{self.kind}'", str(self.path),
                            hint="use a .mat or .npz file")
        self._v73 = False
        self._names: list[str] | None = None
        if self.kind == "mat":
            import h5py

            self._v73 = h5py.is_hdf5(str(self.path))

    def names(self) -> list[str]:
        """Names of the variables in the file."""
        if self._names is None:
            try:
                if self.kind == "npz":
                    with np.load(self.path, allow_pickle=False) as z:
                        self._names = list(z.files)
                elif self._v73:
                    import h5py

                    with h5py.File(self.path, "r") as f:
                        self._names = [k for k in f.keys() if not k.startswith("#")]
                else:
                    import scipy.io

                    self._names = [entry[0] for entry in scipy.io.whosmat(str(self.path))]
            except NcliError:
                raise
            except Exception as exc:
                raise DataError(f"cannot read {self.kind.upper()} file: {exc.__class__.__name__}: "
                                f"{str(exc)[:200]}", str(self.path)) from None
        return self._names

    def get(self, name: str) -> np.ndarray:
        """The numeric array ``name``.

        Raises
        ------
        UsageError
            No variable of that name (the message lists the variables).
        DataError
            The variable is not a numeric array (struct, cell, object array).
        """
        if name not in self.names():
            raise UsageError(f"no variable '{name}' in {self.path.name}", str(self.path),
                             hint=f"variables: {', '.join(self.names()) or '(none)'}")
        try:
            if self.kind == "npz":
                with np.load(self.path, allow_pickle=False) as z:
                    value = z[name]
            elif self._v73:
                import h5py

                with h5py.File(self.path, "r") as f:
                    node = f[name]
                    if not hasattr(node, "dtype"):
                        raise DataError(f"variable '{name}' is a struct or cell, not a numeric array",
                                        str(self.path))
                    value = np.asarray(node[()]).T
            else:
                import scipy.io

                value = scipy.io.loadmat(str(self.path), variable_names=[name])[name]
        except NcliError:
            raise
        except ValueError as exc:
            if "pickle" in str(exc).lower():
                raise DataError(f"variable '{name}' holds Python objects (a pickle); ncli never unpickles",
                                str(self.path)) from None
            raise DataError(f"cannot read variable '{name}': {exc}", str(self.path)) from None
        except Exception as exc:
            raise DataError(f"cannot read variable '{name}': {exc.__class__.__name__}: {str(exc)[:200]}",
                            str(self.path)) from None
        value = np.asarray(value)
        if value.dtype.names is not None or value.dtype.kind == "O":
            raise DataError(f"variable '{name}' is a MATLAB struct or cell, not a numeric array", str(self.path),
                            hint="save the numbers as a plain variable")
        if value.dtype.kind not in "fiub":
            raise DataError(f"variable '{name}' is not a numeric array (dtype {value.dtype})", str(self.path))
        return value


# ----------------------------------------------------------------------------- option parsing


@dataclass
class BehaviorSpec:
    """One ``--behavior NAME=VAR[,VAR...][:COLS]`` option.

    Attributes
    ----------
    name : str
        Behaviour name in the store.
    variables : list of str
        One variable, or one per ``--counts`` variable (same order).
    columns : list of int or None
        Column indices to keep (all when None).
    """

    name: str
    variables: list[str]
    columns: list[int] | None = None


_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def parse_behavior_spec(text: str) -> BehaviorSpec:
    """Parse ``NAME=VAR[,VAR...][:COLS]`` (COLS: comma-separated 0-based column indices).

    Raises
    ------
    UsageError
        Malformed specification.
    """
    hint = "write --behavior NAME=VAR, e.g. --behavior hand_velocity=handVel:0,1"
    if "=" not in text:
        raise UsageError(f"invalid --behavior '{text}'", "--behavior", hint=hint)
    name, rest = text.split("=", 1)
    cols = None
    if ":" in rest:
        rest, col_text = rest.split(":", 1)
        try:
            cols = [int(c) for c in col_text.split(",") if c.strip()]
        except ValueError:
            raise UsageError(f"invalid columns '{col_text}' in --behavior '{text}'", "--behavior",
                             hint="columns are 0-based indices separated by commas, e.g. :0,1") from None
        if not cols or min(cols) < 0:
            raise UsageError(f"invalid columns '{col_text}' in --behavior '{text}'", "--behavior", hint=hint)
    variables = [v.strip() for v in rest.split(",") if v.strip()]
    if not _NAME.match(name) or not variables:
        raise UsageError(f"invalid --behavior '{text}'", "--behavior", hint=hint)
    return BehaviorSpec(name, variables, cols)


# ----------------------------------------------------------------------------- orientation


def _time_axis_candidates(arr: np.ndarray) -> set[int]:
    return {int(s) for s in np.squeeze(arr).shape} if np.squeeze(arr).ndim else set()


def orient(arr: np.ndarray, n_time: int | None, name: str, transpose: str = "auto") -> np.ndarray:
    """Return ``arr`` as ``(T, D)`` with time along the rows.

    Parameters
    ----------
    arr : (T, D), (D, T) or (T,) array
    n_time : int or None
        Number of time bins ``T`` when known.
    name : str
        Variable name, for messages.
    transpose : {"auto", "yes", "no"}
        ``auto`` finds the axis of length ``n_time``; ``yes``/``no`` force it.

    Raises
    ------
    DataError
        More than two dimensions, no axis of length ``n_time``, or both axes
        of that length (ambiguous: pass ``--transpose``).
    """
    a = np.squeeze(np.asarray(arr)) if np.asarray(arr).ndim > 2 else np.asarray(arr)
    if a.ndim == 0:
        raise DataError(f"variable '{name}' is a scalar, not a time series")
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim > 2:
        raise DataError(f"variable '{name}' has {a.ndim} dimensions {a.shape}; expected a 2-d matrix")
    if transpose == "yes":
        a = a.T
    elif transpose == "auto":
        if n_time is None:
            raise DataError(f"cannot tell which axis of '{name}' {a.shape} is time",
                            hint="give --time VAR or a --behavior variable of the same length, "
                                 "or --transpose no (rows are bins) / yes (columns are bins)")
        match = [ax for ax in (0, 1) if a.shape[ax] == n_time]
        if not match:
            raise DataError(f"variable '{name}' {a.shape} has no axis of length {n_time} (the number of bins)")
        if len(match) == 2:
            raise DataError(f"cannot tell which axis of '{name}' {a.shape} is time (both have length {n_time})",
                            hint="pass --transpose no (rows are bins) or --transpose yes")
        if match == [1]:
            a = a.T
    if n_time is not None and a.shape[0] != n_time:
        raise DataError(f"variable '{name}' has {a.shape[0]} bins, expected {n_time}")
    return a


def _infer_n_time(counts: np.ndarray, others: list[tuple[str, np.ndarray]], name: str) -> int | None:
    """The number of bins: the one axis length of ``counts`` that every other variable shares."""
    cand = set(int(s) for s in counts.shape) if counts.ndim == 2 else {int(counts.shape[0])}
    for _, arr in others:
        cand &= _time_axis_candidates(arr) or cand
    if len(cand) == 1:
        return cand.pop()
    if not cand and others:
        shapes = ", ".join(f"{n} {a.shape}" for n, a in others)
        raise DataError(f"no axis of '{name}' {counts.shape} matches the length of {shapes}")
    return None


# ----------------------------------------------------------------------------- counts sessions


@dataclass
class ArraysSpec:
    """The arrays-importer options shared by every input file."""

    counts: list[str] = field(default_factory=list)
    behavior: list[BehaviorSpec] = field(default_factory=list)
    time: str | None = None
    t_start: float | None = None
    bin_size: float | None = None
    transpose: str = "auto"
    circular: list[str] = field(default_factory=list)
    spike_times: str | None = None
    spike_clusters: str | None = None
    #: Seconds per number of the file's spike times and other times (``--time-unit``, ``--sampling-rate``).
    scale: TimeScale = field(default_factory=TimeScale)


def n_sessions(spec: ArraysSpec) -> int:
    """Sessions one array file yields under ``spec``."""
    return max(1, len(spec.counts)) if spec.counts else 1


def _as_counts(a: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(a)):
        raise DataError(f"counts variable '{name}' has NaN or infinite values")
    if a.dtype.kind == "b":
        return a.astype(np.int32)
    if a.dtype.kind in "iu" or (a.size and np.all(np.abs(a - np.round(a)) < 1e-6)):
        if a.size and a.min() < 0:
            raise DataError(f"counts variable '{name}' has negative values")
        return np.round(a).astype(np.int32)
    log.info("counts variable '%s' is not integer-valued; stored as float64", name)
    return a.astype(np.float64)


def _regular_time(time: np.ndarray, bin_size: float | None, name: str) -> tuple[float, float]:
    """(t_start, bin_size) from bin start times, checking they form a regular grid."""
    t = np.asarray(time, dtype=np.float64).ravel()
    if not np.all(np.isfinite(t)):
        raise DataError(f"time variable '{name}' has NaN or infinite values")
    if t.size < 2:
        if bin_size is None:
            raise DataError(f"time variable '{name}' has fewer than 2 values; give --bin-size")
        return (float(t[0]) if t.size else 0.0), bin_size
    dt = np.diff(t)
    if np.any(dt <= 0):
        raise DataError(f"time variable '{name}' is not strictly increasing")
    step = float(np.median(dt))
    if bin_size is None:
        bin_size = step
    elif abs(step - bin_size) > 1e-3 * bin_size:
        raise DataError(f"--bin-size {bin_size} s differs from the spacing of '{name}' ({step:.6g} s)",
                        hint="omit --bin-size to take it from the time variable")
    drift = t - (t[0] + np.arange(t.size) * bin_size)
    if np.max(np.abs(drift)) > 0.1 * bin_size:  # rounding jitter of the times is fine, gaps are not
        raise DataError(f"time variable '{name}' is not a regular grid of {bin_size:.6g} s bins",
                        hint="ncli stores one regular grid per session")
    return float(t[0]), float(bin_size)


def convert_counts(w, af: ArrayFile, session_ids: list[str], spec: ArraysSpec, *, sha256: str) -> list[Grid]:
    """Write one session per ``--counts`` variable of ``af``.

    Parameters
    ----------
    w : StoreWriter
    af : ArrayFile
    session_ids : list of str
        One per counts variable.
    spec : ArraysSpec
        ``counts`` (T, N) or (N, T) variables, behaviour (T, D) variables,
        bin size (s), time variable (bin start times, s) or ``t_start`` (s).
    sha256 : str
        Of the input file (session ``source`` attribute).

    Returns
    -------
    list of Grid

    Raises
    ------
    UsageError
        Unknown variables, behaviour variable lists that do not match the counts.
    DataError
        Shapes that do not line up, NaN counts, irregular time.
    """
    grids = []
    k = len(spec.counts)
    for b in spec.behavior:
        if len(b.variables) not in (1, k):
            raise UsageError(f"--behavior {b.name} names {len(b.variables)} variables for {k} --counts "
                             "variables", "--behavior", hint="give one variable, or one per --counts variable")
    for i, (cvar, sid) in enumerate(zip(spec.counts, session_ids)):
        raw = af.get(cvar)
        if np.squeeze(np.asarray(raw)).ndim != 2:
            raise DataError(f"counts variable '{cvar}' has shape {np.shape(raw)}; expected a 2-d bins x units "
                            "matrix", str(af.path),
                            hint="for one spike time per entry use --spike-times VAR --spike-clusters VAR")
        beh = [(b, b.variables[i if len(b.variables) == k else 0]) for b in spec.behavior]
        beh_arrays = [(var, af.get(var)) for _, var in beh]
        time = af.get(spec.time) if spec.time else None
        if time is not None:
            n_time = int(np.squeeze(time).size)
        elif spec.transpose != "auto":
            n_time = None
        else:
            n_time = _infer_n_time(raw, beh_arrays, cvar)
        counts = orient(raw, n_time, cvar, spec.transpose)
        n_time = counts.shape[0]
        counts = _as_counts(counts, cvar)
        if time is not None:
            if spec.t_start is not None:
                raise UsageError("give --time or --t-start, not both", "--t-start")
            t_start, bin_size = _regular_time(np.asarray(time, dtype=np.float64) * spec.scale.other,
                                              spec.bin_size, spec.time)
            if spec.bin_size is None and not spec.scale.stated and bin_size >= 1.0 and float(bin_size).is_integer():
                log.warning("warning: bins of %g s taken from '%s' (whole numbers): if '%s' is in milliseconds "
                            "pass --time-unit ms", bin_size, spec.time, spec.time)
        else:
            if spec.bin_size is None:
                raise UsageError("pre-binned counts need --bin-size (or --time VAR to infer it)", "--bin-size")
            t_start, bin_size = float(spec.t_start or 0.0) * spec.scale.other, float(spec.bin_size)
        centres = t_start + (np.arange(n_time) + 0.5) * bin_size
        behavior: dict[str, BehaviorSeries] = {}
        for (b, var), (_, arr) in zip(beh, beh_arrays):
            values = orient(arr, n_time, var, "auto").astype(np.float64)
            if b.columns is not None:
                if max(b.columns) >= values.shape[1]:
                    raise DataError(f"behaviour '{b.name}': column {max(b.columns)} out of range for '{var}' "
                                    f"with {values.shape[1]} columns")
                values = values[:, b.columns]
            cols = [f"{b.name}_{c}" for c in (b.columns or range(values.shape[1]))]
            behavior[b.name] = BehaviorSeries(centres, values, unit="", columns=cols,
                                              circular=b.name in spec.circular,
                                              description=f"variable '{var}' at bin centres")
        n = counts.shape[1]
        units = UnitsSource(ids=np.array([str(j) for j in range(n)]), areas=np.array([""] * n),
                            spikes=lambda u: np.zeros(0))
        attrs = {"source": {"path": str(af.path.resolve()), "sha256": sha256, "variable": cvar},
                 "format": af.kind.upper(), "start_time": ""}
        grids.append(write_session(w, sid, units=units, bin_size=bin_size, t_start=t_start, behavior=behavior,
                                   counts=counts, attrs=attrs))
    return grids


def spike_units(times: np.ndarray, clusters: np.ndarray, name: str) -> UnitsSource:
    """Units of one-spike-per-element arrays: a unit per distinct cluster id (ascending).

    Parameters
    ----------
    times : (S,) float64
        Spike times (s).
    clusters : (S,) int or integer-valued float
        Cluster id of each spike.
    name : str
        Name of the cluster variable or file, for messages.

    Returns
    -------
    UnitsSource
        ``ids`` the distinct cluster ids as strings; each unit's spikes in input order.

    Raises
    ------
    DataError
        Non-integer cluster ids.
    """
    if clusters.dtype.kind == "f":
        if not np.all(np.isfinite(clusters)) or np.any(clusters != np.round(clusters)):
            raise DataError(f"cluster ids in '{name}' are not integers")
        clusters = clusters.astype(np.int64)
    elif clusters.dtype.kind not in "iub":
        raise DataError(f"cluster ids in '{name}' are not integers (dtype {clusters.dtype})")
    order = np.argsort(clusters, kind="stable")
    ids, starts = np.unique(clusters[order], return_index=True)
    ends = np.r_[starts[1:], clusters.size]
    sorted_times = times[order]

    def spikes(u: int) -> np.ndarray:
        return sorted_times[starts[u] : ends[u]]

    return UnitsSource(ids=ids.astype(str), areas=np.array([""] * ids.size), spikes=spikes)


def convert_spike_arrays(w, af: ArrayFile, session_id: str, spec: ArraysSpec, *, bin_size: float,
                         sha256: str) -> Grid:
    """Write one session from spike-time and cluster-id arrays.

    Parameters
    ----------
    w : StoreWriter
    af : ArrayFile
    session_id : str
    spec : ArraysSpec
        ``spike_times`` (S,) s and ``spike_clusters`` (S,) integer ids.
    bin_size : float
        Bin width (s).
    sha256 : str

    Returns
    -------
    Grid
        First to last spike (or ``--t-start`` to the last spike).

    Raises
    ------
    DataError
        Length mismatch, NaN spike times (unsorted times within a cluster are sorted, with a warning).
    """
    raw = np.asarray(af.get(spec.spike_times)).ravel()
    check_not_samples(raw, spec.spike_times, spec.scale)
    if spec.scale.rate is not None and raw.size and raw.dtype.kind == "f":
        finite = raw[np.isfinite(raw)]
        if finite.size and not np.all(finite == np.round(finite)):
            raise DataError(f"--sampling-rate says '{spec.spike_times}' holds sample indices, but it has "
                            f"fractional values (up to {float(np.max(finite)):.6g})",
                            hint="drop --sampling-rate if the spike times are seconds (or use --time-unit ms|us)")
    times = spec.scale.spike_seconds(raw)
    del raw
    clusters = np.asarray(af.get(spec.spike_clusters)).ravel()
    if times.shape != clusters.shape:
        raise DataError(f"'{spec.spike_times}' has {times.size} spikes but '{spec.spike_clusters}' "
                        f"has {clusters.size} cluster ids")
    units = spike_units(times, clusters, spec.spike_clusters)
    attrs = {"source": {"path": str(af.path.resolve()), "sha256": sha256,
                        "variables": [spec.spike_times, spec.spike_clusters]},
             "format": af.kind.upper(), "start_time": ""}
    if not spec.scale.identity:
        attrs["source"]["spike_time_unit"] = spec.scale.spikes_from
    t_start = None if spec.t_start is None else spec.t_start * spec.scale.other
    t_stop = None
    if not spec.scale.stated:
        finite = times[np.isfinite(times)]
        if finite.size:
            check_rates(int(finite.size), len(units), (float(finite.min()), float(finite.max())), spec.scale)
    if t_start is not None:
        finite = times[np.isfinite(times)]
        t_stop = float(finite.max()) + bin_size if finite.size else None
    return write_session(w, session_id, units=units, bin_size=bin_size, t_start=t_start, t_stop=t_stop,
                         attrs=attrs)


# ----------------------------------------------------------------------------- suite2p


def is_suite2p_folder(path: str | Path) -> bool:
    """True when ``path`` is a directory holding suite2p's ``F.npy``."""
    p = Path(path)
    return p.is_dir() and (p / "F.npy").is_file()


def load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r")
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(f"{path.name} holds Python objects (a pickle); ncli never unpickles",
                            str(path)) from None
        raise DataError(f"cannot read {path.name}: {exc}", str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read {path.name}: {exc}", str(path)) from None


def running_baseline(trace: np.ndarray, window: int, sigma: float) -> np.ndarray:
    """Slow baseline of fluorescence traces: a min-then-max filter of the smoothed trace.

    Parameters
    ----------
    trace : (N, T) float
        Traces, time along the last axis.
    window : int
        Width (frames) of the sliding minimum and maximum.
    sigma : float
        Gaussian smoothing (frames) applied first, so single-frame noise does
        not pull the minimum down.

    Returns
    -------
    (N, T) float64
        The baseline ``F0``.
    """
    from scipy.ndimage import gaussian_filter1d, maximum_filter1d, minimum_filter1d

    x = np.asarray(trace, dtype=np.float64)
    if sigma > 0:
        x = gaussian_filter1d(x, sigma, axis=-1, mode="nearest")
    window = max(1, int(window))
    x = minimum_filter1d(x, window, axis=-1, mode="nearest")
    return maximum_filter1d(x, window, axis=-1, mode="nearest")


def delta_f_over_f(f: np.ndarray, fneu: np.ndarray, *, frame_rate: float, window_s: float = 60.0,
                   sigma_s: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """dF/F of neuropil-corrected fluorescence.

    ``Fc = F - 0.7 * Fneu``; ``F0`` = :func:`running_baseline` of ``Fc``
    (window ``window_s``, smoothing ``sigma_s``); ``dF/F = (Fc - F0) / max(F0, 0.1 * median(F))``
    per ROI, so a baseline near zero cannot blow the ratio up. ROIs whose raw
    ``F`` has no positive median (e.g. all-zero traces) get dF/F = 0.

    Parameters
    ----------
    f, fneu : (N, T) float
        ROI and neuropil fluorescence (suite2p ``F.npy``, ``Fneu.npy``).
    frame_rate : float
        Frames per second (Hz).
    window_s, sigma_s : float
        Baseline window and smoothing (s).

    Returns
    -------
    dff : (T, N) float32
        Time along the rows.
    empty : (N,) bool
        ROIs set to zero because their fluorescence is empty.
    """
    f = np.asarray(f, dtype=np.float64)
    fc = f - NEUROPIL_COEFF * np.asarray(fneu, dtype=np.float64)
    f0 = running_baseline(fc, min(f.shape[1], round(window_s * frame_rate)), sigma_s * frame_rate)
    med = np.median(f, axis=1) if f.shape[1] else np.zeros(f.shape[0])
    empty = ~(med > 0)
    denom = np.maximum(f0, 0.1 * np.where(empty, 1.0, med)[:, None])
    dff = (fc - f0) / denom
    dff[empty] = 0.0
    return dff.T.astype(np.float32), empty


def convert_suite2p(w, folder: str | Path, session_id: str, *, frame_rate: float | None, all_rois: bool,
                    sha256: str, window_s: float = 60.0) -> Grid:
    """Write one calcium session from a suite2p plane folder.

    ``binned/counts`` (T, N) float32 holds dF/F (``binned`` attrs ``kind="calcium"``,
    ``unit="dF/F"``) of the ROIs with ``iscell == 1`` (all with ``all_rois``),
    one bin per frame starting at 0 s; ``units/id`` are the ROI indices in the
    suite2p arrays; ``binned/spks`` (T, N) float32 holds the deconvolved
    activity of ``spks.npy`` when present.

    Parameters
    ----------
    w : StoreWriter
    folder : str or Path
        The ``plane`` folder.
    session_id : str
    frame_rate : float
        Frames per second (Hz); required (``ops.npy`` is a pickle and is not read).
    all_rois : bool
        Keep every ROI, not only those classified as cells.
    sha256 : str
        Identity of the folder's numeric files.
    window_s : float
        Baseline window (s) of :func:`delta_f_over_f`.

    Returns
    -------
    Grid

    Raises
    ------
    UsageError
        No ``frame_rate``.
    DataError
        Missing files, mismatched shapes, no cells.
    """
    folder = Path(folder)
    if frame_rate is None:
        raise UsageError("suite2p folders need --frame-rate", str(folder),
                         hint="give the imaging rate in Hz, e.g. --frame-rate 30 (ncli does not read ops.npy, "
                              "which is a pickle)")
    if not np.isfinite(frame_rate) or frame_rate <= 0:
        raise UsageError(f"--frame-rate must be a positive number of Hz, got {frame_rate}", "--frame-rate")
    for name in SUITE2P_FILES:
        if not (folder / name).is_file():
            raise DataError(f"suite2p folder lacks {name}", str(folder))
    skipped = [n for n in ("ops.npy", "stat.npy") if (folder / n).exists()]
    if skipped:
        log.info("%s: not reading %s (pickles; ncli never unpickles)", folder.name, " and ".join(skipped))
    f = load_npy(folder / "F.npy")
    fneu = load_npy(folder / "Fneu.npy")
    iscell = np.asarray(load_npy(folder / "iscell.npy"))
    if f.ndim != 2 or fneu.shape != f.shape:
        raise DataError(f"F.npy {f.shape} and Fneu.npy {fneu.shape} must be (ROIs, frames) of the same shape",
                        str(folder))
    flags = iscell[:, 0] if iscell.ndim == 2 else iscell
    if flags.shape[0] != f.shape[0]:
        raise DataError(f"iscell.npy has {flags.shape[0]} rows for {f.shape[0]} ROIs", str(folder))
    keep = np.arange(f.shape[0]) if all_rois else np.flatnonzero(flags == 1)
    if keep.size == 0:
        raise DataError("no ROI has iscell == 1", str(folder), hint="pass --all-rois to keep every ROI")
    sel_f, sel_neu = np.asarray(f[keep]), np.asarray(fneu[keep])
    if not (np.all(np.isfinite(sel_f)) and np.all(np.isfinite(sel_neu))):
        raise DataError("F.npy or Fneu.npy has NaN or infinite values", str(folder))
    dff, empty = delta_f_over_f(sel_f, sel_neu, frame_rate=frame_rate, window_s=window_s)
    if empty.any():
        log.warning("%s: %d ROI(s) with empty fluorescence (all-zero F) get dF/F = 0", folder.name,
                    int(empty.sum()))
    units = UnitsSource(ids=keep.astype(str), areas=np.array([""] * keep.size), spikes=lambda u: np.zeros(0))
    attrs = {"source": {"path": str(folder.resolve()), "sha256": sha256}, "format": "suite2p", "start_time": "",
             "frame_rate_hz": float(frame_rate), "neuropil_coefficient": NEUROPIL_COEFF,
             "baseline": f"min-max filter of the 0.5 s-smoothed trace over {window_s:g} s"}
    grid = write_session(w, session_id, units=units, bin_size=1.0 / frame_rate, t_start=0.0, counts=dff,
                         counts_kind="calcium", counts_unit="dF/F", attrs=attrs)
    if (folder / "spks.npy").is_file():
        spks = load_npy(folder / "spks.npy")
        if spks.shape != f.shape:
            log.warning("%s: spks.npy %s does not match F.npy %s; not stored", folder.name, spks.shape, f.shape)
        else:
            w.array(f"sessions/{session_id}/binned/spks", np.asarray(spks[keep], dtype=np.float32).T,
                    unit="a.u.", attrs={"kind": "deconvolved", "source": "suite2p spks.npy"})
    if iscell.ndim == 2 and iscell.shape[1] > 1:
        w.array(f"sessions/{session_id}/units/iscell_prob", np.asarray(iscell[keep, 1], dtype=np.float64),
                attrs={"source": "suite2p iscell.npy, column 1"})
    return grid
