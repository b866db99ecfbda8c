"""Read NWB 2 files (HDF5) into an ncli session, lazily and read-only.

The file is opened with pynwb in read mode and never modified. Large arrays
stay on disk as h5py datasets: spike times are sliced one unit at a time
through the units table's ``spike_times_index`` (a ragged array), and long
behaviour series are read block by block by :func:`ncli.formats.session.write_session`.

What is read
------------
- ``units``: ids (the table's ``id``), spike times, and the area of each unit:
  the most common non-empty ``location`` of the unit's electrodes, else the
  units table's own ``location`` column, else the location of the unit's
  electrode group (its ``electrode_group`` column, or the group of its
  electrodes), else ``''``. A structured location (``brain_region: ALM;
  brain_subregion: N/A; ...``) gives its region as the area; the raw strings
  are then kept in ``units/location``. Unsorted spike times are sorted per
  unit (with one warning) by :func:`ncli.formats.session.write_session`.
  The table is ``/units``, else a Units table found by its neurodata type in a
  processing module or ``acquisition``. Its scalar per-unit columns (quality
  labels, metrics) become ``units/<column>`` (``nwb_<column>`` when the store
  owns the name) and the electrodes' x/y/z ``units/electrode_x|y|z``;
  ``--units-where`` keeps matching units only.
- behaviour: every ``TimeSeries``/``SpatialSeries`` in processing modules and
  in ``acquisition``, bare or inside the behaviour containers ``Position``,
  ``CompassDirection``, ``EyeTracking``, ``PupilTracking``,
  ``BehavioralTimeSeries`` (continuous: resampled to bin centres) and
  ``BehavioralEvents`` (events: native sampling only). A bare series with
  integer or boolean values is an event/TTL code series and is stored at native
  sampling only. ``CompassDirection`` series and series in radians (or
  degrees, converted) are circular. Other types (``ElectricalSeries``, images,
  optical physiology, annotations) are skipped with a log line.
- optical physiology: a file without units (or with ``--roi-series``) whose
  ``RoiResponseSeries`` (``DfOverF`` / ``Fluorescence``) is read as a calcium
  session by :mod:`ncli.formats.nwb_ophys` (dF/F, one bin per frame). Continuous
  series with NaN timestamps lose those samples; unordered or duplicated
  timestamps are sorted (stable) and duplicates averaged, with a warning.
- ``trials`` -> ``trials/``; ``epochs`` and every other ``TimeIntervals`` table
  -> ``intervals/<table>/``. Ragged string columns (such as ``tags``) are
  joined with ``';'``; other ragged and compound columns are skipped with a
  warning. Epochs also define ``binned/valid`` and the grid's range.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ncli.core.binning import Grid, RegularTimestamps, repair_series
from ncli.core.errors import DataError, NcliError, UsageError
from ncli.formats import nwb_zarr
from ncli.formats.session import BehaviorSeries, UnitsSource, write_session
from ncli.formats.timeunits import TimeScale, check_rates, check_spike_span, scale_table, scale_times

log = logging.getLogger("ncli")

#: Behaviour containers whose series are continuous signals (resampled to bin centres).
CONTINUOUS_CONTAINERS = {"Position", "CompassDirection", "EyeTracking", "PupilTracking", "BehavioralTimeSeries"}
#: Behaviour containers whose series are events (kept at native sampling only).
EVENT_CONTAINERS = {"BehavioralEvents"}
#: Bare series types read as behaviour.
SERIES_TYPES = {"TimeSeries", "SpatialSeries"}
#: Samples read at once when scanning timestamps or spike times.
BLOCK = 1 << 20

#: Arrays of ``units/`` that the store itself defines; a units-table column of such a name gets a ``nwb_`` prefix.
RESERVED_UNIT_ARRAYS = {"id", "area", "spike_times", "spike_index", "location"}
#: Units-table columns read otherwise (spikes, areas) or not per-unit scalars.
_UNIT_SKIP = {"spike_times", "electrodes", "electrode_group", "obs_intervals", "waveform_mean", "waveform_sd",
              "waveforms"}

_RADIANS = {"radian", "radians", "rad"}
_DEGREES = {"degree", "degrees", "deg"}


# ----------------------------------------------------------------------------- checks


def check_nwb_file(path: str | Path) -> None:
    """Check that ``path`` is a readable NWB 2 (HDF5) file, without reading its data.

    Raises
    ------
    DataError
        Missing or empty file, not HDF5, HDF5 without the ``nwb_version``
        attribute, an HDF5 file that cannot be opened (truncated, corrupt), or
        an NWB 1.x file (version stored as a dataset, or a major version other than 2).
    """
    p = Path(path)
    if not p.exists():
        raise DataError("input file not found", str(p))
    if p.is_dir():
        raise DataError("input is a directory, not an NWB file", str(p))
    if p.stat().st_size == 0:
        raise DataError("input file is empty", str(p))
    if not h5py.is_hdf5(str(p)):
        raise DataError("not an NWB file: not an HDF5 file", str(p),
                        hint="ncli reads NWB 2 files stored as HDF5")
    as_dataset = False
    try:
        with h5py.File(str(p), "r") as f:
            version = f.attrs.get("nwb_version")
            if version is None and isinstance(f.get("nwb_version"), h5py.Dataset):
                version = f["nwb_version"][()]  # NWB 1.x stores its version as a dataset
                if isinstance(version, np.ndarray):
                    version = version.ravel()[0] if version.size else ""
                version = _str_array([version])[0] or "1.x"
                as_dataset = True
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise DataError(f"cannot read NWB file: the HDF5 file is truncated or corrupt ({_short(exc)})",
                        str(p)) from None
    if version is None:
        raise DataError("not an NWB file: HDF5 file has no 'nwb_version' attribute", str(p))
    version = _str_array([version])[0]
    if as_dataset or _major(version) not in (None, 2):
        raise DataError(f"unsupported NWB version '{version}': ncli reads NWB 2.x files", str(p),
                        hint="re-export the recording as NWB 2.x (NWB 1.x files cannot be read by pynwb)")


def nwb_version(path: str | Path) -> str:
    """The ``nwb_version`` attribute of an NWB file ('' when absent or unreadable)."""
    try:
        with h5py.File(str(path), "r") as f:
            return _str_array([f.attrs.get("nwb_version", "")])[0]
    except (OSError, RuntimeError, KeyError, ValueError):
        return ""


def _major(version: str) -> int | None:
    """Major version of an NWB version string (``'NWB-1.0.6'`` -> 1, ``'2.0b'`` -> 2), None when unparsable."""
    m = re.match(r"^\s*(?:NWB[-_ ]?)?(\d+)(?:\.|$|[a-z])", version, flags=re.IGNORECASE)
    return int(m.group(1)) if m else None


def is_prerelease(version: str) -> bool:
    """True for NWB 2 versions that are not a release ``2.X.Y`` (``2.0b``, ``2.0.0b``, ``2.1.0-alpha``)."""
    return _major(version) == 2 and re.match(r"^\s*2\.\d+\.\d+\s*$", version) is None


def _read_failure(exc: BaseException, path: str) -> DataError:
    """The DataError for a file pynwb failed to read; names a pre-release NWB version when that is the cause."""
    version = nwb_version(path)
    if is_prerelease(version):
        return DataError(f"cannot read NWB file with nwb_version '{version}' (a pre-release of NWB 2): "
                         f"NWB 2.x (2.0.0 or later) is required ({exc.__class__.__name__})", path,
                         hint="re-export the file with a current pynwb or matnwb")
    return DataError(f"cannot read NWB file: {_short(exc)}", path,
                     hint="the file may be truncated, corrupt or not valid NWB 2")


def _short(exc: BaseException) -> str:
    msg = str(exc).replace("\n", " ").strip()
    return f"{exc.__class__.__name__}: {msg[:200]}" if msg else exc.__class__.__name__


def _str_array(values: Any) -> np.ndarray:
    """Decode an array of bytes/str/objects into a numpy array of str."""
    out = []
    for v in np.asarray(values, dtype=object).ravel():
        if isinstance(v, bytes):
            v = v.decode("utf-8", errors="replace")
        out.append("" if v is None else str(v))
    return np.array(out, dtype=str) if out else np.zeros(0, dtype=str)


#: Keys of a structured location string that name the brain area, in order of preference.
_REGION_KEYS = ("brain_region", "brain_area", "region", "area", "location")
_UNKNOWN = {"", "n/a", "na", "none", "unknown", "nan"}
_PAIR = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_ ]*?)\s*[:=]\s*(.*?)\s*$")


def _structured_region(text: str) -> str | None:
    """The region of a structured location string (``brain_region: ALM; brain_subregion: N/A; ...``).

    Returns None when ``text`` is not made of ``key: value`` pairs separated by
    ``;`` or has no region key; ``''`` when the region is unknown (``N/A``).
    """
    if ":" not in text and "=" not in text:
        return None
    pairs = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        m = _PAIR.match(part)
        if m is None:
            return None
        pairs[m.group(1).strip().lower().replace(" ", "_")] = m.group(2)
    for key in _REGION_KEYS:
        if key in pairs:
            value = pairs[key].strip()
            return "" if value.lower() in _UNKNOWN else value
    return None


def _blocks(start: int, stop: int):
    """``(a, b)`` slices of at most BLOCK samples covering ``[start, stop)``."""
    for a in range(start, stop, BLOCK):
        yield a, min(stop, a + BLOCK)


def _object_path(obj: Any) -> str:
    """Path of a container inside the file, from its parents (``processing/ecephys/units``)."""
    parts = []
    while obj is not None and _ntype(obj) != "NWBFile":
        parts.append(str(getattr(obj, "name", "?")))
        obj = getattr(obj, "parent", None)
    return "/".join(reversed(parts))


def parse_units_where(specs: list[str] | None) -> list[tuple[str, list[str]]]:
    """``['quality=good,mua']`` -> ``[('quality', ['good', 'mua'])]``.

    Raises
    ------
    UsageError
        A spec without ``COLUMN=VALUE``.
    """
    out = []
    for spec in specs or []:
        column, sep, values = spec.partition("=")
        column = column.strip()
        vals = [v.strip() for v in values.split(",")]
        if not sep or not column or not any(vals):
            raise UsageError(f"invalid --units-where '{spec}': expected COLUMN=VALUE[,VALUE...]", "--units-where",
                             hint="e.g. --units-where quality=good")
        out.append((column, [v for v in vals if v]))
    return out


def _select_units(where: list[tuple[str, list[str]]], ids: np.ndarray, areas: np.ndarray,
                  columns: dict[str, np.ndarray], table: str, path: str) -> np.ndarray:
    """Indices of the units matching every ``COLUMN=VALUE[,VALUE...]`` (values compared as strings).

    Raises
    ------
    UsageError
        A column the units table does not have (the available ones are named).
    DataError
        No unit matches.
    """
    available = {"id": ids, "area": areas, **columns}
    keep = np.ones(len(ids), dtype=bool)
    for column, values in where:
        if column not in available:
            raise UsageError(f"--units-where: unknown units column '{column}' in '{table}'", path,
                             hint=f"columns: {', '.join(sorted(available))}")
        text = _str_array(available[column])
        keep &= np.isin(text, values)
    if not keep.any():
        shown = "; ".join(f"{c}={','.join(v)}" for c, v in where)
        raise DataError(f"--units-where {shown}: no unit of the {len(ids)} in '{table}' matches", path)
    log.info("%s: --units-where keeps %d of %d units", Path(path).name, int(keep.sum()), len(ids))
    return np.flatnonzero(keep)


def _ntype(obj: Any) -> str:
    return str(getattr(obj, "neurodata_type", type(obj).__name__))


# ----------------------------------------------------------------------------- lazy views


class _Scaled:
    """Read-only view ``data * factor + offset`` of an on-disk dataset (sliced lazily)."""

    def __init__(self, data: Any, factor: float, offset: float):
        self.data, self.factor, self.offset = data, float(factor), float(offset)
        self.shape = tuple(data.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, item) -> np.ndarray:
        return np.asarray(self.data[item], dtype=np.float64) * self.factor + self.offset


def _scan_times(ts: Any, name: str) -> tuple[float, float, bool, int]:
    """First and last finite sample time of a series, read block by block.

    Returns ``(first, last, increasing, n_nonfinite)``: ``increasing`` is False
    when a finite timestamp is not later than the finite one before it.
    """
    n = len(ts)
    if isinstance(ts, RegularTimestamps):
        return ts.start, ts.start + (n - 1) / ts.rate, True, 0
    lo, hi, prev, monotonic, nonfinite = np.inf, -np.inf, -np.inf, True, 0
    for start in range(0, n, BLOCK):
        t = np.asarray(ts[start : start + BLOCK], dtype=np.float64)
        finite = np.isfinite(t)
        nonfinite += int(t.size - np.count_nonzero(finite))
        t = t[finite]
        if t.size and (t[0] <= prev or np.any(np.diff(t) <= 0)):
            monotonic = False
        if t.size:
            prev = t[-1]
            lo, hi = min(lo, float(t.min())), max(hi, float(t.max()))
    return lo, hi, monotonic, nonfinite


def _repair_behaviour(series: BehaviorSeries, name: str, file: str) -> tuple[float, float, bool, int]:
    """Drop NaN-timestamp samples, sort and merge duplicates of a continuous series (in memory), with warnings."""
    t, x, rep = repair_series(np.asarray(series.timestamps[:], dtype=np.float64),
                              np.asarray(series.data[:], dtype=np.float64), circular=series.circular)
    if rep.dropped_nan:
        log.warning("warning: %s: behaviour '%s' has %d sample%s with NaN or infinite timestamps; dropped",
                    file, name, rep.dropped_nan, "" if rep.dropped_nan == 1 else "s")
    if rep.backward or rep.duplicates:
        what = []
        if rep.backward:
            what.append(f"{rep.backward} backward step{'' if rep.backward == 1 else 's'}")
        if rep.duplicates:
            what.append(f"{rep.duplicates} duplicate timestamp{'' if rep.duplicates == 1 else 's'}")
        log.warning("warning: %s: behaviour '%s' timestamps are not strictly increasing (%s); sorted by time "
                    "(stable) and samples at the same time averaged", file, name, ", ".join(what))
    series.timestamps, series.data = t, x
    if t.size == 0:
        return np.inf, -np.inf, True, 0
    return float(t[0]), float(t[-1]), True, 0


# ----------------------------------------------------------------------------- the reader


class NwbReader:
    """An NWB file opened read-only with pynwb; reads one session lazily.

    Use as a context manager; the datasets it hands out are valid until exit.
    pynwb/hdmf warnings raised while reading go to the debug log (stderr with
    ``--debug``), never to stdout.

    Parameters
    ----------
    path : str or Path
        The ``.nwb`` file.
    allow_no_units : bool
        Accept a file without a units table (behaviour-only session, no counts).
    units_where : list of (column, values), optional
        Keep only the units whose column (as a string) is one of the values
        (``--units-where``; see :func:`parse_units_where`).

    Raises
    ------
    DataError
        The file is not a readable NWB file (see :func:`check_nwb_file`).
    """

    def __init__(self, path: str | Path, *, allow_no_units: bool = False,
                 units_where: list[tuple[str, list[str]]] | None = None):
        self.path = str(path)
        self.allow_no_units = allow_no_units
        self.units_filter = list(units_where or [])
        self._io = None
        self.nwb = None
        self._warn_ctx = None

    def __enter__(self) -> "NwbReader":
        check_nwb_file(self.path)
        self._warn_ctx = warnings.catch_warnings(record=True)
        self._warnings = self._warn_ctx.__enter__()
        warnings.simplefilter("always")
        try:
            from pynwb import NWBHDF5IO

            self._io = NWBHDF5IO(self.path, mode="r", load_namespaces=True)
            self.nwb = self._io.read()
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) or not isinstance(exc, Exception):
                raise
            raise _read_failure(exc, self.path) from exc
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._io is not None:
            try:
                self._io.close()
            except Exception:  # closing a broken file must not hide the first error
                pass
            self._io = None
        if self._warn_ctx is not None:
            for w in self._warnings:
                log.debug("pynwb: %s", str(w.message).replace("\n", " "))
            self._warn_ctx.__exit__(None, None, None)
            self._warn_ctx = None
        return False

    # -- metadata
    def attrs(self) -> dict[str, Any]:
        """Session attributes: subject, species, start_time (ISO 8601), description, identifier."""
        nwb = self.nwb
        subject = nwb.subject
        start = nwb.session_start_time
        out = {
            "subject": str(getattr(subject, "subject_id", "") or "") if subject is not None else "",
            "species": str(getattr(subject, "species", "") or "") if subject is not None else "",
            "start_time": start.isoformat() if start is not None else "",
            "session_description": str(nwb.session_description or ""),
            "identifier": str(nwb.identifier or ""),
            "format": "NWB",
        }
        for key in ("session_id", "experiment_description", "lab", "institution"):
            value = getattr(nwb, key, None)
            if value:
                out[key] = str(value)
        try:
            with h5py.File(self.path, "r") as f:
                out["nwb_version"] = _str_array([f.attrs.get("nwb_version", "")])[0]
        except OSError:
            pass
        return out

    # -- units
    def units(self) -> UnitsSource | None:
        """The units table as a lazy :class:`UnitsSource` (None when absent and allowed).

        Raises
        ------
        DataError
            No units table (unless ``allow_no_units``), or no ``spike_times`` column.
        """
        table, where = self._find_units()
        if table is None:
            if self.allow_no_units:
                return None
            if where:  # Units tables exist, but hold no unit
                raise DataError(f"the Units table '{where}' holds no units", self.path,
                                hint="pass --allow-no-units to convert its behaviour and trials only")
            raise DataError("no units table: the file holds no sorted spikes", self.path,
                            hint="pass --allow-no-units to convert its behaviour and trials only")
        self.units_where = where
        if "spike_times" not in table.colnames:
            raise DataError(f"units table '{where}' has no 'spike_times' column", self.path)
        n = len(table.id)
        ids = _str_array(table.id.data[:])
        col = table["spike_times"]
        if hasattr(col, "target"):  # ragged: VectorIndex -> VectorData
            ends = np.asarray(col.data[:], dtype=np.int64)
            data = col.target.data
        else:  # pragma: no cover - NWB always stores spike_times ragged
            raise DataError("units table 'spike_times' column is not a ragged array", self.path)
        if ends.shape != (n,):
            raise DataError(f"units table has {n} ids but {ends.shape[0]} spike index entries", self.path)
        starts = np.concatenate([[0], ends[:-1]])
        total = len(data)
        if n and (np.any(np.diff(ends) < 0) or ends[-1] > total or ends[0] < 0):
            raise DataError("units table spike_times_index is inconsistent with spike_times", self.path)
        self._spike_data = data

        areas = self._areas(table, n)
        regions = [_structured_region(a) for a in areas]
        columns: dict[str, np.ndarray] = {}
        if any(r is not None for r in regions):  # 'brain_region: ALM; ...' -> area 'ALM', raw kept
            columns["location"] = np.asarray(areas, dtype=str)
            areas = np.asarray([a if r is None else r for a, r in zip(areas, regions)], dtype=str)
        for name, values in self._unit_columns(table, n).items():
            key = name
            while key in RESERVED_UNIT_ARRAYS or key in columns:
                key = f"nwb_{key}"
            columns[key] = values
        keep = np.arange(n)
        if self.units_filter:
            keep = _select_units(self.units_filter, ids, areas, columns, where, self.path)
            ids, areas = ids[keep], areas[keep]
            columns = {k: v[keep] for k, v in columns.items()}
            self._spike_slices = [(int(starts[u]), int(ends[u])) for u in keep]
        starts, ends = starts[keep], ends[keep]

        def spikes(u: int) -> np.ndarray:
            return np.asarray(data[int(starts[u]) : int(ends[u])], dtype=np.float64)

        return UnitsSource(ids=ids, areas=areas, spikes=spikes, columns=columns)

    def has_units(self) -> bool:
        """True when the file has a Units table holding at least one unit (anywhere, found by type)."""
        return self._find_units()[0] is not None

    def _find_units(self) -> tuple[Any, str]:
        """The Units table to read and where it is: ``/units``, else the first Units table elsewhere.

        Units tables in processing modules and in ``acquisition`` are found by
        their neurodata type; when there are several, the choice is logged.
        """
        found: list[tuple[str, Any]] = []
        if self.nwb.units is not None:
            found.append(("units", self.nwb.units))
        for m, mod in self.nwb.processing.items():
            for iname, obj in mod.data_interfaces.items():
                if _ntype(obj) == "Units":
                    found.append((f"processing/{m}/{iname}", obj))
        for iname, obj in self.nwb.acquisition.items():
            if _ntype(obj) == "Units":
                found.append((f"acquisition/{iname}", obj))
        seen = {id(t) for _, t in found}
        for obj in self.nwb.objects.values():  # anywhere else (e.g. nested in a container)
            if _ntype(obj) == "Units" and id(obj) not in seen:
                seen.add(id(obj))
                found.append((_object_path(obj), obj))
        nonempty = [(w, t) for w, t in found if len(t.id) > 0]
        if not nonempty:
            return None, ", ".join(w for w, _ in found)
        where, table = nonempty[0]
        if len(nonempty) > 1:
            log.warning("%s: %d Units tables (%s); reading '%s'", Path(self.path).name, len(nonempty),
                        ", ".join(w for w, _ in nonempty), where)
        elif where != "units":
            log.info("%s: no /units table; reading the Units table '%s'", Path(self.path).name, where)
        return table, where

    def _unit_columns(self, table, n: int) -> dict[str, np.ndarray]:
        """Scalar per-unit columns a sorter or curator wrote, plus each unit's electrode x/y/z (mean)."""
        out: dict[str, np.ndarray] = {}
        for cname in table.colnames:
            if cname in _UNIT_SKIP:
                continue
            col = table[cname]
            if hasattr(col, "target") or hasattr(col, "table"):  # ragged column or a table reference
                log.debug("units table: column '%s' skipped (ragged or a reference)", cname)
                continue
            try:
                values = np.asarray(col.data[:] if hasattr(col.data, "__getitem__") else list(col.data))
            except Exception as exc:  # an unreadable column must not stop the conversion
                log.warning("units table: column '%s' skipped (%s)", cname, _short(exc))
                continue
            if values.shape != (n,) or values.dtype.names is not None:
                log.debug("units table: column '%s' skipped (not one scalar per unit)", cname)
                continue
            if values.dtype.kind in "OSU":
                if values.dtype.kind == "O" and n and not all(isinstance(v, (str, bytes)) for v in values):
                    log.debug("units table: column '%s' skipped (not numbers or strings)", cname)
                    continue
                values = _str_array(values)
            elif values.dtype.kind not in "biuf":
                log.debug("units table: column '%s' skipped (dtype %s)", cname, values.dtype)
                continue
            out[cname.replace("/", "_")] = values
        out.update(self._electrode_xyz(table, n))
        return out

    def _electrode_xyz(self, table, n: int) -> dict[str, np.ndarray]:
        """``electrode_x/y/z``: mean coordinates of each unit's electrodes (NaN without electrodes)."""
        if "electrodes" not in table.colnames:
            return {}
        col = table["electrodes"]
        if hasattr(col, "target"):
            ends, region = np.asarray(col.data[:], dtype=np.int64), col.target
        else:
            ends, region = np.arange(1, n + 1, dtype=np.int64), col
        etable = getattr(region, "table", None) or self.nwb.electrodes
        if etable is None:
            return {}
        rows = np.asarray(region.data[:], dtype=np.int64)
        starts = np.concatenate([[0], ends[:-1]])
        out: dict[str, np.ndarray] = {}
        for axis in ("x", "y", "z"):
            if axis not in etable.colnames:
                continue
            try:
                coord = np.asarray(etable[axis].data[:], dtype=np.float64)
            except (TypeError, ValueError):
                continue
            vals = np.full(n, np.nan)
            for u in range(n):
                r = rows[starts[u] : ends[u]]
                r = r[(r >= 0) & (r < coord.size)]
                if r.size:
                    vals[u] = float(np.nanmean(coord[r])) if np.any(np.isfinite(coord[r])) else np.nan
            out[f"electrode_{axis}"] = vals
        return out

    def spike_range(self) -> tuple[float, float] | None:
        """(first, last) finite spike time over all units, read block by block."""
        data = getattr(self, "_spike_data", None)
        if data is None:
            return None
        lo, hi = np.inf, -np.inf
        slices = getattr(self, "_spike_slices", None)  # --units-where: the kept units only
        blocks = ([(a, b) for a0, b0 in slices for a, b in _blocks(a0, b0)] if slices is not None
                  else list(_blocks(0, len(data))))
        for start, stop in blocks:
            t = np.asarray(data[start:stop], dtype=np.float64)
            t = t[np.isfinite(t)]
            if t.size:
                lo, hi = min(lo, float(t.min())), max(hi, float(t.max()))
        return None if lo > hi else (lo, hi)

    def n_spikes(self) -> int:
        """Number of spikes of the units read (after ``--units-where``); 0 before :meth:`units`."""
        data = getattr(self, "_spike_data", None)
        if data is None:
            return 0
        slices = getattr(self, "_spike_slices", None)
        return len(data) if slices is None else sum(b - a for a, b in slices)

    def _areas(self, table, n: int) -> np.ndarray:
        areas = np.array([""] * n, dtype=object)
        # 1. locations of each unit's electrodes (most common non-empty one)
        if "electrodes" in table.colnames:
            col = table["electrodes"]
            if hasattr(col, "target"):  # ragged DynamicTableRegion
                ends = np.asarray(col.data[:], dtype=np.int64)
                region = col.target
            else:
                ends = np.arange(1, n + 1, dtype=np.int64)
                region = col
            rows = np.asarray(region.data[:], dtype=np.int64)
            etable = getattr(region, "table", None) or self.nwb.electrodes
            locs = self._electrode_locations(etable)
            starts = np.concatenate([[0], ends[:-1]])
            for u in range(n):
                r = rows[starts[u] : ends[u]]
                names = [locs[i] for i in r if 0 <= i < len(locs) and locs[i]]
                if names:
                    areas[u] = Counter(names).most_common(1)[0][0]
        # 2. the units table's own 'location' column (non-standard but common)
        if "location" in table.colnames and any(a == "" for a in areas):
            try:
                own = _str_array(table["location"].data[:])
                for u in range(n):
                    if not areas[u] and own[u]:
                        areas[u] = own[u]
            except Exception as exc:
                log.debug("units 'location' column unreadable: %s", exc)
        # 3. the unit's electrode group
        if "electrode_group" in table.colnames and any(a == "" for a in areas):
            data = table["electrode_group"].data
            for u in range(n):
                if not areas[u]:
                    loc = getattr(data[u], "location", "") or ""
                    areas[u] = str(loc)
        return np.asarray(areas, dtype=str)

    def _electrode_locations(self, etable) -> list[str]:
        """Location of each electrode row: its own, else its electrode group's."""
        if etable is None:
            return []
        m = len(etable.id)
        locs = list(_str_array(etable["location"].data[:])) if "location" in etable.colnames else [""] * m
        if "group" in etable.colnames and not all(locs):
            data = etable["group"].data
            cache: dict[str, str] = {}
            for i in range(m):
                if not locs[i]:
                    g = data[i]
                    key = getattr(g, "object_id", str(i))
                    if key not in cache:
                        cache[key] = str(getattr(g, "location", "") or "")
                    locs[i] = cache[key]
        return locs

    # -- behaviour
    def behavior(self) -> dict[str, tuple[BehaviorSeries, str]]:
        """Every behaviour series: ``name -> (BehaviorSeries, kind)``, kind 'continuous' or 'events'.

        ``BehaviorSeries.binned`` is True for continuous series; the caller
        switches it off for series that do not overlap the grid.
        """
        found: list[tuple[str, str, Any, str]] = []  # (where, module, series, kind)
        sources = [(f"processing/{m}", m, mod.data_interfaces) for m, mod in self.nwb.processing.items()]
        sources.append(("acquisition", "acquisition", self.nwb.acquisition))
        for where, module, interfaces in sources:
            for iname, obj in interfaces.items():
                t = _ntype(obj)
                if t in CONTINUOUS_CONTAINERS or t in EVENT_CONTAINERS:
                    children = getattr(obj, "spatial_series", None) or getattr(obj, "time_series", None) or {}
                    kind = "events" if t in EVENT_CONTAINERS else "continuous"
                    for s in children.values():
                        found.append((f"{where}/{iname}/{s.name}", module, s, kind if t != "CompassDirection"
                                      else "circular"))
                elif t in SERIES_TYPES:
                    dtype = getattr(obj.data, "dtype", None)
                    if dtype is None or dtype.kind not in "fiub":
                        log.info("skipped %s/%s (%s): values are not numeric", where, iname, t)
                        continue
                    found.append((f"{where}/{iname}", module, obj, "continuous" if dtype.kind == "f" else "events"))
                else:
                    log.info("skipped %s/%s (%s): not a behaviour series", where, iname, t)
        out: dict[str, tuple[BehaviorSeries, str]] = {}
        for where, module, s, kind in found:
            name = s.name.replace("/", "_")
            if name in out:
                name = f"{module}_{name}"
            k = 2
            base = name
            while name in out:
                name, k = f"{base}_{k}", k + 1
            series = self._series(s, where, kind, name)
            if series is not None:
                out[name] = (series, "events" if kind == "events" else "continuous")
        return out

    def _series(self, s, where: str, kind: str, name: str) -> BehaviorSeries | None:
        data = s.data
        if not hasattr(data, "shape") or not hasattr(data, "dtype") or data.dtype.kind not in "fiub":
            log.info("skipped %s: values are not numeric", where)
            return None
        n = data.shape[0]
        ts = s.timestamps
        if ts is not None and hasattr(ts, "timestamps"):  # timestamps linked to another series
            ts = ts.timestamps
        if ts is None:
            rate = s.rate
            if rate is None:
                log.warning("skipped %s: neither timestamps nor a sampling rate", where)
                return None
            ts = RegularTimestamps(float(s.starting_time or 0.0), float(rate), n)
        if len(ts) != n:
            raise DataError(f"behaviour '{name}' has {n} samples but {len(ts)} timestamps", where)
        unit = str(getattr(s, "unit", "") or "")
        factor = float(getattr(s, "conversion", 1.0) or 1.0)
        offset = float(getattr(s, "offset", 0.0) or 0.0)
        circular = kind == "circular" or unit.lower() in _RADIANS
        if unit.lower() in _DEGREES and (kind == "circular" or "direction" in name.lower()):
            factor, offset, unit, circular = factor * np.pi / 180.0, offset * np.pi / 180.0, "radians", True
        if circular and unit.lower() not in _RADIANS:
            unit = "radians"
        if unit in ("NA", "n/a", "no unit"):
            unit = ""
        values = data if (factor == 1.0 and offset == 0.0 and data.dtype.kind == "f") else _Scaled(data, factor, offset)
        columns: list[str] = []
        d = int(np.prod(data.shape[1:])) if data.ndim > 1 else 1
        if _ntype(s) == "SpatialSeries" and d <= 3 and not circular:
            columns = ["x", "y", "z"][:d]
        desc = str(getattr(s, "description", "") or "")
        if desc == "no description":
            desc = ""
        return BehaviorSeries(timestamps=ts, data=values, unit=unit, columns=columns, circular=circular,
                              description=f"{where}: {desc}" if desc else where,
                              binned=kind != "events")

    # -- tables
    def tables(self) -> tuple[dict[str, np.ndarray] | None, dict[str, dict[str, np.ndarray]], np.ndarray | None]:
        """``(trials, intervals, epochs)``: the trials table, every other interval table, epochs (E, 2) s."""
        trials = None
        intervals: dict[str, dict[str, np.ndarray]] = {}
        epochs = None
        seen: dict[str, Any] = {}
        for name, table in (self.nwb.intervals or {}).items():
            seen[name] = table
        for name in ("trials", "epochs", "invalid_times"):
            table = getattr(self.nwb, name, None)
            if table is not None:
                seen.setdefault(name, table)
        for name, table in seen.items():
            columns = self._read_table(table, name)
            if not columns:
                continue
            if name == "trials":
                trials = columns
            else:
                intervals[name.replace("/", "_")] = columns
            if name == "epochs" and "start_time" in columns and "stop_time" in columns:
                epochs = np.c_[np.asarray(columns["start_time"], dtype=np.float64),
                               np.asarray(columns["stop_time"], dtype=np.float64)]
                if epochs.size and not np.all(np.isfinite(epochs)):
                    raise DataError("epochs table has NaN or infinite times", self.path)
                if epochs.size and np.any(epochs[:, 1] < epochs[:, 0]):
                    raise DataError("epochs table has an epoch that stops before it starts", self.path)
        if trials is not None and not ("start_time" in trials and "stop_time" in trials):
            raise DataError("trials table lacks start_time/stop_time", self.path)
        return trials, intervals, epochs

    def _read_table(self, table, tname: str) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for cname in table.colnames:
            col = table[cname]
            key = cname.replace("/", "_")
            try:
                if hasattr(col, "target"):  # ragged column
                    target = col.target
                    values = target.data[:] if hasattr(target.data, "__getitem__") else list(target.data)
                    values = np.asarray(values)
                    if values.dtype.kind in "OSU" and values.ndim == 1:
                        ends = np.asarray(col.data[:], dtype=np.int64)
                        starts = np.concatenate([[0], ends[:-1]])
                        text = _str_array(values)
                        out[key] = np.array([";".join(text[a:b]) for a, b in zip(starts, ends)], dtype=str)
                    else:
                        log.warning("table '%s': ragged column '%s' skipped (only ragged strings are kept)",
                                    tname, cname)
                    continue
                data = col.data
                values = np.asarray(data[:] if hasattr(data, "__getitem__") else list(data))
                if values.dtype.names is not None or (values.dtype.kind == "O" and values.size and
                                                      not isinstance(values.ravel()[0], (str, bytes))):
                    log.warning("table '%s': column '%s' (%s) skipped: not numbers or strings",
                                tname, cname, _ntype(col))
                    continue
                if values.dtype.kind in "OSU":
                    values = _str_array(values).reshape(values.shape)
                out[key] = values
            except Exception as exc:  # a column we cannot interpret must not stop the conversion
                log.warning("table '%s': column '%s' skipped (%s)", tname, cname, _short(exc))
        return out


