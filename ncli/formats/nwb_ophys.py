"""NWB optical physiology: ``RoiResponseSeries`` -> a calcium session (dF/F on the frame grid).

suite2p, CaImAn and the Allen Brain Observatory pipeline write their traces
into NWB as ``RoiResponseSeries`` inside ``DfOverF`` or ``Fluorescence``
containers of a processing module (usually ``processing/ophys``); each series
points at its ROIs through the ``rois`` DynamicTableRegion of a
``PlaneSegmentation``. This module turns one such series into the same
calcium session as :func:`ncli.formats.arrays.convert_suite2p`:

- ``binned/counts`` (T, N) float32 dF/F, ``binned`` attribute ``kind = "calcium"``,
  ``unit = "dF/F"``, **one bin per frame**: bin ``k`` starts at frame ``k``'s
  time, so ``t_start_s`` is the series' ``starting_time`` (or first timestamp)
  and ``bin_size_s`` is ``1 / rate`` (or the frame interval of regular timestamps);
- ``units/id`` the PlaneSegmentation ids of the series' ROIs (in the series'
  column order), ``units/area`` the imaging plane's ``location``, every scalar
  per-ROI column of the PlaneSegmentation (``iscell``, ``accepted``, ...) as
  ``units/<column>``; ``units/spike_times`` is empty;
- ``binned/spks`` (T, N) float32 the deconvolved series (a series named
  ``*deconv*`` or ``spks`` over the same ROIs and frames), as suite2p's importer.

Choice of the series (:func:`choose_roi_series`): ``--roi-series NAME`` when
given; else a ``DfOverF`` series, else a ``Fluorescence`` series (neither
neuropil, deconvolved nor background, by name), from which dF/F is computed with
:func:`ncli.formats.arrays.delta_f_over_f` (neuropil-corrected by a neuropil
series over the same ROIs when there is one, as suite2p's NWB export writes).
With several candidates of the preferred kind, the first by path is read and a
warning names them all. A file that also has sorted units is converted from its
units unless ``--roi-series`` is given (:func:`read_calcium`).

Irregular frame timestamps (dropped frames, jitter beyond 10 % of a frame) are
**resampled**, not refused: the grid takes the median frame interval, each ROI
is interpolated linearly at the grid's frame times, bins inside a gap of more
than two frame intervals are marked not ``valid``, and a warning says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ncli.core.binning import repair_series
from ncli.core.errors import DataError, UsageError
from ncli.formats.arrays import NEUROPIL_COEFF, delta_f_over_f
from ncli.formats.nwb import (
    RESERVED_UNIT_ARRAYS,
    _ntype,
    _object_path,
    _select_units,
    _str_array,
    _structured_region,
)
from ncli.formats.session import UnitsSource

log = logging.getLogger("ncli")

#: Containers of ROI response series, in order of preference.
ROI_CONTAINERS = ("DfOverF", "Fluorescence")
#: PlaneSegmentation columns that are masks or images, not per-ROI scalars.
_ROI_SKIP = {"image_mask", "pixel_mask", "voxel_mask", "reference_images", "pixel_mask_index",
             "voxel_mask_index"}
#: Largest deviation of a frame time from the regular grid (fraction of a frame) still read as regular.
JITTER = 0.1
#: A gap longer than this many median frame intervals marks the resampled bins inside it invalid.
GAP_FRAMES = 2.0
#: Frames read at once from the file.
FRAME_BLOCK = 1 << 14
_DFF_BASELINE_S = 60.0


@dataclass
class RoiSeries:
    """One ``RoiResponseSeries`` of the file.

    Attributes
    ----------
    path : str
        Its path in the file (``processing/ophys/DfOverF/dff``).
    container : str
        ``"DfOverF"``, ``"Fluorescence"`` or ``""`` (a bare series).
    series : pynwb RoiResponseSeries
    """

    path: str
    container: str
    series: Any

    @property
    def name(self) -> str:
        """The series' own name."""
        return str(self.series.name)

    @property
    def role(self) -> str:
        """``"neuropil"``, ``"deconvolved"``, ``"background"`` or ``"signal"``, from the series' name."""
        low = self.name.lower()
        if "neuropil" in low or low in ("fneu", "neu"):
            return "neuropil"
        if "deconv" in low or low in ("spks", "spikes", "s"):
            return "deconvolved"
        if "background" in low:
            return "background"
        return "signal"


