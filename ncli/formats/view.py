"""The session view: the one reader of a session that every command and method uses.

:class:`SessionView` wraps ``sessions/<sid>`` of an opened
:class:`~ncli.formats.store.Store` (with its parents) and hands out what models
need as plain arrays: activity with its preprocessing (square root, Gaussian
smoothing, latents instead of counts), the usable-bin mask, spike times, a
behaviour target, counts re-binned from the spikes, per-bin labels from trial
or interval tables, stimulation events, and windows over time read from the
store on demand (bounded memory, DESIGN §4).

It replaces the five loaders that commands used to carry
(``_common.load_activity``, ``decode._load``, ``embed.session_features``,
``embed.session_unit_counts``, ``_decode_neural.spike_session``); their error
messages are kept word for word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ncli.core.errors import DataError, UsageError
from ncli.formats.store import Store


@dataclass
class Target:
    """A behaviour at the bin centres, with the columns chosen.

    Attributes
    ----------
    Y : (T, D) float64
        Values (NaN where unknown).
    columns : list of str
        Column names.
    circular : bool
        Angles in radians.
    unit : str
        Physical unit ('' when unknown).
    """

    Y: np.ndarray
    columns: list
    circular: bool
    unit: str


@dataclass
class Spikes:
    """The spike trains of a session (DESIGN §2 layout).

    Attributes
    ----------
    ids : list of str
        Unit ids, (N,).
    times : (S,) float64
        Spike times (s), each unit's sorted, units concatenated.
    index : (N + 1,) int64
        Unit ``u`` is ``times[index[u]:index[u + 1]]``.
    """

    ids: list
    times: np.ndarray
    index: np.ndarray


class SessionView:
    """Read one session of a store: activity, spikes, targets, tables, events and windows.

    Parameters
    ----------
    store : Store
        An opened store (reads resolve through its parents).
    session : str
        The session id.

    Raises
    ------
    DataError
        From the readers, when the session lacks what is asked for.
    """

    def __init__(self, store: Store, session: str):
        self.store = store
        self.session = session
        self.base = f"sessions/{session}"

    # ------------------------------------------------------------------ grid

    def has(self, path: str) -> bool:
        """True when ``sessions/<sid>/<path>`` exists in the store or a parent."""
        return self.store.exists(f"{self.base}/{path}")

    @property
    def grid_attrs(self) -> dict:
        """Attributes of ``binned/`` (``bin_size_s``, ``t_start_s``, ``kind``); {} without a grid."""
        return self.store.attrs(f"{self.base}/binned") if self.has("binned") else {}

    @property
    def bin_size(self) -> float:
        """Bin width (s)."""
        return float(self.grid_attrs["bin_size_s"])

    @property
    def t_start(self) -> float:
        """Start of the first bin (s)."""
        return float(self.grid_attrs["t_start_s"])

    @property
    def calcium(self) -> bool:
        """True when ``binned/counts`` holds dF/F (suite2p) rather than spike counts."""
        return self.grid_attrs.get("kind", "counts") == "calcium"

    @property
    def n_bins(self) -> int:
        """Number of bins of the grid (from the counts, else ``attrs.n_bins``)."""
        if self.has("binned/counts"):
            return int(self.store.array(f"{self.base}/binned/counts").shape[0])
        return int(self.grid_attrs.get("n_bins", 0))

    @property
    def n_units(self) -> int:
        """Number of units (0 without a units table)."""
        return int(self.store.array(f"{self.base}/units/id").shape[0]) if self.has("units/id") else 0

    @property
    def duration(self) -> float:
        """Length of the binned grid (s); 0 without counts."""
        return self.n_bins * self.bin_size if self.has("binned/counts") else 0.0

    def valid(self, n_bins: int | None = None) -> np.ndarray:
        """``binned/valid`` (T,) bool, all True when the store has none.

        Parameters
        ----------
        n_bins : int, optional
            Length to use when there is no mask (default :attr:`n_bins`).
        """
        if self.has("binned/valid"):
            return self.store.read(f"{self.base}/binned/valid").astype(bool)
        return np.ones(self.n_bins if n_bins is None else n_bins, dtype=bool)

    # ------------------------------------------------------------------ activity

    def require_counts(self, hint: bool = True) -> None:
        """Raise unless the session has binned counts.

        Raises
        ------
        DataError
            ``session '<sid>' has no binned counts``.
        """
        if not self.has("binned/counts"):
            raise DataError(f"session '{self.session}' has no binned counts", self.store.location,
                            hint="convert the recording with a --bin-size first" if hint else None)

    def counts(self, dtype=np.float64) -> np.ndarray:
        """``binned/counts`` as (T, N) ``dtype`` (dF/F for calcium sessions).

        Raises
        ------
        DataError
            No binned counts.
        """
        self.require_counts()
        return np.asarray(self.store.array(f"{self.base}/binned/counts")[...], dtype=dtype)

    def latents(self, name: str) -> np.ndarray:
        """``latents/NAME`` as (T, K) float64 (a 1-d array becomes one column).

        Raises
        ------
        UsageError
            No such latents in this session; the hint lists those present.
        """
        path = f"{self.base}/latents/{name}"
        if not self.store.is_array(path):
            names = ", ".join(self.store.children(f"{self.base}/latents")) or "(none)"
            raise UsageError(f"unknown latents '{name}'", f"session {self.session}", hint=f"latents here: {names}")
        X = np.asarray(self.store.array(path)[...], dtype=np.float64)
        return X[:, None] if X.ndim == 1 else X

    def activity(self, latents: str | None = None, *, sqrt: bool = True,
                 smooth_s: float = 0.0) -> tuple[np.ndarray, np.ndarray, str]:
        """Activity of the session and its usable bins.

        ``latents/NAME`` when ``latents`` is given, else the binned counts,
        square-rooted when ``sqrt`` (calcium dF/F never is), then smoothed with
        a Gaussian kernel of SD ``smooth_s`` seconds over valid bins
        (:func:`ncli.core.features.smooth`).

        Returns
        -------
        X : (T, N) float64
        usable : (T,) bool
            Valid bins without NaN.
        source : str
            What ``X`` is, for provenance (``"binned/counts (sqrt)"``).

        Raises
        ------
        UsageError
            Unknown latents, or a smoothing kernel longer than a quarter of the session.
        DataError
            No binned counts, or a valid mask of another length.
        """
        from ncli.core.features import smooth as smooth_counts
        from ncli.core.features import sqrt_counts

        if latents is not None:
            X, source = self.latents(latents), f"latents/{latents}"
        else:
            X = self.counts()
            if sqrt and not self.calcium:
                X, source = sqrt_counts(X), "binned/counts (sqrt)"
            else:
                source = "binned/counts" + (" (dF/F)" if self.calcium else "")
        if smooth_s > 0:
            if smooth_s > 0.25 * X.shape[0] * self.bin_size:
                raise UsageError(f"--smooth {smooth_s} s is longer than a quarter of session {self.session} "
                                 f"({X.shape[0] * self.bin_size:.6g} s)", "--smooth",
                                 hint="the kernel SD is in seconds, e.g. --smooth 0.05")
            X = smooth_counts(X, smooth_s, self.bin_size, self.valid(X.shape[0]))
        usable = np.all(np.isfinite(X), axis=1)
        if self.has("binned/valid"):
            valid = self.valid()
            if valid.shape[0] != X.shape[0]:
                raise DataError(f"activity has {X.shape[0]} bins but binned/valid has {valid.shape[0]}",
                                f"session {self.session}")
            usable &= valid
        return X, usable, source

    # ------------------------------------------------------------------ spikes

    def spikes(self) -> Spikes:
        """Unit ids, spike times and the spike index of the session."""
        ids = [str(u) for u in self.store.read(f"{self.base}/units/id").tolist()]
        times = np.asarray(self.store.read(f"{self.base}/units/spike_times"), dtype=np.float64)
        index = np.asarray(self.store.read(f"{self.base}/units/spike_index"), dtype=np.int64)
        return Spikes(ids, times, index)

    def has_spikes(self) -> bool:
        """True when the session has at least one spike time."""
        return self.has("units/spike_times") and self.store.array(f"{self.base}/units/spike_times").shape[0] > 0

    def unit_spikes(self, u: int) -> np.ndarray:
        """Spike times (s) of unit ``u``."""
        return self.store.unit_spikes(self.session, u)

    def unit_counts(self, bin_size: float) -> tuple[np.ndarray, str]:
        """Counts ``(T, N)`` float32 of the session at ``bin_size`` (s).

        From ``units/spike_times`` when the session has spikes (binned over the
        session's grid, or the spike range); otherwise ``binned/counts`` summed
        over an integer number of bins.

        Returns
        -------
        counts : (T, N) float32
        source : str
            ``"units/spike_times"`` or ``"binned/counts"``.

        Raises
        ------
        DataError
            No spikes and no counts, or a count grid that cannot be rebinned to ``bin_size``.
        """
        from ncli.core.binning import Grid, bin_spikes

        battrs = self.grid_attrs
        if self.has_spikes():
            spikes = [self.unit_spikes(u) for u in range(self.n_units)]
            if "bin_size_s" in battrs and self.has("binned/counts"):
                t0 = float(battrs["t_start_s"])
                t1 = t0 + self.store.array(f"{self.base}/binned/counts").shape[0] * float(battrs["bin_size_s"])
            else:
                allt = np.concatenate([s for s in spikes if s.size])
                t0, t1 = float(allt.min()), float(allt.max())
            grid = Grid(t0, bin_size, int(np.floor((t1 - t0) / bin_size + 1e-9)))
            return np.stack([bin_spikes(s, grid) for s in spikes], 1).astype(np.float32), "units/spike_times"
        if not self.has("binned/counts"):
            raise DataError(f"session '{self.session}' has neither spike times nor binned counts",
                            self.store.location)
        counts = np.asarray(self.store.array(f"{self.base}/binned/counts")[...], dtype=np.float32)
        ratio = bin_size / float(battrs["bin_size_s"])
        k = int(round(ratio))
        if k < 1 or abs(ratio - k) > 1e-6:
            raise DataError(f"session '{self.session}' is binned at {battrs['bin_size_s']} s, which does not divide "
                            f"the model's {bin_size} s bins", self.store.location, hint="convert with --bin-size 0.02")
        T = counts.shape[0] // k
        return counts[:T * k].reshape(T, k, -1).sum(1), "binned/counts"

    # ------------------------------------------------------------------ behaviour

    def behaviors(self) -> list[str]:
        """Names under ``binned/behavior``."""
        return self.store.children(f"{self.base}/binned/behavior")

    def target(self, name: str, columns: list[str] | None = None) -> Target:
        """The binned behaviour ``name`` with the chosen ``columns`` (indices or names; None: all).

        Raises
        ------
        UsageError
            A column out of range, unknown, or chosen twice.
        """
        path = f"{self.base}/binned/behavior/{name}"
        attrs = self.store.attrs(path)
        Y = np.asarray(self.store.array(path)[...], dtype=np.float64)
        if Y.ndim == 1:
            Y = Y[:, None]
        names = list(attrs.get("columns") or [str(i) for i in range(Y.shape[1])])
        if len(names) != Y.shape[1]:
            names = [str(i) for i in range(Y.shape[1])]
        pick = select_columns(columns, names, name)
        return Target(Y[:, pick], [names[i] for i in pick], bool(attrs.get("circular", False)),
                      str(attrs.get("unit", "")))

    # ------------------------------------------------------------------ tables and events

    def table(self, path: str) -> dict[str, np.ndarray]:
        """Every column of a table group (``trials`` or ``intervals/NAME``) as arrays; {} when absent."""
        full = f"{self.base}/{path}"
        if not self.store.exists(full):
            return {}
        return {c: self.store.read(f"{full}/{c}") for c in self.store.children(full)
                if self.store.is_array(f"{full}/{c}")}

    def stim(self) -> dict[str, np.ndarray]:
        """Stimulation events ``stim/`` (``time`` (E,) and the per-event columns); {} when absent."""
        return self.table("stim")

    # ------------------------------------------------------------------ windows

    def windows(self, length: int, *, step: int | None = None, latents: str | None = None,
                sqrt: bool = False) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Windows over time, each read from the store when it is needed (bounded memory).

        Parameters
        ----------
        length : int
            Window length (bins).
        step : int, optional
            Hop between window starts (bins; default ``length``).
        latents : str, optional
            Read ``latents/NAME`` instead of the counts.
        sqrt : bool
            Square-root the counts (never dF/F or latents).

        Yields
        ------
        start : int
            First bin of the window.
        X : (length, N) float64
        usable : (length,) bool
            Valid and finite bins.

        Raises
        ------
        UsageError
            ``length`` or ``step`` < 1.
        """
        from ncli.core.features import sqrt_counts

        if length < 1 or (step is not None and step < 1):
            raise UsageError("window length and step must be at least 1 bin", "windows")
        step = step or length
        path = f"{self.base}/latents/{latents}" if latents else f"{self.base}/binned/counts"
        if not latents:
            self.require_counts()
        arr = self.store.array(path)
        has_valid = self.has("binned/valid")
        mask = self.store.array(f"{self.base}/binned/valid") if has_valid else None
        for start in range(0, int(arr.shape[0]) - length + 1, step):
            X = np.asarray(arr[start:start + length], dtype=np.float64)
            X = X[:, None] if X.ndim == 1 else X
            if sqrt and not latents and not self.calcium:
                X = sqrt_counts(X)
            usable = np.all(np.isfinite(X), axis=1)
            if mask is not None:
                usable &= np.asarray(mask[start:start + length], dtype=bool)
            yield start, X, usable

    def blocks(self, n_bins: int, *, lags: int = 0, latents: str | None = None, sqrt: bool = True,
               smooth_s: float = 0.0, transform=None, dtype=np.float64, start: int = 0,
               stop: int | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Consecutive time blocks of the (lagged) activity, read from the store block by block.

        Each block is what :meth:`activity` (square root, Gaussian smoothing) followed by
        :func:`ncli.core.features.lag_features` would give for its rows of the whole session:
        the ``lags`` bins of history before a block and the smoothing kernel's reach
        (4 SD) on both sides are read with it, so values do not depend on the block size.

        Parameters
        ----------
        n_bins : int
            Bins per block (>= 1; the last block may be shorter).
        lags : int
            Past bins per row (>= 0): row ``t`` is ``[x_t, x_{t-1}, ..., x_{t-lags}]``.
        latents : str, optional
            Read ``latents/NAME`` instead of the counts.
        sqrt : bool
            Square-root the counts (never dF/F or latents).
        smooth_s : float
            Gaussian kernel SD (s), 0 = none (applied before lagging, over valid bins).
        transform : callable, optional
            ``transform(F) -> F'`` applied row-wise to the (b, N) activity before lagging.
        dtype : numpy dtype
            ``float64`` or ``float32`` features.
        start, stop : int
            Bin range covered (default the whole session).

        Yields
        ------
        start : int
            First bin of the block.
        X : (b, F * (lags + 1)) ``dtype``
            Features of bins ``start .. start + b - 1`` (zeros where a lagged bin is invalid).
        usable : (b,) bool
            Rows whose whole lag window is inside the session, valid and finite.

        Raises
        ------
        UsageError
            ``n_bins`` < 1, negative ``lags``, unknown latents.
        DataError
            No binned counts.
        """
        from ncli.core.features import lag_features, sqrt_counts
        from ncli.core.features import smooth as smooth_counts

        if n_bins < 1:
            raise UsageError("block length must be at least 1 bin", "blocks")
        if lags < 0:
            raise UsageError(f"--lags must be >= 0, got {lags}", "--lags")
        if latents:
            path = f"{self.base}/latents/{latents}"
            if not self.store.is_array(path):
                self.latents(latents)  # raises the unknown-latents error
        else:
            self.require_counts()
            path = f"{self.base}/binned/counts"
        arr = self.store.array(path)
        T = int(arr.shape[0])
        stop = T if stop is None else min(int(stop), T)
        mask = self.store.array(f"{self.base}/binned/valid") if self.has("binned/valid") else None
        do_sqrt = sqrt and not latents and not self.calcium
        halo = int(4.0 * smooth_s / self.bin_size + 0.5) if smooth_s > 0 else 0
        for s in range(max(0, int(start)), stop, n_bins):
            e = min(s + n_bins, stop)
            r0, r1 = max(0, s - lags - halo), min(T, e + halo)
            X = np.asarray(arr[r0:r1], dtype=np.float64)
            X = X[:, None] if X.ndim == 1 else X
            v = np.asarray(mask[r0:r1], dtype=bool) if mask is not None else np.ones(r1 - r0, dtype=bool)
            if do_sqrt:
                X = sqrt_counts(X)
            if halo:
                X = smooth_counts(X, smooth_s, self.bin_size, v)
            if transform is not None:
                X = transform(X)
            X, usable = lag_features(X, lags, v)
            lo = s - r0
            if r0 > 0:  # the first rows of the piece lack history; the rows kept have it
                usable[:lo] = False
            yield s, np.asarray(X[lo:lo + e - s], dtype=dtype), usable[lo:lo + e - s]


#: Bytes of float64 feature rows one :meth:`SessionView.blocks` block holds (DESIGN §4 bounded memory);
#: monkeypatch it small in tests to force several blocks.
BLOCK_BYTES = 32 * 2**20


def block_rows(n_columns: int, itemsize: int = 8, budget: int | None = None) -> int:
    """Bins per block so one block of ``n_columns`` columns holds about ``budget`` bytes (default :data:`BLOCK_BYTES`).

    Returns
    -------
    int
        At least 1.
    """
    budget = BLOCK_BYTES if budget is None else budget
    return max(1, int(budget) // max(1, int(n_columns) * int(itemsize)))


def select_columns(spec: list[str] | None, columns: list[str], target: str) -> list[int]:
    """Indices of the chosen columns: ``spec`` of indices (negative allowed) or names; None: all.

    Raises
    ------
    UsageError
        A column out of range, unknown, or chosen twice (worded for ``--target``).
    """
    if spec is None:
        return list(range(len(columns)))
    picked = []
    for c in spec:
        if c.lstrip("-").isdigit():
            i = int(c)
            if not -len(columns) <= i < len(columns):
                raise UsageError(f"column {i} out of range for '{target}' ({len(columns)} columns)", "--target")
            picked.append(i % len(columns))
        elif c in columns:
            picked.append(columns.index(c))
        else:
            raise UsageError(f"unknown column '{c}' of '{target}'", "--target",
                             hint=f"columns: {', '.join(columns)}")
    if len(set(picked)) != len(picked):
        raise UsageError(f"the same column is chosen twice in --target '{target}[{','.join(spec)}]'", "--target")
    return picked


def views(store: Store, sessions: list[str] | None = None) -> dict[str, SessionView]:
    """``{sid: SessionView}`` for ``sessions`` (default every session of the store)."""
    return {sid: SessionView(store, sid) for sid in (sessions if sessions is not None else store.sessions())}
