"""Binning spike trains and resampling behaviour onto one regular time grid.

The grid of a session has ``T`` bins of ``bin_size`` seconds starting at
``t_start``: bin ``k`` covers ``[t_start + k*bin_size, t_start + (k+1)*bin_size)``
and its centre is ``t_start + (k + 0.5)*bin_size``. Everything here works on
blocks so that memory stays bounded for long recordings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ncli.core.errors import DataError

#: Largest time grid accepted (bins); 1e8 bins of 1 ms is more than a day.
MAX_BINS = 100_000_000
#: Samples read at once when resampling a long behaviour series.
SAMPLE_BLOCK = 1 << 20


@dataclass(frozen=True)
class Grid:
    """A regular time grid.

    Attributes
    ----------
    t_start : float
        Left edge of the first bin (s).
    bin_size : float
        Bin width (s), > 0.
    n_bins : int
        Number of bins ``T``.
    """

    t_start: float
    bin_size: float
    n_bins: int

    @classmethod
    def covering(cls, t_start: float, t_stop: float, bin_size: float) -> "Grid":
        """The grid of whole bins inside ``[t_start, t_stop]``.

        Raises
        ------
        DataError
            When the bin size is not positive or the range holds no whole bin.
        """
        if not np.isfinite(bin_size) or bin_size <= 0:
            raise DataError(f"bin size must be a positive number of seconds, got {bin_size}")
        if not (np.isfinite(t_start) and np.isfinite(t_stop)):
            raise DataError(f"recording range [{t_start}, {t_stop}] s is not finite")
        n_float = np.floor((t_stop - t_start) / bin_size + 1e-9)
        if n_float > MAX_BINS:
            length = t_stop - t_start
            hint = "use a larger --bin-size"
            if length > 2 * 86_400:  # longer than a recording: the likely cause is the time unit
                hint = (f"the times span {length:.6g} s ({length / 86_400:.3g} days), longer than a recording: "
                        "if they are milliseconds, microseconds or sample indices pass --time-unit ms|us or "
                        "--sampling-rate HZ; else use a larger --bin-size")
            raise DataError(f"{bin_size} s bins over [{t_start:.6g}, {t_stop:.6g}] s would make {n_float:.3g} bins "
                            f"(more than {MAX_BINS:.0e})", hint=hint)
        n = int(n_float)
        if n < 1:
            raise DataError(f"recording range [{t_start:.6g}, {t_stop:.6g}] s is shorter than one {bin_size} s bin")
        return cls(float(t_start), float(bin_size), n)

    @property
    def t_stop(self) -> float:
        """Right edge of the last bin (s)."""
        return self.t_start + self.n_bins * self.bin_size

    def edges(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Bin edges (s) of bins ``lo..hi`` (``hi - lo + 1`` values)."""
        hi = self.n_bins if hi is None else hi
        return self.t_start + np.arange(lo, hi + 1, dtype=np.float64) * self.bin_size

    def centers(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Bin centres (s) of bins ``lo..hi-1``."""
        hi = self.n_bins if hi is None else hi
        return self.t_start + (np.arange(lo, hi, dtype=np.float64) + 0.5) * self.bin_size


def check_spike_times(times: np.ndarray, unit: str) -> np.ndarray:
    """Validate one unit's spike times: finite and sorted ascending.

    Raises
    ------
    DataError
        NaN/inf spike times, or times not sorted (the message names the unit).
    """
    times = np.asarray(times, dtype=np.float64).ravel()
    if times.size and not np.all(np.isfinite(times)):
        bad = int(np.count_nonzero(~np.isfinite(times)))
        raise DataError(f"unit {unit} has {bad} NaN or infinite spike times")
    if times.size > 1 and np.any(np.diff(times) < 0):
        raise DataError(f"unit {unit} has spike times that are not sorted ascending",
                        hint="spike times of each unit must be in increasing order")
    return times


def sort_spike_times(times: np.ndarray, unit: str) -> tuple[np.ndarray, int]:
    """One unit's spike times, finite and sorted ascending (repaired when out of order).

    Real files assemble spikes trial by trial, so a unit's times may run
    backwards; binned counts do not depend on spike order, so they are sorted
    (stably) rather than refused.

    Returns
    -------
    times : (S,) float64
        Sorted spike times.
    backward : int
        Number of backward steps (``t[i+1] < t[i]``) in the input; 0 when it was sorted.

    Raises
    ------
    DataError
        NaN/inf spike times (the message names the unit).
    """
    times = np.asarray(times, dtype=np.float64).ravel()
    if times.size and not np.all(np.isfinite(times)):
        bad = int(np.count_nonzero(~np.isfinite(times)))
        raise DataError(f"unit {unit} has {bad} NaN or infinite spike times")
    backward = int(np.count_nonzero(np.diff(times) < 0)) if times.size > 1 else 0
    if backward:
        times = np.sort(times, kind="stable")
    return times, backward


def bin_spikes(times: np.ndarray, grid: Grid) -> np.ndarray:
    """Spike counts of one unit on ``grid``.

    Parameters
    ----------
    times : (S,) float64
        Sorted spike times (s).
    grid : Grid

    Returns
    -------
    (T,) int64
        Count of spikes with ``edges[k] <= t < edges[k+1]``; spikes outside the
        grid are not counted.
    """
    edges = grid.edges()
    k = np.searchsorted(edges, times, side="right") - 1
    k = k[(k >= 0) & (k < grid.n_bins)]
    return np.bincount(k, minlength=grid.n_bins)


def n_inside(times: np.ndarray, grid: Grid) -> int:
    """Number of spikes inside the binned range ``[t_start, t_stop)``."""
    times = np.asarray(times)
    return int(np.count_nonzero((times >= grid.t_start) & (times < grid.edges()[-1])))


def epochs_mask(grid: Grid, epochs: np.ndarray | None) -> np.ndarray:
    """Bins whose centre lies inside any of the ``(E, 2)`` [start, stop) epochs (s).

    ``None`` or an empty array means the whole grid is inside the recording.
    """
    valid = np.ones(grid.n_bins, dtype=bool)
    if epochs is None or len(epochs) == 0:
        return valid
    epochs = np.asarray(epochs, dtype=np.float64).reshape(-1, 2)
    centres = grid.centers()
    inside = np.zeros(grid.n_bins, dtype=bool)
    for start, stop in epochs:
        lo = np.searchsorted(centres, start, side="left")
        hi = np.searchsorted(centres, stop, side="left")
        inside[lo:hi] = True
    return inside


class RegularTimestamps:
    """Lazy timestamps ``start + i / rate`` for series stored with a sampling rate.

    Behaves like a read-only 1-d array (``len``, slicing) without materialising it.
    """

    def __init__(self, start: float, rate: float, n: int):
        if not np.isfinite(rate) or rate <= 0:
            raise DataError(f"sampling rate must be positive, got {rate}")
        self.start, self.rate, self.n = float(start), float(rate), int(n)
        self.shape = (self.n,)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, item) -> np.ndarray:
        idx = np.arange(self.n)[item]
        return self.start + idx / self.rate


@dataclass(frozen=True)
class TimestampRepair:
    """What :func:`repair_series` changed in a behaviour series."""

    dropped_nan: int = 0  #: samples dropped because their timestamp was NaN or infinite
    backward: int = 0  #: backward steps (``t[i+1] < t[i]``) among the finite timestamps
    duplicates: int = 0  #: samples merged into an earlier sample with the same timestamp

    @property
    def changed(self) -> bool:
        return bool(self.dropped_nan or self.backward or self.duplicates)


def repair_series(timestamps: np.ndarray, data: np.ndarray, *, circular: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, TimestampRepair]:
    """Make a behaviour series' timestamps finite and strictly increasing.

    Samples with NaN/infinite timestamps are dropped; the rest are sorted by
    time (stable, so samples keep their order within equal times) and samples
    sharing a timestamp are averaged into one (on the circle for ``circular``
    series). NaN data values are kept as NaN (an average with a NaN is NaN).

    Parameters
    ----------
    timestamps : (Tb,) float
    data : (Tb,) or (Tb, D) float
    circular : bool
        Values are angles in radians.

    Returns
    -------
    timestamps : (Tb',) float64, strictly increasing
    data : (Tb', ...) float64
    repair : TimestampRepair
    """
    t = np.asarray(timestamps, dtype=np.float64).ravel()
    x = np.asarray(data, dtype=np.float64)
    finite = np.isfinite(t)
    dropped = int(t.size - np.count_nonzero(finite))
    if dropped:
        t, x = t[finite], x[finite]
    backward = int(np.count_nonzero(np.diff(t) < 0)) if t.size > 1 else 0
    if backward:
        order = np.argsort(t, kind="stable")
        t, x = t[order], x[order]
    duplicates = int(np.count_nonzero(np.diff(t) == 0)) if t.size > 1 else 0
    if duplicates:
        t_out, first, counts = np.unique(t, return_index=True, return_counts=True)
        flat = x.reshape(x.shape[0], -1)
        if circular:
            s = np.add.reduceat(np.sin(flat), first, axis=0)
            c = np.add.reduceat(np.cos(flat), first, axis=0)
            merged = np.arctan2(s, c)
        else:
            merged = np.add.reduceat(flat, first, axis=0) / counts[:, None]
        t, x = t_out, merged.reshape((t_out.size,) + x.shape[1:])
    return t, x, TimestampRepair(dropped, backward, duplicates)


def _as_2d(block: np.ndarray) -> np.ndarray:
    block = np.asarray(block, dtype=np.float64)
    return block[:, None] if block.ndim == 1 else block.reshape(block.shape[0], -1)


def resample_to_grid(
    timestamps: Any,
    data: Any,
    grid: Grid,
    *,
    circular: bool = False,
    name: str = "behavior",
    max_gap: float | None = None,
    block: int = SAMPLE_BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate a behaviour series at the grid's bin centres, block by block.

    Linear interpolation between the two samples around each centre; circular
    variables (angles in radians) are interpolated on the circle (through their
    sine and cosine) and returned in ``(-pi, pi]``.

    Parameters
    ----------
    timestamps : (Tb,) array-like of float
        Sample times (s), strictly increasing. Any sliceable (numpy, h5py, zarr).
    data : (Tb,) or (Tb, D) array-like
        Sample values.
    grid : Grid
    circular : bool
        Treat values as angles in radians.
    name : str
        Used in error messages.
    max_gap : float, optional
        Bin centres between two samples further apart than this (s) get NaN.
        Default: ``max(10 * median sample interval, 2 * bin_size)``.

    Returns
    -------
    values : (T, D) float64
        NaN where the series does not cover the bin centre (outside its range,
        inside a gap, or next to a NaN sample).
    covered : (T,) bool
        Bins with finite values in every column.

    Raises
    ------
    DataError
        NaN or non-increasing timestamps, or a data/timestamps length mismatch.
    """
    n = len(timestamps)
    if data.shape[0] != n:
        raise DataError(f"behaviour '{name}' has {data.shape[0]} samples but {n} timestamps")
    d = int(np.prod(data.shape[1:])) if len(data.shape) > 1 else 1
    out = np.full((grid.n_bins, d), np.nan)
    if n < 2:
        return out, np.zeros(grid.n_bins, dtype=bool)
    if max_gap is None:
        head = np.asarray(timestamps[: min(n, 10001)], dtype=np.float64)
        if not np.all(np.isfinite(head)):
            raise DataError(f"behaviour '{name}' has NaN or infinite timestamps")
        dt = np.diff(head)
        med = float(np.median(dt)) if dt.size else 0.0
        max_gap = max(10.0 * med, 2.0 * grid.bin_size)
    centres_all = grid.centers()
    prev_t = -np.inf
    start = 0
    while start < n - 1:
        stop = min(n, start + block + 1)  # one sample of overlap with the next block
        t = np.asarray(timestamps[start:stop], dtype=np.float64)
        if not np.all(np.isfinite(t)):
            raise DataError(f"behaviour '{name}' has NaN or infinite timestamps")
        if t[0] < prev_t or np.any(np.diff(t) <= 0):
            raise DataError(f"behaviour '{name}' has timestamps that are not strictly increasing",
                            hint="sort the series by time and drop duplicate samples")
        prev_t = t[-1]
        x = _as_2d(data[start:stop])
        lo = np.searchsorted(centres_all, t[0], side="left")
        hi = np.searchsorted(centres_all, t[-1], side="right")
        if hi > lo:
            c = centres_all[lo:hi]
            j = np.clip(np.searchsorted(t, c, side="right") - 1, 0, len(t) - 2)
            t0, t1 = t[j], t[j + 1]
            w = ((c - t0) / (t1 - t0))[:, None]
            x0, x1 = x[j], x[j + 1]
            if circular:
                s = (1 - w) * np.sin(x0) + w * np.sin(x1)
                co = (1 - w) * np.cos(x0) + w * np.cos(x1)
                vals = np.arctan2(s, co)
            else:
                vals = (1 - w) * x0 + w * x1
            gap = (t1 - t0) > max_gap
            vals[gap] = np.nan
            out[lo:hi] = vals
        start = stop - 1
    covered = np.all(np.isfinite(out), axis=1)
    return out, covered