@dataclass
class CalciumSession:
    """A calcium session read from one ROI response series, ready for ``write_session``.

    Attributes
    ----------
    units : UnitsSource
        The ROIs (no spikes).
    dff : (T, N) float32
        dF/F per frame.
    t_start : float
        Start (s) of the first frame's bin.
    bin_size : float
        Frame interval (s).
    valid : (T,) bool
        False for frames inside a gap of the resampled timestamps or with NaN values.
    attrs : dict
        Session attributes describing the source (``roi_series``, ``frame_rate_hz``, ``dff_source``, ...).
    spks : (T, N) float32 or None
        Deconvolved activity over the same ROIs, when the file has it.
    """

    units: UnitsSource
    dff: np.ndarray
    t_start: float
    bin_size: float
    valid: np.ndarray
    attrs: dict = field(default_factory=dict)
    spks: np.ndarray | None = None

    @property
    def t_stop(self) -> float:
        """End (s) of the last frame's bin."""
        return self.t_start + self.dff.shape[0] * self.bin_size

    def rescale(self, factor: float) -> None:
        """Scale the grid's times by ``factor`` seconds per stored unit (``--time-unit``).

        Frame times read from timestamps are in the file's time unit; a
        sampling ``rate`` is in Hz by definition, so only its ``starting_time`` scales.
        """
        self.t_start *= factor
        if self.attrs.get("frame_timing") != "rate":
            self.bin_size *= factor
            self.attrs["frame_rate_hz"] = 1.0 / self.bin_size


# ----------------------------------------------------------------------------- finding and choosing


def find_roi_series(nwb: Any) -> list[RoiSeries]:
    """Every ``RoiResponseSeries`` of an open NWB file, sorted by path.

    Series inside ``DfOverF`` / ``Fluorescence`` containers of processing
    modules and ``acquisition``, bare ones there, and any other found by its
    neurodata type anywhere in the file.
    """
    found: list[RoiSeries] = []
    seen: set[int] = set()
    sources = [(f"processing/{m}", mod.data_interfaces) for m, mod in nwb.processing.items()]
    sources.append(("acquisition", nwb.acquisition))
    for where, interfaces in sources:
        for iname, obj in interfaces.items():
            kind = _ntype(obj)
            if kind in ROI_CONTAINERS:
                for s in (getattr(obj, "roi_response_series", None) or {}).values():
                    found.append(RoiSeries(f"{where}/{iname}/{s.name}", kind, s))
                    seen.add(id(s))
            elif kind == "RoiResponseSeries":
                found.append(RoiSeries(f"{where}/{iname}", "", obj))
                seen.add(id(obj))
    for obj in nwb.objects.values():
        if _ntype(obj) == "RoiResponseSeries" and id(obj) not in seen:
            parent = _ntype(getattr(obj, "parent", None))
            found.append(RoiSeries(_object_path(obj), parent if parent in ROI_CONTAINERS else "", obj))
    return sorted(found, key=lambda r: r.path)


