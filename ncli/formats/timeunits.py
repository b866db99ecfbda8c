"""Times that are not in seconds: units, sample indices and the checks that catch them.

The store holds every time in seconds (docs/store.md). Sources do not always:
spike times in milliseconds next to behaviour in seconds, everything in
milliseconds, integer sample indices (kilosort, arrays saved from MATLAB).
``convert --time-unit`` / ``--spike-time-unit`` / ``--sampling-rate`` state the
unit; without them, the checks here refuse data whose times *look* like
another unit, with one line saying what it looks like and which option fixes
it. The checks only compare magnitudes, so they never fire on data in seconds
of any plausible recording.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ncli.core.binning import RegularTimestamps
from ncli.core.errors import DataError, UsageError

log = logging.getLogger("ncli")

#: Seconds per unit of ``--time-unit`` / ``--spike-time-unit``.
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
#: Largest integer-valued spike time (in the file's numbers) still read as whole seconds without being told.
SAMPLE_INDEX_MIN = 100_000
#: A recording longer than this (s) whose units fire below ``SLOW_RATE_HZ`` on average looks like
#: milliseconds read as seconds (a 4-minute recording in ms reads as 67 hours at 1/1000 of its rates).
LONG_SPAN_S = 3_600.0
SLOW_RATE_HZ = 0.05
#: Spans longer than this (s) make the "too many bins" hint name the time-unit options.
RECORDING_SPAN_S = 2 * 86_400.0
#: Ratio bands (spike end / other end) that read as ms (x1000) or µs (x1e6) against seconds.
_RATIO_BANDS = (("ms", 1e3), ("us", 1e6))


@dataclass(frozen=True)
class TimeScale:
    """How to turn a source's times into seconds.

    Attributes
    ----------
    spikes : float
        Seconds per spike-time number (1 for seconds, 1e-3 for ms, ``1/rate`` for sample indices).
    other : float
        Seconds per number of every other time (behaviour timestamps, trial and interval
        times, bin start times, ``--t-start``).
    stated : bool
        The user named the unit (``--time-unit``, ``--spike-time-unit`` or ``--sampling-rate``):
        the look-alike checks are skipped.
    spikes_from : str
        What the spike factor comes from, for history ('s', 'ms', 'us', 'samples at 30000 Hz').
    rate : float or None
        Samples per second when spike times are sample indices (then ``spikes == 1 / rate``).
    """

    spikes: float = 1.0
    other: float = 1.0
    stated: bool = False
    spikes_from: str = "s"
    rate: float | None = None

    def spike_seconds(self, times: np.ndarray) -> np.ndarray:
        """(S,) float64 spike times in seconds (sample indices divided by the rate, as kilosort's users do)."""
        if self.rate is not None:
            return np.asarray(times, dtype=np.float64) / self.rate
        return np.asarray(times, dtype=np.float64) * self.spikes

    @property
    def identity(self) -> bool:
        """True when nothing is rescaled."""
        return self.spikes == 1.0 and self.other == 1.0


def time_scale(time_unit: str | None, spike_time_unit: str | None = None,
               sampling_rate: float | None = None) -> TimeScale:
    """The :class:`TimeScale` of ``--time-unit``, ``--spike-time-unit`` and ``--sampling-rate``.

    Parameters
    ----------
    time_unit : {'s', 'ms', 'us'} or None
        Unit of every time of the input (None: seconds, unstated).
    spike_time_unit : {'s', 'ms', 'us'} or None
        Unit of the spike times only (wins over ``time_unit`` for spikes).
    sampling_rate : float or None
        Spike times are integer sample indices at this rate (Hz).

    Raises
    ------
    UsageError
        An unknown unit, or a sampling rate together with a spike time unit.
    """
    for flag, unit in (("--time-unit", time_unit), ("--spike-time-unit", spike_time_unit)):
        if unit is not None and unit not in TIME_UNITS:
            raise UsageError(f"{flag} must be one of {', '.join(TIME_UNITS)}, got '{unit}'", flag)
    if sampling_rate is not None and spike_time_unit is not None:
        raise UsageError("give --sampling-rate (spike times are sample indices) or --spike-time-unit, not both",
                         "--sampling-rate")
    other = TIME_UNITS[time_unit or "s"]
    if sampling_rate is not None:
        return TimeScale(1.0 / float(sampling_rate), other, True, f"samples at {sampling_rate:g} Hz",
                         float(sampling_rate))
    unit = spike_time_unit or time_unit or "s"
    stated = time_unit is not None or spike_time_unit is not None
    return TimeScale(TIME_UNITS[unit], other, stated, unit)


def scale_times(ts: Any, factor: float) -> Any:
    """``ts`` in seconds: a lazy view of an on-disk timestamp array times ``factor``.

    ``RegularTimestamps`` stay regular (start and rate rescaled); numpy arrays are
    multiplied (a new array: the source is never modified).
    """
    if factor == 1.0:
        return ts
    if isinstance(ts, RegularTimestamps):
        return RegularTimestamps(ts.start * factor, ts.rate / factor, len(ts))
    if isinstance(ts, np.ndarray):
        return ts.astype(np.float64) * factor
    return _ScaledTimes(ts, factor)


class _ScaledTimes:
    """Read-only view ``data * factor`` of an on-disk dataset, sliced lazily."""

    def __init__(self, data: Any, factor: float):
        self.data, self.factor = data, float(factor)
        self.shape = tuple(data.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, item) -> np.ndarray:
        return np.asarray(self.data[item], dtype=np.float64) * self.factor


def is_time_column(name: str) -> bool:
    """True for a table column that holds times: ``start_time``, ``stop_time``, ``*_time``, ``*_times``."""
    n = name.lower()
    return n in ("start_time", "stop_time", "timestamps") or n.endswith(("_time", "_times"))


def scale_table(columns: dict[str, np.ndarray] | None, factor: float) -> dict[str, np.ndarray] | None:
    """A copy of a trials/interval table with its time columns (:func:`is_time_column`) times ``factor``."""
    if columns is None or factor == 1.0:
        return columns
    out = dict(columns)
    for k, v in columns.items():
        v = np.asarray(v)
        if is_time_column(k) and v.dtype.kind in "iuf":
            out[k] = v.astype(np.float64) * factor
    return out


def check_not_samples(times: np.ndarray, name: str, scale: TimeScale) -> None:
    """Refuse spike times that look like integer sample indices when no unit was stated.

    Parameters
    ----------
    times : (S,) array
        Spike times as stored in the file (any dtype).
    name : str
        The variable or file they come from, for the message.
    scale : TimeScale
        Skipped when ``scale.stated``.

    Raises
    ------
    DataError
        Integer dtype, or integer values all of them with a largest value of at
        least ``SAMPLE_INDEX_MIN``: the line names the dtype and range and the options.
    """
    if scale.stated or times.size == 0:
        return
    integer_dtype = times.dtype.kind in "iu"
    if not integer_dtype:
        finite = times[np.isfinite(times)]
        if finite.size < 2 or float(np.abs(finite).max()) < SAMPLE_INDEX_MIN:
            return
        if not np.all(finite == np.round(finite)):
            return
    hi = float(np.max(times[np.isfinite(times)])) if times.size else 0.0
    what = f"integers ({times.dtype})" if integer_dtype else "whole numbers"
    raise DataError(f"spike times in '{name}' are {what} up to {hi:.6g}: they look like sample indices, "
                    "not seconds",
                    hint="pass --sampling-rate HZ (sample indices -> s), or --time-unit s|ms|us to say "
                         "what unit they are in")


def check_spike_span(spikes: tuple[float, float] | None, other: tuple[float, float] | None, other_name: str,
                     scale: TimeScale) -> None:
    """Refuse spike times whose range is about 10^3 or 10^6 times that of the behaviour/trials (or 1/that).

    Parameters
    ----------
    spikes : (first, last) or None
        Spike time range, in the units the file holds.
    other : (first, last) or None
        Range of the behaviour and trial times of the same file.
    other_name : str
        What ``other`` covers ('trials and behaviour'), for the message.
    scale : TimeScale
        Skipped when ``scale.stated``.

    Raises
    ------
    DataError
        The two ranges' ends and lengths both differ by a factor near 1,000 or
        1,000,000: the line says which looks like milliseconds (or µs) and the option.
    """
    if scale.stated or spikes is None or other is None:
        return
    s_end, o_end = abs(spikes[1]), abs(other[1])
    s_len, o_len = spikes[1] - spikes[0], other[1] - other[0]
    if min(s_end, o_end, s_len, o_len) <= 0:
        return
    for unit, factor in _RATIO_BANDS:
        lo, hi = factor / 5.0, factor * 5.0
        if lo <= s_end / o_end <= hi and lo <= s_len / o_len <= hi:
            raise DataError(f"spike times run to {spikes[1]:.6g} but {other_name} end at {other[1]:.6g} "
                            f"(x{s_end / o_end:.3g}): the spike times look like {_NAME[unit]}",
                            hint=f"pass --spike-time-unit {unit} (or --time-unit {unit} if every time of the "
                                 "input is in " + _NAME[unit] + ")")
        if lo <= o_end / s_end <= hi and lo <= o_len / s_len <= hi:
            raise DataError(f"{other_name} run to {other[1]:.6g} but the spike times end at {spikes[1]:.6g} "
                            f"(x{o_end / s_end:.3g}): the {other_name} times look like {_NAME[unit]}",
                            hint=f"pass --time-unit {unit} --spike-time-unit s")


def check_rates(n_spikes: int, n_units: int, span: tuple[float, float] | None, scale: TimeScale) -> None:
    """Refuse a recording longer than an hour whose units fire below 0.05 Hz on average (ms read as s).

    Sorted units of a real recording average well above 0.05 Hz; read 1,000 times too long, a
    population at 5 Hz averages 0.005 Hz. Files shorter than 3.6 s (an hour when read in ms as s)
    cannot be told by this check.

    Raises
    ------
    DataError
        Names the span, the mean rate and ``--time-unit ms``.
    """
    if scale.stated or span is None or n_units == 0:
        return
    length = (span[1] - span[0]) * scale.spikes
    if length <= LONG_SPAN_S:
        return
    rate = n_spikes / n_units / length
    if rate < SLOW_RATE_HZ:
        raise DataError(f"spikes span {length:.6g} s ({length / 3_600:.3g} h) at a mean {rate:.3g} Hz per "
                        "unit: the times look like milliseconds read as seconds",
                        hint="pass --time-unit ms (or --time-unit s to convert them as they are)")


_NAME = {"ms": "milliseconds", "us": "microseconds"}
