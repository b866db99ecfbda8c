"""Import MATLAB trial structs: a struct array of trials, each with a counts matrix and per-bin kinematics.

BCI labs save a session as a struct array with one element per trial
(``trialData(k).binCounts`` bins x channels, ``trialData(k).refPos`` ...,
``trialData(k).success``), or as a scalar struct whose fields are cell arrays
with one cell per trial (or per condition, e.g. Golub et al. 2018's
``beforeLearning.clouds.spikes{k}`` channels x bins). ``--trials VAR`` names
that variable (a dotted path reaches nested structs: ``beforeLearning.clouds``).

What is written (see ``docs/commands/convert.md``, "MATLAB trial structs"):

- the trials laid end to end on one regular grid starting at 0 s, separated by
  ``GAP_BINS`` empty bins (zero counts, ``valid`` false, behaviour NaN), so no
  window of fully valid bins spans two trials;
- ``binned/counts`` (T, N) int32 from the counts field (auto-detected: the 2-D
  integer-valued field whose channel axis has the same length in every trial);
- one behaviour per per-bin field (``behavior/<name>`` at the bin centres of the
  trials and ``binned/behavior/<name>``);
- ``trials/``: ``start_time``, ``stop_time`` (s), ``n_bins`` and every scalar or
  string field (fixed-length vectors such as target positions as ``<field>_<i>``);
- ``units/good`` (N,) bool when a top-level variable names the good channels
  (``goodElectrodes``: 1-based channel numbers or a mask).

Only MATLAB v5/v7 files (what ``scipy.io.loadmat`` reads) are supported; v7.3
(HDF5) trial structs are refused with one line.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ncli.core.binning import Grid
from ncli.core.errors import DataError, UsageError
from ncli.formats.session import BehaviorSeries, UnitsSource, write_session

log = logging.getLogger("ncli")

#: Empty, invalid bins laid between two consecutive trials.
GAP_BINS = 1
#: Longest fixed-length vector field stored as trial columns (``tgtPos`` -> ``tgtPos_0``, ``tgtPos_1``).
MAX_VECTOR_COLUMNS = 16
#: Field names (lower case, ``_`` removed) that hold the bin width, in seconds or (``*ms``) milliseconds.
BIN_WIDTH_NAMES = {"dt": 1.0, "binsize": 1.0, "binwidth": 1.0, "binduration": 1.0, "binsizes": 1.0,
                   "dtms": 1e-3, "binsizems": 1e-3, "binwidthms": 1e-3, "binms": 1e-3}
_GOOD = re.compile(r"^(good|valid|kept|keep|use|used)_?(electrodes?|channels?|chans?|chs|units?|neurons?)$",
                   re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_RESERVED = ("start_time", "stop_time", "n_bins")


# ----------------------------------------------------------------------------- options


@dataclass
class TrialBehaviorSpec:
    """One ``--trial-behavior NAME=FIELD[:COLS]`` option.

    Attributes
    ----------
    name : str
        Behaviour name in the store.
    field : str
        Field of the trial struct.
    columns : list of int or None
        0-based columns to keep (all when None).
    """

    name: str
    field: str
    columns: list[int] | None = None


@dataclass
class TrialsSpec:
    """The trial-struct options (``--trials``, ``--trial-counts``, ``--trial-behavior``, ...).

    Attributes
    ----------
    variables : list of str
        ``--trials`` variables (dotted paths), one session each.
    counts : str or None
        ``--trial-counts`` field; None auto-detects.
    behavior : list of TrialBehaviorSpec
        ``--trial-behavior``; empty keeps every per-bin field found.
    bin_size : float or None
        ``--bin-size`` (s); None takes the file's bin width.
    transpose : {"auto", "yes", "no"}
        Orientation of each trial's counts (``no``: rows are bins).
    circular : list of str
        Behaviour names that are angles in radians.
    """

    variables: list[str] = field(default_factory=list)
    counts: str | None = None
    behavior: list[TrialBehaviorSpec] = field(default_factory=list)
    bin_size: float | None = None
    transpose: str = "auto"
    circular: list[str] = field(default_factory=list)


def parse_trial_behavior(text: str) -> TrialBehaviorSpec:
    """Parse ``NAME=FIELD[:COLS]`` (COLS: comma-separated 0-based column indices).

    Raises
    ------
    UsageError
        Malformed specification.
    """
    hint = "write --trial-behavior NAME=FIELD[:COLS], e.g. --trial-behavior cursor=refPos:0,1"
    if "=" not in text:
        raise UsageError(f"invalid --trial-behavior '{text}'", "--trial-behavior", hint=hint)
    name, rest = (s.strip() for s in text.split("=", 1))
    cols = None
    if ":" in rest:
        rest, col_text = rest.split(":", 1)
        try:
            cols = [int(c) for c in col_text.split(",") if c.strip()]
        except ValueError:
            raise UsageError(f"invalid columns '{col_text}' in --trial-behavior '{text}'", "--trial-behavior",
                             hint=hint) from None
        if not cols or min(cols) < 0:
            raise UsageError(f"invalid columns '{col_text}' in --trial-behavior '{text}'", "--trial-behavior",
                             hint=hint)
    rest = rest.strip()
    if not _NAME.match(name) or not rest:
        raise UsageError(f"invalid --trial-behavior '{text}'", "--trial-behavior", hint=hint)
    return TrialBehaviorSpec(name, rest, cols)


# ----------------------------------------------------------------------------- reading


def load_mat(path: Path) -> dict[str, Any]:
    """Every variable of a MATLAB v5/v7 file, structs as attribute objects, singleton dimensions squeezed.

    Raises
    ------
    DataError
        A v7.3 (HDF5) file, or a file scipy cannot read.
    """
    import h5py
    import scipy.io

    if h5py.is_hdf5(str(path)):
        raise DataError("MATLAB v7.3 (HDF5) trial structs are not supported", str(path),
                        hint="re-save it in MATLAB with save(FILE, '-v7'), or save the counts as plain "
                             "variables and use --counts")
    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for a corrupt file
        raise DataError(f"cannot read MAT file: {exc.__class__.__name__}: {str(exc)[:200]}", str(path)) from None
    return {k: v for k, v in mat.items() if not k.startswith("__")}


def _is_struct(x: Any) -> bool:
    return hasattr(x, "_fieldnames")


def _is_struct_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == object and x.size > 0 and all(_is_struct(e) for e in x.flat)


def _columnar_length(s: Any) -> int | None:
    """Trials in a scalar struct of per-trial cells: the common length of its cell fields holding a 2-D matrix."""
    lengths = set()
    for f in s._fieldnames:
        v = getattr(s, f)
        if (isinstance(v, np.ndarray) and v.dtype == object and v.ndim == 1 and v.size
                and any(isinstance(e, np.ndarray) and e.ndim == 2 and e.dtype.kind in "iufb" for e in v)):
            lengths.add(v.size)
    return lengths.pop() if len(lengths) == 1 else None


def _containers(x: Any, prefix: str, depth: int = 0) -> list[str]:
    """Dotted paths of the trial containers (struct arrays, structs of per-trial cells) under ``x``."""
    if depth > 3:
        return []
    if _is_struct_array(x):
        return [prefix]
    if _is_struct(x):
        if _columnar_length(x):
            return [prefix]
        out = []
        for f in x._fieldnames:
            out += _containers(getattr(x, f), f"{prefix}.{f}", depth + 1)
        return out
    return []


def trial_containers(mat: dict[str, Any]) -> list[str]:
    """Dotted paths of every struct array / struct of per-trial cells in a loaded file (for messages)."""
    out: list[str] = []
    for k, v in mat.items():
        out += _containers(v, k)
    return out


def resolve_trials(mat: dict[str, Any], variable: str, where: str, counts_field: str | None = None
                   ) -> tuple[str, list[dict[str, Any]], list[str]]:
    """The trials of ``variable``: (resolved path, one dict field -> value per trial, field names).

    A struct array gives one trial per element. A scalar struct whose fields are
    cell arrays of one common length K (one cell holding a 2-D matrix) gives K
    trials; its 1-D fields of length K give one value per trial and its other
    fields are skipped (debug log). A scalar struct with exactly one such
    container below it is descended into (info log). Any other scalar struct is
    one trial (a 1 x 1 struct array, squeezed by ``loadmat``) only when it holds
    ``counts_field`` or a 2-D integer field named like counts or spikes.

    Raises
    ------
    UsageError
        No such variable or field (the message names those available), or not a
        trial container (the message names the containers found in the file).
    """
    parts = variable.split(".")
    if parts[0] not in mat:
        raise UsageError(f"no variable '{parts[0]}' in the file", where,
                         hint=f"variables: {', '.join(mat) or '(none)'}; trial structs: "
                              f"{', '.join(trial_containers(mat)) or '(none)'}")
    node, path = mat[parts[0]], parts[0]
    for p in parts[1:]:
        if not _is_struct(node) or p not in node._fieldnames:
            avail = ", ".join(node._fieldnames) if _is_struct(node) else "(not a scalar struct)"
            raise UsageError(f"no field '{p}' in '{path}'", where, hint=f"fields of {path}: {avail}")
        node, path = getattr(node, p), f"{path}.{p}"
    if _is_struct(node) and not _columnar_length(node):
        below = _containers(node, path)
        if len(below) == 1 and below[0] != path:
            log.info("--trials %s: using the trials in %s", variable, below[0])
            return resolve_trials(mat, below[0], where, counts_field)
        if (counts_field in node._fieldnames if counts_field else any(
                re.search(r"count|spike", f, re.IGNORECASE) and _is_numeric(v := getattr(node, f))
                and np.ndim(v) == 2 and _integral(np.asarray(v)) for f in node._fieldnames)):
            node = np.array([node], dtype=object)  # a struct array of one trial (squeezed by loadmat)
    if _is_struct_array(node):
        trials = [{f: getattr(s, f) for f in s._fieldnames} for s in node.ravel(order="F")]
        names = list(dict.fromkeys(f for s in node.flat for f in s._fieldnames))
        return path, trials, names
    k = _columnar_length(node) if _is_struct(node) else None
    if k:
        names, trials = [], [{} for _ in range(k)]
        for f in node._fieldnames:
            v = getattr(node, f)
            if isinstance(v, np.ndarray) and v.ndim == 1 and v.size == k:
                names.append(f)
                for i in range(k):
                    trials[i][f] = v[i]
            else:
                log.debug("%s.%s %s is not one value per trial (%d trials); skipped", path, f, np.shape(v), k)
        return path, trials, names
    raise UsageError(f"'{variable}' is not a struct array of trials", where,
                     hint=f"trial structs in the file: {', '.join(trial_containers(mat)) or '(none)'}")


def _is_numeric(x: Any) -> bool:
    return (isinstance(x, np.ndarray) and x.dtype.kind in "iufb") or (
        isinstance(x, (int, float, bool, np.number, np.bool_)) and not isinstance(x, str))


def _integral(a: np.ndarray) -> bool:
    if a.dtype.kind in "iub":
        return True
    return a.dtype.kind == "f" and bool(np.all(np.isfinite(a))) and bool(np.all(a == np.round(a)))


# ----------------------------------------------------------------------------- counts


def _counts_candidates(trials: list[dict], names: list[str]) -> list[str]:
    out = []
    for f in names:
        vals = [np.asarray(t.get(f)) for t in trials if f in t]
        full = [v for v in vals if v.size]
        if not full or any(v.dtype.kind not in "iufb" for v in vals if v.size):
            continue
        if any(v.ndim == 2 for v in full) and all(v.ndim in (1, 2) for v in full) and all(_integral(v) for v in full):
            out.append(f)
    return out


def _choose_counts(trials: list[dict], names: list[str], spec: TrialsSpec, where: str) -> str:
    if spec.counts is not None:
        if spec.counts not in names:
            raise UsageError(f"no field '{spec.counts}' in the trials", where, hint=f"fields: {', '.join(names)}")
        return spec.counts
    cands = _counts_candidates(trials, names)
    if len(cands) > 1:
        named = [c for c in cands if re.search(r"count|spike", c, re.IGNORECASE)]
        cands = named if len(named) == 1 else cands
    if not cands:
        raise DataError("no 2-D integer-valued field (a counts matrix) in the trials", where,
                        hint=f"fields: {', '.join(names)}; name one with --trial-counts FIELD")
    if len(cands) > 1:
        raise UsageError(f"several fields could be the counts: {', '.join(cands)}", where,
                         hint="choose one with --trial-counts FIELD")
    return cands[0]


def orient_counts(values: list[Any], name: str, transpose: str, hint_lengths: list[set[int]] | None = None
                  ) -> tuple[list[np.ndarray], int]:
    """Each trial's counts as ``(n_k, N)`` with bins along the rows, and the bin axis of the stored matrices.

    The channel axis is the one whose length is the same in every trial (bins
    vary). When both are constant (every trial has as many bins), the axis whose
    length matches the per-bin fields of each trial (``hint_lengths``) is time.

    Parameters
    ----------
    values : list of array-like
        The counts field of each trial; empty for a trial without bins; a 1-D
        vector of N values is one bin (MATLAB's 1 x N, squeezed).
    name : str
        Field name, for messages.
    transpose : {"auto", "yes", "no"}
        ``no``: rows are bins; ``yes``: columns are bins.
    hint_lengths : list of set of int, optional
        Per trial, the lengths (and lengths - 1) of the other 1-D/2-D numeric fields.

    Returns
    -------
    counts : list of (n_k, N) int32 (float64 when some value is fractional)
    bin_axis : int
        0 when the stored matrices are bins x channels, 1 when channels x bins.

    Raises
    ------
    DataError
        NaN or negative counts, more than 2 dimensions, a channel count
        that varies across trials, or an orientation that cannot be told.
    """
    arrs = [np.asarray(v) for v in values]
    mats = [a for a in arrs if a.size and a.ndim == 2]
    if not mats:
        raise DataError(f"counts field '{name}' holds no 2-D matrix in any trial")
    for a in arrs:
        if a.size and (a.ndim > 2 or a.dtype.kind not in "iufb"):
            raise DataError(f"counts field '{name}' has a trial of shape {a.shape} ({a.dtype}); "
                            "expected a 2-D bins x channels matrix")
        if a.size and not np.all(np.isfinite(a)):
            raise DataError(f"counts field '{name}' has NaN or infinite values")
        if a.size and a.min() < 0:
            raise DataError(f"counts field '{name}' has negative values")
    rows = {a.shape[0] for a in mats}
    cols = {a.shape[1] for a in mats}
    if transpose == "no":
        bin_axis = 0
    elif transpose == "yes":
        bin_axis = 1
    elif len(cols) == 1 and len(rows) > 1:
        bin_axis = 0
    elif len(rows) == 1 and len(cols) > 1:
        bin_axis = 1
    elif len(rows) == 1 and len(cols) == 1:
        r, c = rows.pop(), cols.pop()
        votes = [0, 0]
        for a, hl in zip(arrs, hint_lengths or []):
            if a.size and a.ndim == 2:
                votes[0] += r in hl
                votes[1] += c in hl
        if r != c and votes[0] != votes[1]:
            bin_axis = 0 if votes[0] > votes[1] else 1
        else:
            raise DataError(f"cannot tell which axis of '{name}' {(r, c)} is time: every trial has that shape",
                            hint="pass --transpose no (rows are bins) or --transpose yes (columns are bins)")
    else:
        raise DataError(f"the channel count of '{name}' varies across trials (shapes {sorted(rows)[:3]} x "
                        f"{sorted(cols)[:3]})", hint="every trial must record the same channels")
    n_ch = {a.shape[1 - bin_axis] for a in mats}
    if len(n_ch) != 1:
        raise DataError(f"the channel count of '{name}' varies across trials ({sorted(n_ch)[:5]})",
                        hint="every trial must record the same channels; check --transpose")
    n = n_ch.pop()
    integral = all(_integral(a) for a in arrs if a.size)
    if not integral:  # e.g. counts with per-channel offsets (a BCI perturbation): kept as float64
        log.info("counts field '%s' is not integer-valued; stored as float64", name)

    def cast(a: np.ndarray) -> np.ndarray:
        return np.round(a).astype(np.int32) if integral else a.astype(np.float64)

    out = []
    for k, a in enumerate(arrs):
        if not a.size:
            out.append(np.zeros((0, n), dtype=np.int32 if integral else np.float64))
        elif a.ndim == 1:
            if a.size != n:
                raise DataError(f"trial {k + 1}: counts field '{name}' has {a.size} values; expected {n} "
                                "channels (one bin)")
            out.append(cast(a)[None, :])
        else:
            out.append(cast(a if bin_axis == 0 else a.T))
    return out, bin_axis


# ----------------------------------------------------------------------------- behaviour and trial columns


def _per_bin(value: Any, n: int, bin_axis: int, width: int | None = None) -> np.ndarray | None:
    """``value`` as (n or n+1, D) float64 when one of its axes has n or n + 1 samples, else None.

    A trial of one bin loses its bin axis in ``loadmat(squeeze_me=True)``: a
    vector of ``width`` values is then one bin of ``width`` columns.
    """
    a = np.asarray(value)
    if not a.size or a.dtype.kind not in "iufb" or a.ndim > 2 or n == 0:
        return None
    if a.ndim == 0:
        return a.astype(np.float64).reshape(1, 1) if n == 1 and width in (None, 1) else None
    if a.ndim == 1:
        if n == 1 and width is not None and width > 1:
            return a.astype(np.float64)[None, :] if a.size == width else None
        if a.size in (n, n + 1):
            return a.astype(np.float64)[:, None]
        return None
    for ax in (bin_axis, 1 - bin_axis):
        if a.shape[ax] in (n, n + 1):
            return (a if ax == 0 else a.T).astype(np.float64)
    return None


def _per_bin_field(trials, f, n_bins, bin_axis) -> tuple[list[np.ndarray | None], int | None]:
    """Per trial (n_k or n_k + 1, D) values (None where missing) and D, or (.., None) when not per-bin.

    D is taken from the trials of two bins or more (unambiguous), then one-bin
    trials are read with it.
    """
    widths = set()
    for t, n in zip(trials, n_bins):
        v = t.get(f)
        if n >= 2 and v is not None and np.asarray(v).size:
            a = _per_bin(v, int(n), bin_axis)
            if a is None:
                return [], None
            widths.add(a.shape[1])
    if len(widths) > 1:
        return [], None
    width = widths.pop() if widths else None
    out: list[np.ndarray | None] = []
    for t, n in zip(trials, n_bins):
        v = t.get(f)
        if n == 0 or v is None or not np.asarray(v).size:
            out.append(None)
            continue
        a = _per_bin(v, int(n), bin_axis, width)
        if a is None or (width is not None and a.shape[1] != width):
            return out, None
        out.append(a)
    if width is None:
        ws = {a.shape[1] for a in out if a is not None}
        if len(ws) != 1:
            return out, None
        width = ws.pop()
    return out, width


def _scalar(v: Any) -> Any:
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    return v


def _trial_column(values: list[Any]) -> dict[str, np.ndarray] | None:
    """One scalar/string field over the trials as column(s), or None when it is neither."""
    vals = [_scalar(v) for v in values]
    empty = [isinstance(v, np.ndarray) and v.size == 0 or v is None for v in vals]
    present = [v for v, e in zip(vals, empty) if not e]
    if not present:
        return None
    if all(isinstance(v, str) for v in present):
        return {"": np.array(["" if e else v for v, e in zip(vals, empty)], dtype=str)}
    if all(isinstance(v, (bool, np.bool_)) for v in present) and not any(empty):
        return {"": np.array(vals, dtype=bool)}
    if all(isinstance(v, (int, float, bool, np.number, np.bool_)) for v in present):
        if all(isinstance(v, (int, bool, np.integer, np.bool_)) for v in present) and not any(empty):
            return {"": np.array(vals, dtype=np.int64)}
        return {"": np.array([np.nan if e else float(v) for v, e in zip(vals, empty)])}
    if all(isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind in "iufb" for v in present):
        lengths = {v.size for v in present}
        if len(lengths) == 1 and (m := lengths.pop()) <= MAX_VECTOR_COLUMNS:
            ints = all(v.dtype.kind in "iub" for v in present) and not any(empty)
            table = np.array([np.full(m, np.nan) if e else np.asarray(v, dtype=np.float64)
                              for v, e in zip(vals, empty)])
            return {f"_{i}": (table[:, i].astype(np.int64) if ints else table[:, i]) for i in range(m)}
    return None


# ----------------------------------------------------------------------------- file-level values


def _walk_scalars(x: Any, path: str, depth: int = 0):
    """(dotted path, field name, value) of every scalar numeric field under ``x`` (structs only, depth <= 4)."""
    if depth > 4:
        return
    if _is_struct(x):
        for f in x._fieldnames:
            v = _scalar(getattr(x, f))
            if _is_numeric(v) and np.ndim(v) == 0:
                yield f"{path}.{f}", f, float(v)
            elif _is_struct(v) or (isinstance(v, np.ndarray) and v.dtype == object and v.size <= 64):
                yield from _walk_scalars(v, f"{path}.{f}", depth + 1)
    elif isinstance(x, np.ndarray) and x.dtype == object:
        for i, e in enumerate(x.flat):
            if _is_struct(e):
                yield from _walk_scalars(e, f"{path}({i + 1})", depth + 1)


def find_bin_width(mat: dict[str, Any], trials: list[dict], where: str) -> tuple[float, str] | None:
    """The bin width (s) stored in the file and where it was found, or None.

    Looked for, in order, in the trial fields (one value for every trial), then in
    every top-level variable and nested struct: scalar fields named ``dt``,
    ``binSize``, ``binWidth``, ``bin_size`` ... (seconds) or ``dtMs``, ``binSizeMs``
    ... (milliseconds). A value above 1 under a seconds name is read as
    milliseconds (a bin longer than a second is not a BCI bin), with an info log.

    Raises
    ------
    DataError
        Several different bin widths in the file.
    """
    def key(name: str) -> float | None:
        return BIN_WIDTH_NAMES.get(name.lower().replace("_", ""))

    for f in (trials[0] if trials else {}):
        scale = key(f)
        if scale is None:
            continue
        vals = [_scalar(t.get(f)) for t in trials]
        if all(_is_numeric(v) and np.ndim(v) == 0 for v in vals) and len({float(v) for v in vals}) == 1:
            return _seconds(float(vals[0]) * scale, f), f"trial field {f}"
    found: dict[float, list[str]] = {}
    for name, value in mat.items():
        scale = key(name)
        v = _scalar(value)
        if scale is not None and _is_numeric(v) and np.ndim(v) == 0:
            found.setdefault(_seconds(float(v) * scale, name), []).append(name)
        for path, f, v in _walk_scalars(value, name):
            scale = key(f)
            if scale is not None:
                found.setdefault(_seconds(v * scale, path), []).append(path)
    found = {k: v for k, v in found.items() if np.isfinite(k) and k > 0}
    if len(found) > 1:
        listed = "; ".join(f"{', '.join(p[:2])} = {k:g} s" for k, p in found.items())
        raise DataError(f"the file holds several bin widths ({listed})", where, hint="choose one with --bin-size S")
    if found:
        (value, paths), = found.items()
        return value, paths[0]
    return None


def _seconds(v: float, name: str) -> float:
    if v > 1.0:
        log.info("bin width %s = %g read as milliseconds", name, v)
        return v * 1e-3
    return v


def good_channels(mat: dict[str, Any], n: int) -> tuple[np.ndarray, str] | None:
    """``(N,) bool`` good-channel mask from a top-level variable such as ``goodElectrodes``, and its name.

    The variable is a logical/0-1 mask of length N, or MATLAB (1-based) channel
    numbers. A variable that fits neither is skipped with a warning.
    """
    for name, value in mat.items():
        if not _GOOD.match(name):
            continue
        a = np.atleast_1d(np.asarray(value))
        if a.dtype.kind not in "iufb" or a.ndim != 1 or not a.size or not _integral(a):
            continue
        if a.dtype.kind == "b" or (a.size == n and set(np.unique(a)) <= {0, 1} and n > 2):
            return a.astype(bool), name
        if a.min() >= 1 and a.max() <= n and np.unique(a).size == a.size:
            mask = np.zeros(n, dtype=bool)
            mask[a.astype(np.int64) - 1] = True
            return mask, name
        log.warning("warning: variable '%s' does not name channels 1..%d; no units/good written", name, n)
    return None


# ----------------------------------------------------------------------------- conversion


def convert_mat_trials(w, path: Path, session_ids: list[str], spec: TrialsSpec, *, sha256: str) -> list[Grid]:
    """Write one session per ``--trials`` variable of a MATLAB file.

    Parameters
    ----------
    w : StoreWriter
    path : Path
        The ``.mat`` file (v5/v7).
    session_ids : list of str
        One per ``spec.variables``.
    spec : TrialsSpec
    sha256 : str
        Of the input file (session ``source`` attribute).

    Returns
    -------
    list of Grid
        One grid of ``sum(n_k) + GAP_BINS * (trials with bins - 1)`` bins per session.

    Raises
    ------
    UsageError
        Unknown variables or fields (the message names those available), no bin width.
    DataError
        A v7.3 file, counts that cannot be read or oriented, behaviour that is not per bin.
    """
    where = str(path)
    mat = load_mat(path)
    grids = []
    for variable, sid in zip(spec.variables, session_ids):
        grids.append(_convert_one(w, path, mat, variable, sid, spec, sha256=sha256, where=where))
    return grids


def _convert_one(w, path: Path, mat: dict, variable: str, sid: str, spec: TrialsSpec, *, sha256: str,
                 where: str) -> Grid:
    resolved, trials, names = resolve_trials(mat, variable, where, spec.counts)
    if spec.bin_size is not None:
        bin_size, bin_from = float(spec.bin_size), "--bin-size"
        stored = find_bin_width(mat, trials, where)
        if stored and abs(stored[0] - bin_size) > 1e-6 * bin_size:
            log.warning("warning: --bin-size %g s differs from the file's %s = %g s; using --bin-size",
                        bin_size, stored[1], stored[0])
    else:
        stored = find_bin_width(mat, trials, where)
        if stored is None:
            raise UsageError("the file holds no bin width; give --bin-size S", "--bin-size")
        bin_size, bin_from = stored[0], stored[1]
        log.info("bin width %g s from %s", bin_size, bin_from)

    cfield = _choose_counts(trials, names, spec, where)
    numeric_len = []
    for t in trials:
        hl: set[int] = set()
        for f in names:
            v = t.get(f)
            if f != cfield and isinstance(v, np.ndarray) and v.dtype.kind in "iufb" and v.ndim in (1, 2):
                hl.update(v.shape)
                hl.update(s - 1 for s in v.shape)
        numeric_len.append(hl)
    counts, bin_axis = orient_counts([t.get(cfield, np.zeros(0)) for t in trials], cfield, spec.transpose,
                                     numeric_len)
    n_bins = np.array([c.shape[0] for c in counts], dtype=np.int64)
    n_units = counts[0].shape[1]
    if n_bins.sum() == 0:
        raise DataError(f"no trial of '{resolved}' has bins in '{cfield}'", where)
    empty = int((n_bins == 0).sum())
    if empty:
        log.info("%d of %d trials have no bins in '%s'; kept in trials/ with n_bins 0", empty, len(trials), cfield)

    # grid: trials end to end from 0 s, GAP_BINS empty invalid bins between two trials with bins
    first = np.zeros(len(trials), dtype=np.int64)
    pos = 0
    for k, n in enumerate(n_bins):
        if n and pos:
            pos += GAP_BINS
        first[k] = pos
        pos += int(n)
    total = pos
    grid_counts = np.zeros((total, n_units), dtype=counts[0].dtype if counts else np.int32)
    for k, c in enumerate(counts):
        grid_counts[first[k] : first[k] + n_bins[k]] = c
    centres = (np.arange(total) + 0.5) * bin_size
    starts, stops = first * bin_size, (first + n_bins) * bin_size

    # behaviour
    wanted = spec.behavior
    explicit = bool(wanted)
    if not explicit:
        wanted = [TrialBehaviorSpec(f, f) for f in names if f != cfield]
    behavior: dict[str, BehaviorSeries] = {}
    binned_values: dict[str, np.ndarray] = {}
    used: set[str] = {cfield}
    for b in wanted:
        if b.field not in names:
            raise UsageError(f"no field '{b.field}' in the trials of '{resolved}'", "--trial-behavior",
                             hint=f"fields: {', '.join(names)}")
        per, d = _per_bin_field(trials, b.field, n_bins, bin_axis)
        if d is None:
            if explicit:
                raise DataError(f"field '{b.field}' is not one sample per bin of '{cfield}' in every trial",
                                where, hint="per-bin fields have n_bins (or n_bins + 1) rows per trial")
            continue
        missing = [k for k, (a, n) in enumerate(zip(per, n_bins)) if n and a is None]
        if missing and not explicit:
            log.info("field '%s' is missing in %d of %d trials with bins; not kept as behaviour "
                     "(name it with --trial-behavior to keep it, NaN where missing)", b.field, len(missing),
                     int((n_bins > 0).sum()))
            continue
        if missing:
            log.warning("warning: behaviour '%s' (field '%s') is missing in %d trials; NaN and invalid there",
                        b.name, b.field, len(missing))
        longer = [a for a, n in zip(per, n_bins) if a is not None and a.shape[0] == n + 1]
        drop_first = bool(longer) and all(np.isnan(a[0]).all() and not np.isnan(a[-1]).all() for a in longer)
        if longer:
            log.info("behaviour '%s' (field '%s') has one more sample than bins in %d trials; the %s sample of "
                     "each dropped", b.name, b.field, len(longer),
                     "first (NaN in every such trial)" if drop_first else "last")
        if b.columns is not None and max(b.columns) >= d:
            raise DataError(f"behaviour '{b.name}': column {max(b.columns)} out of range for field '{b.field}' "
                            f"with {d} columns", where)
        idx, rows = [], []
        for k, (a, n) in enumerate(zip(per, n_bins)):
            if a is None:
                continue
            idx.append(np.arange(first[k], first[k] + n))
            a = a[1:] if drop_first and a.shape[0] == n + 1 else a[:n]
            rows.append(a if b.columns is None else a[:, b.columns])
        sel = np.concatenate(idx)
        values = np.concatenate(rows)
        on_grid = np.full((total, values.shape[1]), np.nan)
        on_grid[sel] = values
        cols = [f"{b.name}_{c}" for c in (b.columns or range(values.shape[1]))]
        behavior[b.name] = BehaviorSeries(centres[sel], values, unit="", columns=cols,
                                          circular=b.name in spec.circular,
                                          description=f"trial field '{b.field}' at bin centres")
        binned_values[b.name] = on_grid
        used.add(b.field)
    for c in spec.circular:
        if c not in behavior:
            raise UsageError(f"--circular {c} names no behaviour of the trials", "--circular")

    # trials table
    table: dict[str, np.ndarray] = {"start_time": starts, "stop_time": stops, "n_bins": n_bins}
    for f in names:
        if f in used:
            continue
        cols = _trial_column([t.get(f) for t in trials])
        if cols is None:
            log.debug("trial field '%s' is neither per bin nor a scalar/string per trial; skipped", f)
            continue
        base = f"{f}_mat" if f in _RESERVED else f
        for suffix, values in cols.items():
            table[f"{base}{suffix}"] = values

    # units
    columns: dict[str, np.ndarray] = {}
    good = good_channels(mat, n_units)
    attrs = {"source": {"path": str(path.resolve()), "sha256": sha256, "variable": resolved,
                        "counts_field": cfield},
             "format": "MAT", "start_time": "", "bin_size_from": bin_from, "trial_gap_bins": GAP_BINS}
    if good is not None:
        columns["good"] = good[0]
        attrs["good_units_from"] = good[1]
        log.info("units/good from variable '%s': %d of %d channels", good[1], int(good[0].sum()), n_units)
    units = UnitsSource(ids=np.array([str(j + 1) for j in range(n_units)]), areas=np.array([""] * n_units),
                        spikes=lambda u: np.zeros(0), columns=columns)
    epochs = np.column_stack([starts, stops])[n_bins > 0]
    grid = write_session(w, sid, units=units, bin_size=bin_size, t_start=0.0, behavior=behavior,
                         trials=table, epochs=epochs, counts=grid_counts, attrs=attrs)
    # the samples are the bins: store them as they are (no interpolation into the gaps, over trials that
    # lack a field, or from a NaN sample into its neighbour), valid = in a trial and finite in every behaviour
    base = f"sessions/{sid}/binned"
    if binned_values:
        valid = np.zeros(total, dtype=bool)
        for k, n in enumerate(n_bins):
            valid[first[k] : first[k] + n] = True
        for name, on_grid in binned_values.items():
            w.root[f"{base}/behavior/{name}"][...] = on_grid
            valid &= np.all(np.isfinite(on_grid), axis=1)
        w.root[f"{base}/valid"][...] = valid
    log.info("session %s: %d trials (%d with bins), %d units, %d bins in trials + %d gap bins, behaviour %s",
             sid, len(trials), int((n_bins > 0).sum()), n_units, int(n_bins.sum()), total - int(n_bins.sum()),
             ", ".join(behavior) or "(none)")
    return grid