def choose_roi_series(found: list[RoiSeries], requested: str | None, file: str) -> RoiSeries:
    """The series to convert.

    Parameters
    ----------
    found : list of RoiSeries
        From :func:`find_roi_series` (not empty unless ``requested``).
    requested : str or None
        ``--roi-series``: a series name, or a path or path tail
        (``DfOverF/RoiResponseSeries``, ``processing/ophys/Fluorescence/F``).
    file : str
        The file (for messages).

    Returns
    -------
    RoiSeries
        ``requested`` when given; else the first ``DfOverF`` series, else the
        first ``Fluorescence`` or bare series that is not neuropil, deconvolved
        or background (by name), else the first series.

    Raises
    ------
    UsageError
        ``requested`` names no series of the file, or several (the paths are listed).
    """
    listed = ", ".join(r.path for r in found)
    if requested is not None:
        if not found:
            raise UsageError(f"--roi-series {requested}: the file has no RoiResponseSeries", file,
                             hint="--roi-series applies to NWB files with optical physiology (DfOverF, Fluorescence)")
        key = requested.strip().strip("/")
        exact = [r for r in found if r.path == key]
        matches = exact or [r for r in found if r.name == key or r.path.endswith("/" + key)]
        if not matches:
            raise UsageError(f"--roi-series '{requested}' matches no RoiResponseSeries of the file", file,
                             hint=f"series: {listed}")
        if len(matches) > 1:
            raise UsageError(f"--roi-series '{requested}' matches {len(matches)} series "
                             f"({', '.join(r.path for r in matches)})", file,
                             hint=f"give the container too, e.g. --roi-series "
                                  f"{'/'.join(matches[0].path.split('/')[-2:])}")
        return matches[0]
    dff = [r for r in found if r.container == "DfOverF" and r.role == "signal"]
    raw = [r for r in found if r.container != "DfOverF" and r.role == "signal"]
    pool = dff or raw or found
    chosen = pool[0]
    name = Path(file).name
    if len(pool) > 1:
        log.warning("warning: %s: %d candidate ROI response series (%s); reading '%s' (choose another with "
                    "--roi-series NAME)", name, len(pool), ", ".join(r.path for r in pool), chosen.path)
    elif len(found) > 1:
        log.info("%s: ROI response series %s; reading '%s'", name, listed, chosen.path)
    return chosen


# ----------------------------------------------------------------------------- ROIs


def _rois(rs: RoiSeries, file: str) -> tuple[Any, np.ndarray]:
    """The PlaneSegmentation of a series and the table rows of its columns (M,) int64.

    Raises
    ------
    DataError
        No ``rois`` region, or rows outside the table.
    """
    region = getattr(rs.series, "rois", None)
    table = getattr(region, "table", None)
    if region is None or table is None:
        raise DataError(f"ROI series '{rs.path}' has no 'rois' region (PlaneSegmentation rows)", file)
    rows = np.asarray(region.data[:], dtype=np.int64).ravel()
    n = len(table.id)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise DataError(f"ROI series '{rs.path}' refers to rows outside its PlaneSegmentation "
                        f"'{table.name}' ({n} rows)", file)
    return table, rows