# ----------------------------------------------------------------------------- time units


def _check_time_units(rd: "NwbReader", units: UnitsSource | None, span: tuple[float, float] | None,
                      trials: dict[str, np.ndarray] | None, behavior: dict, scale: TimeScale) -> None:
    """Refuse spike times that look like ms/µs against the file's trials and continuous behaviour."""
    if scale.stated or units is None:
        return
    lo, hi = np.inf, -np.inf
    names = []
    if trials is not None:
        t = np.r_[np.asarray(trials["start_time"], dtype=np.float64), np.asarray(trials["stop_time"], dtype=np.float64)]
        t = t[np.isfinite(t)]
        if t.size:
            lo, hi = min(lo, float(t.min())), max(hi, float(t.max()))
            names.append("trials")
    for name, (series, kind) in behavior.items():
        if kind != "continuous" or len(series.timestamps) == 0:
            continue
        first, last, _, _ = _scan_times(series.timestamps, name)
        if first <= last:
            lo, hi = min(lo, first), max(hi, last)
            if "behaviour" not in names:
                names.append("behaviour")
    other = (lo, hi) if lo < hi else None
    check_spike_span(span, other, " and ".join(names) or "behaviour", scale)
    check_rates(rd.n_spikes(), len(units), span, scale)


def _rescale(units, span, trials, intervals, epochs, behavior, scale: TimeScale):
    """Every time of one NWB session in seconds (``--time-unit``, ``--spike-time-unit``)."""
    if units is not None and scale.spikes != 1.0:
        raw, f = units.spikes, scale.spikes
        units.spikes = lambda u: scale.spike_seconds(raw(u))
        span = None if span is None else (span[0] * f, span[1] * f)
    for series, _ in behavior.values():
        series.timestamps = scale_times(series.timestamps, scale.other)
    trials = scale_table(trials, scale.other)
    intervals = {k: scale_table(v, scale.other) for k, v in intervals.items()}
    if epochs is not None:
        epochs = np.asarray(epochs, dtype=np.float64) * scale.other
    return units, span, trials, intervals, epochs


