"""Write one recording session into a store layer, in bounded memory.

Every importer (NWB, MATLAB/NPZ arrays, suite2p) and every simulator hands its
data to :func:`write_session` as plain descriptions (:class:`UnitsSource`,
:class:`BehaviorSeries`, trial tables), so the store layout of a session is
written in one place only. Spike times are read one unit at a time and counts
are built in groups of units, so neither the spikes nor the ``(T, N)`` count
matrix of a long recording need fit in memory at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ncli.core.binning import Grid, bin_spikes, epochs_mask, resample_to_grid, sort_spike_times
from ncli.core.errors import DataError
from ncli.core.progress import progress
from ncli.formats.store import CHUNK_BYTES, StoreWriter, chunk_rows

log = logging.getLogger("ncli")

#: Memory budget (bytes) for the block of counts built at once.
COUNTS_BLOCK_BYTES = 128 * 1024 * 1024
SPIKE_CHUNK = CHUNK_BYTES // 8


@dataclass
class UnitsSource:
    """Sorted units of one session, read lazily.

    Attributes
    ----------
    ids : (N,) str
        Unit ids as in the source.
    areas : (N,) str
        Brain area of each unit ('' when unknown).
    spikes : callable
        ``spikes(u) -> (S_u,) float64`` spike times (s) of unit ``u``.
    columns : dict name -> (N,) array
        Extra per-unit columns, written as ``units/<name>``.
    """

    ids: np.ndarray
    areas: np.ndarray
    spikes: Callable[[int], np.ndarray]
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class BehaviorSeries:
    """A behaviour time series at its native sampling.

    Attributes
    ----------
    timestamps : (Tb,) array-like of float
        Sample times (s), strictly increasing (numpy, h5py dataset or
        :class:`~ncli.core.binning.RegularTimestamps`).
    data : (Tb,) or (Tb, D) array-like
        Values.
    unit : str
        Physical unit ('' when unknown).
    columns : list of str
        Names of the D columns.
    circular : bool
        Angles in radians, interpolated on the circle.
    description : str
    binned : bool
        Resample onto the grid (``binned/behavior/<name>``, and its coverage
        limits ``valid``). False stores the series at native sampling only, for
        event series and series outside the binned range.
    """

    timestamps: Any
    data: Any
    unit: str = ""
    columns: list[str] = field(default_factory=list)
    circular: bool = False
    description: str = ""
    binned: bool = True


def spike_range(units: UnitsSource) -> tuple[float, float] | None:
    """(first, last) spike time over all units, or None when there are no spikes."""
    lo, hi = np.inf, -np.inf
    for u in range(len(units)):
        t = np.asarray(units.spikes(u))
        if t.size:
            finite = t[np.isfinite(t)]
            if finite.size:
                lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    return None if lo > hi else (lo, hi)


def _write_units(w: StoreWriter, base: str, units: UnitsSource, grid: Grid | None, kind: str) -> int:
    """Write units/ and, when ``grid`` is given, binned/counts. Returns spikes inside the grid."""
    n = len(units)
    w.array(f"{base}/units/id", np.asarray(units.ids, dtype=str))
    w.array(f"{base}/units/area", np.asarray(units.areas, dtype=str))
    for cname, values in units.columns.items():
        w.array(f"{base}/units/{cname}", np.asarray(values))
    times_arr = w.create(f"{base}/units/spike_times", (0,), np.float64, chunks=(SPIKE_CHUNK,), unit="s")
    index = np.zeros(n + 1, dtype=np.int64)
    counts = None
    group = n
    if grid is not None:
        group = max(1, min(n, COUNTS_BLOCK_BYTES // max(1, grid.n_bins * 4)))
        # chunks no wider than a block of units: a block then fills whole chunks and is never
        # read back and rewritten (on long, fine grids a block holds only a few units)
        cols = min(n, 256, group) if n else 1
        rows = chunk_rows((cols,), 4)
        counts = w.create(f"{base}/binned/counts", (grid.n_bins, n), np.int32,
                          chunks=(max(1, min(rows, grid.n_bins)), max(1, cols)), unit="count")
    inside = 0
    unsorted: list[str] = []  # units whose spike times were out of order (sorted here)
    steps = 0
    buffer: list[np.ndarray] = []
    buffered = 0
    block = None
    for u in progress(range(n), total=n, desc="units"):
        if grid is not None and u % group == 0:
            block = np.zeros((grid.n_bins, min(group, n - u)), dtype=np.int32, order="F")  # columns contiguous
        t, backward = sort_spike_times(units.spikes(u), str(units.ids[u]))
        if backward:
            unsorted.append(str(units.ids[u]))
            steps += backward
        index[u + 1] = index[u] + t.size
        buffer.append(t)
        buffered += t.size
        if buffered >= SPIKE_CHUNK:
            times_arr.append(np.concatenate(buffer))
            buffer, buffered = [], 0
        if grid is not None:
            c = bin_spikes(t, grid)
            inside += int(c.sum())
            block[:, u % group] = c
            if (u + 1) % group == 0 or u == n - 1:
                first = u - (u % group)
                counts[:, first : u + 1] = block
    if buffer:
        times_arr.append(np.concatenate(buffer))
    w.array(f"{base}/units/spike_index", index)
    if unsorted:
        shown = ", ".join(unsorted[:5]) + (f", ... ({len(unsorted)} units)" if len(unsorted) > 5 else "")
        log.warning("warning: session %s: spike times of %d unit%s were not sorted (%d backward step%s); "
                    "sorted per unit: %s", base.split("/", 1)[-1], len(unsorted), "" if len(unsorted) == 1 else "s",
                    steps, "" if steps == 1 else "s", shown)
    return inside


def write_session(
    w: StoreWriter,
    session_id: str,
    *,
    units: UnitsSource | None,
    bin_size: float,
    t_start: float | None = None,
    t_stop: float | None = None,
    behavior: dict[str, BehaviorSeries] | None = None,
    trials: dict[str, np.ndarray] | None = None,
    intervals: dict[str, dict[str, np.ndarray]] | None = None,
    epochs: np.ndarray | None = None,
    counts: np.ndarray | None = None,
    counts_kind: str = "counts",
    counts_unit: str = "count",
    attrs: dict | None = None,
    valid: np.ndarray | None = None,
) -> Grid:
    """Write ``sessions/<session_id>`` (units, binned, behavior, trials, intervals).

    Parameters
    ----------
    w : StoreWriter
        The layer being written.
    session_id : str
        Group name (no '/').
    units : UnitsSource or None
        Spiking units; binned into ``binned/counts`` (T, N) int32.
    bin_size : float
        Bin width (s).
    t_start, t_stop : float, optional
        Range of the grid (s). Default: the epochs' range, else first to last spike.
    behavior : dict name -> BehaviorSeries
        Stored at native sampling under ``behavior/<name>`` and resampled to bin
        centres under ``binned/behavior/<name>`` (T, D).
    trials : dict column -> (n_trials,) array
        The trials table (``start_time``, ``stop_time`` required when given).
    intervals : dict table -> dict column -> array
        Every other interval table (epochs included), stored under ``intervals/<table>``.
    epochs : (E, 2) float, optional
        Recorded epochs [start, stop) (s); bins whose centre lies outside are invalid.
    counts : (T, N) array, optional
        Pre-binned activity (arrays importer, calcium); used instead of binning ``units``.
    counts_kind : {"counts", "calcium"}
        Stored as ``binned`` attribute ``kind``.
    attrs : dict
        Session attributes (subject, species, start_time, source, ...).
    valid : (T,) bool, optional
        Bins the source itself marks unusable (False), e.g. calcium frames
        inside a gap of resampled timestamps; combined (and) with epochs and
        behaviour coverage.

    Returns
    -------
    Grid
        The session's time grid.

    Raises
    ------
    DataError
        Invalid spike times or behaviour, an empty range, mismatched trial columns.
    """
    if "/" in session_id or not session_id:
        raise DataError(f"invalid session id '{session_id}'")
    base = f"sessions/{session_id}"
    behavior = behavior or {}
    sess_attrs = {"subject": "", "species": "", "start_time": "", "source": {}}
    sess_attrs.update(attrs or {})
    w.group(base, sess_attrs)

    if counts is not None:
        n_bins = counts.shape[0]
        if t_start is None:
            raise DataError("pre-binned counts need t_start")
        grid = Grid(float(t_start), float(bin_size), int(n_bins))
    else:
        if t_start is None or t_stop is None:
            lo_hi = None
            if epochs is not None and len(epochs):
                ep = np.asarray(epochs, dtype=np.float64).reshape(-1, 2)
                lo_hi = (float(ep[:, 0].min()), float(ep[:, 1].max()))
            elif units is not None and len(units):
                lo_hi = spike_range(units)
                if lo_hi is not None:
                    lo_hi = (lo_hi[0], lo_hi[1] + bin_size)  # the last spike lies inside the last bin
            if lo_hi is None:
                raise DataError("cannot place the time grid: no spikes and no epochs",
                                hint="pass --t-start and --t-stop")
            t_start = lo_hi[0] if t_start is None else t_start
            t_stop = lo_hi[1] if t_stop is None else t_stop
        grid = Grid.covering(float(t_start), float(t_stop), float(bin_size))

    w.group(f"{base}/binned", {"bin_size_s": grid.bin_size, "t_start_s": grid.t_start,
                               "kind": counts_kind, "n_bins": grid.n_bins})
    if units is not None:
        inside = _write_units(w, base, units, grid if counts is None else None, counts_kind)
        if counts is None:
            w.group(f"{base}/binned").attrs["n_spikes_binned"] = int(inside)
    if counts is not None:
        arr = w.create(f"{base}/binned/counts", counts.shape, counts.dtype, unit=counts_unit)
        rows = arr.chunks[0]
        for lo in range(0, counts.shape[0], rows):
            arr[lo : lo + rows] = np.asarray(counts[lo : lo + rows])

    source_valid = valid
    valid = epochs_mask(grid, epochs)
    if source_valid is not None:
        source_valid = np.asarray(source_valid, dtype=bool).ravel()
        if source_valid.shape != (grid.n_bins,):
            raise DataError(f"valid mask has {source_valid.size} bins, the grid {grid.n_bins}")
        valid &= source_valid
    for name, series in behavior.items():
        if "/" in name or not name:
            raise DataError(f"invalid behaviour name '{name}'")
        ts = series.timestamps
        data = series.data
        native = w.group(f"{base}/behavior/{name}", {"unit": series.unit, "columns": list(series.columns),
                                                    "circular": bool(series.circular),
                                                    "description": series.description,
                                                    "binned": bool(series.binned)})
        n = len(ts)
        d = int(np.prod(data.shape[1:])) if len(data.shape) > 1 else 1
        dt = w.create(f"{base}/behavior/{name}/data", (n, d), np.float64, unit=series.unit or None)
        tt = w.create(f"{base}/behavior/{name}/timestamps", (n,), np.float64, unit="s")
        rows = dt.chunks[0]
        for lo in range(0, n, rows):
            tt[lo : lo + rows] = np.asarray(ts[lo : lo + rows], dtype=np.float64)
            dt[lo : lo + rows] = np.asarray(data[lo : lo + rows], dtype=np.float64).reshape(-1, d)
        if not series.binned:
            continue
        values, covered = resample_to_grid(ts, data, grid, circular=series.circular, name=name)
        columns = list(series.columns) or [f"{name}_{i}" for i in range(d)]
        w.array(f"{base}/binned/behavior/{name}", values,
                attrs={"unit": series.unit, "columns": columns, "circular": bool(series.circular)})
        if not covered.any():
            log.warning("behaviour '%s' does not overlap the binned range of session %s", name, session_id)
        valid &= covered
        del native
    w.array(f"{base}/binned/valid", valid)

    if trials:
        _write_table(w, f"{base}/trials", trials, "trials")
    for table, columns in (intervals or {}).items():
        _write_table(w, f"{base}/intervals/{table}", columns, table)
    return grid


def _write_table(w: StoreWriter, path: str, columns: dict[str, np.ndarray], name: str) -> None:
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"columns of table '{name}' have different lengths: {lengths}")
    w.group(path, {"n_rows": next(iter(lengths.values()), 0)})
    for col, values in columns.items():
        if "/" in col or not col:
            raise DataError(f"invalid column name '{col}' in table '{name}'")
        values = np.asarray(values)
        unit = "s" if col.endswith("_time") or col in ("start_time", "stop_time") else None
        w.array(f"{path}/{col}", values, unit=unit)