def _roi_columns(table: Any, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Scalar per-ROI columns of a PlaneSegmentation, at ``rows``.

    0/1 flags (``iscell``, ``accepted``; booleans or 0.0/1.0 floats) become
    int64 so that ``--units-where iscell=1`` matches; a two-column ``iscell``
    (suite2p: flag, probability) gives ``iscell`` and ``iscell_prob``.
    """
    out: dict[str, np.ndarray] = {}
    n = len(table.id)
    for cname in table.colnames:
        if cname in _ROI_SKIP:
            continue
        col = table[cname]
        if hasattr(col, "target") or hasattr(col, "table"):  # ragged or a reference
            continue
        try:
            values = np.asarray(col.data[:] if hasattr(col.data, "__getitem__") else list(col.data))
        except Exception as exc:  # noqa: BLE001 - an unreadable column must not stop the conversion
            log.warning("warning: PlaneSegmentation '%s': column '%s' skipped (%s)", table.name, cname,
                        exc.__class__.__name__)
            continue
        if values.shape[:1] != (n,) or values.dtype.names is not None:
            continue
        key = cname.replace("/", "_")
        if values.ndim == 2 and values.shape[1] == 2 and key == "iscell" and values.dtype.kind in "biuf":
            out["iscell"], out["iscell_prob"] = _flag(values[rows, 0]), values[rows, 1].astype(np.float64)
            continue
        if values.ndim != 1:
            continue
        if values.dtype.kind in "OSU":
            if values.dtype.kind == "O" and n and not all(isinstance(v, (str, bytes)) for v in values):
                continue
            out[key] = _str_array(values)[rows]
        elif values.dtype.kind in "biuf":
            out[key] = _flag(values[rows])
    return {(f"nwb_{k}" if k in RESERVED_UNIT_ARRAYS else k): v for k, v in out.items()}


def _flag(values: np.ndarray) -> np.ndarray:
    """Booleans and floats holding only 0/1 as int64; other arrays unchanged."""
    if values.dtype.kind == "b":
        return values.astype(np.int64)
    if values.dtype.kind == "f" and values.size and np.all(np.isin(values, (0.0, 1.0))):
        return values.astype(np.int64)
    return values


def _plane_location(table: Any) -> str:
    plane = getattr(table, "imaging_plane", None)
    return str(getattr(plane, "location", "") or "")


# ----------------------------------------------------------------------------- frames and timing


def _frames(rs: RoiSeries, n_rois: int, file: str) -> tuple[Any, bool]:
    """The series' data and whether it is stored (ROIs, frames) instead of (frames, ROIs).

    Raises
    ------
    DataError
        Non-numeric data, or a shape that matches the ROI count on neither axis.
    """
    data = rs.series.data
    if not hasattr(data, "shape") or getattr(data, "dtype", np.dtype(object)).kind not in "biuf":
        raise DataError(f"ROI series '{rs.path}' values are not numeric", file)
    shape = tuple(data.shape)
    ts = getattr(rs.series, "timestamps", None)
    ts = getattr(ts, "timestamps", ts)  # timestamps linked to another series
    n_ts = len(ts) if ts is not None else None
    if len(shape) == 1 and n_rois == 1:
        return data, False
    if len(shape) == 2:
        if shape[1] == n_rois and (n_ts is None or shape[0] == n_ts):
            return data, False
        if shape[0] == n_rois and (n_ts is None or shape[1] == n_ts):
            log.warning("warning: %s: ROI series '%s' is stored as (ROIs, frames) %s; read transposed",
                        Path(file).name, rs.path, shape)
            return data, True
    raise DataError(f"ROI series '{rs.path}' has shape {shape}, which does not match its {n_rois} ROIs"
                    + (f" and {n_ts} timestamps" if n_ts is not None else ""), file)


def _read_frames(data: Any, transposed: bool, cols: np.ndarray, factor: float, offset: float) -> np.ndarray:
    """``data * factor + offset`` at the ROI columns ``cols``, as (T, M) float64, read in frame blocks."""
    n_frames = data.shape[1] if transposed else data.shape[0]
    out = np.empty((n_frames, cols.size), dtype=np.float64)
    for lo in range(0, n_frames, FRAME_BLOCK):
        hi = min(n_frames, lo + FRAME_BLOCK)
        block = np.asarray(data[:, lo:hi]).T if transposed else np.asarray(data[lo:hi])
        block = block.reshape(hi - lo, -1)
        out[lo:hi] = block[:, cols]
    if factor != 1.0 or offset != 0.0:
        out = out * factor + offset
    return out


def frame_grid(rs: RoiSeries, n_frames: int, file: str) -> tuple[float, float, np.ndarray | None, str]:
    """Start and frame interval of a series' regular grid.

    Parameters
    ----------
    rs : RoiSeries
    n_frames : int
        Frames in the data.
    file : str

    Returns
    -------
    t_start : float
        Time (s) of the first frame (left edge of bin 0).
    bin_size : float
        Frame interval (s): ``1 / rate``; for timestamps, their mean interval
        when every frame lies within 10 % of a frame of the regular grid, else
        the median interval.
    timestamps : (T,) float64 or None
        The frame times when they are irregular (the data must be resampled
        onto the grid), else None.
    timing : str
        ``"rate"``, ``"timestamps"`` or ``"resampled"``.

    Raises
    ------
    DataError
        No rate and no timestamps, a rate that is not a positive number,
        timestamps of another length than the data, fewer than 2 finite frame times.
    """
    s = rs.series
    ts = getattr(s, "timestamps", None)
    ts = getattr(ts, "timestamps", ts)
    if ts is None:
        rate = getattr(s, "rate", None)
        if rate is None:
            raise DataError(f"ROI series '{rs.path}' has neither timestamps nor a sampling rate", file)
        rate = float(rate)
        if not np.isfinite(rate) or rate <= 0:
            raise DataError(f"ROI series '{rs.path}' has rate {rate}: not a positive number of Hz", file)
        start = float(getattr(s, "starting_time", None) or 0.0)
        if not np.isfinite(start):
            raise DataError(f"ROI series '{rs.path}' has starting_time {start}", file)
        return start, 1.0 / rate, None, "rate"
    t = np.asarray(ts[:], dtype=np.float64).ravel()
    if t.size != n_frames:
        raise DataError(f"ROI series '{rs.path}' has {n_frames} frames but {t.size} timestamps", file)
    good = t[np.isfinite(t)]
    if good.size < 2:
        raise DataError(f"ROI series '{rs.path}' has fewer than 2 finite timestamps: no frame interval", file)
    if good.size == t.size and np.all(np.diff(t) > 0):
        dt = (t[-1] - t[0]) / (t.size - 1)
        if np.max(np.abs(t - (t[0] + dt * np.arange(t.size)))) <= JITTER * dt:
            return float(t[0]), float(dt), None, "timestamps"
    return float(good.min()), float(np.median(np.diff(np.sort(good)))), t, "resampled"


def _resample(t: np.ndarray, x: np.ndarray, t_start: float, dt: float, rs: RoiSeries,
              file: str) -> tuple[np.ndarray, np.ndarray]:
    """Values ``x`` (T, M) at irregular times ``t`` onto the regular frame times ``t_start + k dt``.

    Returns the resampled (K, M) float64 values and the (K,) validity (False
    inside gaps longer than ``GAP_FRAMES`` intervals), and warns once.
    """
    name = Path(file).name
    t2, x2, rep = repair_series(t, x)
    if rep.dropped_nan or rep.backward or rep.duplicates:
        log.warning("warning: %s: ROI series '%s' timestamps: %d non-finite dropped, %d backward steps sorted, "
                    "%d duplicates averaged", name, rs.path, rep.dropped_nan, rep.backward, rep.duplicates)
    if dt <= 0 or not np.isfinite(dt) or t2.size < 2:
        raise DataError(f"ROI series '{rs.path}' timestamps give no positive frame interval", file)
    n = int(np.floor((t2[-1] - t_start) / dt + 1e-9)) + 1
    grid = t_start + dt * np.arange(n)
    right = np.clip(np.searchsorted(t2, grid, side="left"), 1, t2.size - 1)
    left = right - 1
    span = t2[right] - t2[left]
    w = np.clip((grid - t2[left]) / span, 0.0, 1.0)[:, None]
    out = x2[left] * (1.0 - w) + x2[right] * w
    exact = np.isclose(grid, t2[right], rtol=0.0, atol=1e-9 * max(1.0, abs(dt)))
    valid = (span <= GAP_FRAMES * dt) | exact
    gaps = np.diff(t2)
    log.warning("warning: %s: ROI series '%s' has irregular timestamps (frame intervals %.6g to %.6g s, median "
                "%.6g s); resampled by linear interpolation onto a regular grid of %.6g s (%d frames -> %d bins, "
                "%d bins inside gaps longer than %g frames marked invalid)", name, rs.path, gaps.min(), gaps.max(),
                dt, dt, t.size, n, int(np.count_nonzero(~valid)), GAP_FRAMES)
    return out, valid


# ----------------------------------------------------------------------------- reading


def read_calcium(nwb: Any, path: str, *, has_units: bool, roi_series: str | None = None,
                 units_where: list[tuple[str, list[str]]] | None = None) -> CalciumSession | None:
    """The calcium session of an NWB file, or None when it is to be converted from its units.

    Parameters
    ----------
    nwb : pynwb.NWBFile
        The open file.
    path : str
        The file (for messages).
    has_units : bool
        The file has a Units table holding units. Units win over optical
        physiology unless ``roi_series`` is given.
    roi_series : str, optional
        ``--roi-series``: the series to read (see :func:`choose_roi_series`).
    units_where : list of (column, values), optional
        ``--units-where`` on the ROI columns (``iscell=1``).

    Returns
    -------
    CalciumSession or None

    Raises
    ------
    UsageError
        ``roi_series`` matches no series or several; a ``--units-where`` column the ROIs lack.
    DataError
        Malformed series (shape, ROIs, timing), no ROI left.
    """
    found = find_roi_series(nwb)
    name = Path(path).name
    if roi_series is None:
        if not found:
            return None
        if has_units:
            log.info("%s: the file has sorted units and %d ROI response series; converting the units "
                     "(--roi-series NAME converts a series instead)", name, len(found))
            return None
    rs = choose_roi_series(found, roi_series, path)
    table, rows = _rois(rs, path)
    if rows.size == 0:
        raise DataError(f"ROI series '{rs.path}' has no ROIs", path)
    data, transposed = _frames(rs, rows.size, path)
    n_frames = data.shape[1] if transposed else data.shape[0]
    if n_frames == 0:
        raise DataError(f"ROI series '{rs.path}' has no frames", path)
    ids = _str_array(table.id.data[:])[rows]
    location = _plane_location(table)
    region = _structured_region(location)
    columns = _roi_columns(table, rows)
    if region is not None:
        columns.setdefault("location", np.array([location] * rows.size, dtype=str))
    areas = np.array([location if region is None else region] * rows.size, dtype=str)
    keep = np.arange(rows.size)
    if units_where:
        keep = _select_units(units_where, ids, areas, columns, _object_path(table), path)
        ids, areas = ids[keep], areas[keep]
        columns = {k: v[keep] for k, v in columns.items()}
    factor = float(getattr(rs.series, "conversion", 1.0) or 1.0)
    offset = float(getattr(rs.series, "offset", 0.0) or 0.0)
    x = _read_frames(data, transposed, keep, factor, offset)
    t_start, dt, irregular, timing = frame_grid(rs, n_frames, path)

    def companion(role: str) -> RoiSeries | None:  # a series of that role over the same ROIs and frames
        for other in found:
            if other is rs or other.role != role or other.container == "DfOverF":
                continue
            try:
                o_table, o_rows = _rois(other, path)
                o_data, o_tr = _frames(other, o_rows.size, path)
            except DataError:
                continue
            if o_table is table and np.array_equal(o_rows, rows) and o_tr == transposed and \
                    tuple(o_data.shape) == tuple(data.shape):
                return other
        return None

    attrs: dict[str, Any] = {"roi_series": rs.path, "roi_series_type": rs.container or "RoiResponseSeries",
                             "plane_segmentation": _object_path(table), "imaging_plane_location": location,
                             "frame_rate_hz": 1.0 / dt, "frame_timing": timing}
    finite = np.isfinite(x)
    valid = np.ones(n_frames, dtype=bool)
    if not finite.all():
        bad = ~finite.all(axis=1)
        log.warning("warning: %s: ROI series '%s' has NaN or infinite values in %d frame(s); those bins are "
                    "marked invalid (values set to 0)", name, rs.path, int(bad.sum()))
        valid &= ~bad
    if rs.container == "DfOverF":
        x = np.where(finite, x, 0.0)
        attrs["dff_source"] = "DfOverF series of the file"
    else:
        if rs.role != "signal":
            log.warning("warning: %s: reading '%s' (its name says %s) as fluorescence", name, rs.path, rs.role)
        neuropil = companion("neuropil") if rs.role == "signal" else None
        fneu = np.zeros_like(x)
        if neuropil is not None:
            fneu = _read_frames(neuropil.series.data, transposed, keep,
                                float(getattr(neuropil.series, "conversion", 1.0) or 1.0),
                                float(getattr(neuropil.series, "offset", 0.0) or 0.0))
            attrs["neuropil_series"] = neuropil.path
        fill = np.nanmedian(np.where(finite, x, np.nan), axis=0) if x.size else np.zeros(x.shape[1])
        fill = np.where(np.isfinite(fill), fill, 0.0)
        x = np.where(finite, x, fill[None, :])
        fneu = np.where(np.isfinite(fneu), fneu, 0.0)
        dff, empty = delta_f_over_f(x.T, fneu.T, frame_rate=1.0 / dt, window_s=_DFF_BASELINE_S)
        if empty.any():
            log.warning("warning: %s: %d ROI(s) of '%s' with empty fluorescence (no positive median) get "
                        "dF/F = 0", name, int(empty.sum()), rs.path)
        coeff = NEUROPIL_COEFF if neuropil is not None else 0.0
        attrs.update({"dff_source": f"computed by ncli (delta_f_over_f) from the {rs.container or 'bare'} series",
                      "neuropil_coefficient": coeff,
                      "baseline": f"min-max filter of the 0.5 s-smoothed trace over {_DFF_BASELINE_S:g} s"})
        log.info("%s: '%s' is raw fluorescence: dF/F computed with a running baseline (%s)", name, rs.path,
                 f"neuropil '{neuropil.path}' x {coeff}" if neuropil is not None else "no neuropil correction")
        x = dff.astype(np.float64)
        x[~np.isfinite(x)] = 0.0
    spks = None
    deconv = companion("deconvolved")
    if deconv is not None:
        spks = _read_frames(deconv.series.data, transposed, keep, 1.0, 0.0)
        attrs["deconvolved_series"] = deconv.path
    if irregular is not None:
        x, valid_r = _resample(irregular, x, t_start, dt, rs, path)
        vmask, _ = _resample_quiet(irregular, valid.astype(np.float64), t_start, dt)
        valid = valid_r & (vmask > 0.999)
        if spks is not None:
            spks, _ = _resample_quiet(irregular, spks, t_start, dt)
    units = UnitsSource(ids=ids, areas=areas, spikes=lambda u: np.zeros(0), columns=columns)
    log.info("%s: calcium session from '%s': %d ROIs x %d frames at %.6g Hz (one bin per frame; --bin-size "
             "does not apply)", name, rs.path, ids.size, x.shape[0], 1.0 / dt)
    return CalciumSession(units=units, dff=np.asarray(x, dtype=np.float32), t_start=t_start, bin_size=dt,
                          valid=valid, attrs=attrs,
                          spks=None if spks is None else np.asarray(spks, dtype=np.float32))


def _resample_quiet(t: np.ndarray, x: np.ndarray, t_start: float, dt: float) -> tuple[np.ndarray, None]:
    """Linear resampling as :func:`_resample`, without repairs' warnings or validity."""
    t2, x2, _ = repair_series(t, x)
    n = int(np.floor((t2[-1] - t_start) / dt + 1e-9)) + 1
    grid = t_start + dt * np.arange(n)
    if x2.ndim == 1:
        return np.interp(grid, t2, x2), None
    return np.column_stack([np.interp(grid, t2, x2[:, j]) for j in range(x2.shape[1])]) if x2.shape[1] else \
        np.zeros((n, 0)), None


def write_calcium_extras(w: Any, session_id: str, calcium: CalciumSession) -> None:
    """Write ``binned/spks`` (the deconvolved series) of a calcium session already written by ``write_session``."""
    if calcium.spks is not None:
        w.array(f"sessions/{session_id}/binned/spks", calcium.spks, unit="a.u.",
                attrs={"kind": "deconvolved", "source": calcium.attrs.get("deconvolved_series", "")})