# ----------------------------------------------------------------------------- one session


def convert_nwb(w, path: str | Path, session_id: str, *, bin_size: float, sha256: str,
                allow_no_units: bool = False, units_where: list[tuple[str, list[str]]] | None = None,
                scale: TimeScale | None = None, roi_series: str | None = None) -> Grid:
    """Read one NWB file and write it as ``sessions/<session_id>`` of the layer ``w``.

    Parameters
    ----------
    w : StoreWriter
        The layer being written.
    path : str or Path
        The NWB file, or an NWB-Zarr folder (read through
        :func:`ncli.formats.nwb_zarr.hdf5_mirror`); opened read-only.
    session_id : str
        Name of the session group.
    bin_size : float
        Bin width (s) of ``binned/``.
    sha256 : str
        SHA-256 of the file, recorded in the session's ``source`` attribute.
    allow_no_units : bool
        Convert a file without units (no ``binned/counts``).
    units_where : list of (column, values), optional
        Keep only matching units (``--units-where``).
    scale : TimeScale, optional
        Seconds per stored number of the spike times and of every other time
        (``--time-unit``, ``--spike-time-unit``); default seconds, with the
        look-alike checks of :mod:`ncli.formats.timeunits`.
    roi_series : str, optional
        ``--roi-series``: convert this ``RoiResponseSeries`` as a calcium
        session even when the file has units (:mod:`ncli.formats.nwb_ophys`).
        Without it, a file with optical physiology and no units is a calcium
        session; units win when the file has both.

    Returns
    -------
    Grid
        The session's time grid: the epochs' range when the file has epochs,
        else first to last spike (behaviour's range without units).

    Raises
    ------
    DataError
        Not a readable NWB file, no units, invalid spike times or behaviour
        timestamps, nothing to place a time grid on; times that look like
        milliseconds or microseconds when no unit was stated.
    """
    path = str(path)
    scale = scale or TimeScale()
    # an NWB-Zarr folder is read through a temporary HDF5 mirror, so both backends share this code
    source = nwb_zarr.hdf5_mirror(path) if Path(path).is_dir() else contextlib.nullcontext(path)
    with source as read_path, NwbReader(read_path, allow_no_units=allow_no_units, units_where=units_where) as rd:
        try:
            attrs = rd.attrs()
            attrs["source"] = {"path": str(Path(path).resolve()), "sha256": sha256}
            from ncli.formats.nwb_ophys import read_calcium, write_calcium_extras

            calcium = read_calcium(rd.nwb, path, has_units=rd.has_units(), roi_series=roi_series,
                                   units_where=rd.units_filter)  # None: the units are converted
            units = rd.units() if calcium is None else calcium.units
            trials, intervals, epochs = rd.tables()
            behavior = rd.behavior()
            raw_span = rd.spike_range() if units is not None and calcium is None else None
            _check_time_units(rd, units if calcium is None else None, raw_span, trials, behavior, scale)
            if not scale.identity:
                units, raw_span, trials, intervals, epochs = _rescale(units, raw_span, trials, intervals, epochs,
                                                                      behavior, scale)
                try:  # the stated units must make spikes and trials/behaviour agree; say so when they do not
                    _check_time_units(rd, units if calcium is None else None, raw_span, trials, behavior,
                                      TimeScale())
                except DataError as err:
                    log.warning("warning: %s: with the time units given, %s", Path(path).name, err.what)
            if units is None and not behavior and trials is None:
                raise DataError("no units table and no behaviour: nothing to convert", path)
            # the grid: epochs, else spikes, else (behaviour-only) the continuous series
            ranges = {}
            for name, (series, kind) in behavior.items():
                ranges[name] = _scan_times(series.timestamps, name)
                if kind == "continuous" and (not ranges[name][2] or ranges[name][3]):
                    ranges[name] = _repair_behaviour(series, name, Path(path).name)
            if calcium is not None:  # one bin per frame, whatever --bin-size says
                if not scale.identity:
                    calcium.rescale(scale.other)
                t_start, t_stop = calcium.t_start, calcium.t_stop
            elif epochs is not None and len(epochs):
                t_start, t_stop = float(epochs[:, 0].min()), float(epochs[:, 1].max())
            else:
                span = raw_span
                if span is not None:
                    t_start, t_stop = span[0], span[1] + bin_size
                else:
                    cont = [r for n, r in ranges.items() if behavior[n][1] == "continuous" and r[0] <= r[1]]
                    if not cont:
                        raise DataError("cannot place the time grid: no spikes, no epochs and no "
                                        "continuous behaviour", path)
                    t_start, t_stop = min(r[0] for r in cont), max(r[1] for r in cont)
            series_out: dict[str, BehaviorSeries] = {}
            for name, (series, kind) in behavior.items():
                first, last, monotonic, _ = ranges[name]
                if kind == "events":
                    if not monotonic:
                        log.warning("%s: event series '%s' has unordered timestamps; stored at native "
                                    "sampling only", Path(path).name, name)
                elif last < t_start or first > t_stop or first > last:
                    log.warning("%s: behaviour '%s' [%.6g, %.6g] s does not overlap the binned range "
                                "[%.6g, %.6g] s; stored at native sampling only",
                                Path(path).name, name, first, last, t_start, t_stop)
                    series.binned = False
                series_out[name] = series
            extra = {} if calcium is None else {"counts": calcium.dff, "counts_kind": "calcium",
                                                "counts_unit": "dF/F", "valid": calcium.valid}
            if calcium is not None:
                bin_size = calcium.bin_size
                attrs.update(calcium.attrs)
            grid = write_session(w, session_id, units=units, bin_size=bin_size, t_start=t_start, t_stop=t_stop,
                                 behavior=series_out, trials=trials, intervals=intervals, epochs=epochs,
                                 attrs=attrs, **extra)
            if calcium is not None:
                write_calcium_extras(w, session_id, calcium)
        except NcliError as err:
            if not err.where:
                err.where = path
            raise
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            raise _read_failure(exc, path) from exc
    return grid
