"""Import kilosort/phy output folders (``spike_times.npy`` + ``spike_clusters.npy``).

- ``spike_times.npy``: one integer sample index per spike (kilosort writes
  uint64), converted to seconds with the sampling rate, which comes from
  ``--sampling-rate`` or else from the line ``sample_rate = 30000.0`` of
  ``params.py``. ``params.py`` is read as text with a regular expression and is
  never imported or executed.
- ``spike_clusters.npy``: the cluster id of each spike; every cluster with
  spikes becomes a unit (``units/id`` = cluster ids, ascending).
- ``cluster_info.tsv`` and the other ``cluster_<name>.tsv`` files (tab-separated,
  a header row, a ``cluster_id`` (or ``id``) column) give per-cluster labels and
  metrics, stored as ``units/<column>`` (``group``, ``KSLabel``, ``ch``,
  ``depth``, ``fr``, ...). ``cluster_group.tsv`` (phy's curation) is read last,
  so its ``group`` wins over the ``group`` column of ``cluster_info.tsv``.
- The group label of a cluster (``--phy-groups`` selects on it) is its
  ``cluster_group.tsv`` group, else its ``cluster_info.tsv`` group, else its
  ``KSLabel``.

``.npy`` files are read with ``np.load(allow_pickle=False)``; other files of
the folder (``params.py`` aside, templates, features, ``.dat`` data) are not read.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import numpy as np

from ncli.core.binning import Grid
from ncli.core.errors import DataError, UsageError
from ncli.formats.arrays import load_npy, spike_units
from ncli.formats.session import write_session

log = logging.getLogger("ncli")

PHY_FILES = ("spike_times.npy", "spike_clusters.npy")
#: Arrays of ``units/`` that the store itself defines; a cluster column of such a name gets a ``phy_`` prefix.
RESERVED_UNIT_ARRAYS = {"id", "area", "spike_times", "spike_index", "location"}
_KEY_COLUMNS = ("cluster_id", "id")
_SAMPLE_RATE = re.compile(r"^[ \t]*sample_rate[ \t]*=[ \t]*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)[ \t]*(?:#.*)?$",
                          re.MULTILINE)


def is_phy_folder(path: str | Path) -> bool:
    """True when ``path`` is a directory holding ``spike_times.npy`` and ``spike_clusters.npy``."""
    p = Path(path)
    return p.is_dir() and all((p / name).is_file() for name in PHY_FILES)


def identity_files(folder: str | Path) -> list[Path]:
    """The files of a phy folder that a conversion reads (for the run-cache identity)."""
    folder = Path(folder)
    files = [folder / n for n in (*PHY_FILES, "params.py")]
    files += sorted(folder.glob("cluster_*.tsv"))
    return [f for f in files if f.is_file()]


def read_sample_rate(folder: str | Path) -> float | None:
    """The ``sample_rate`` (Hz) of ``params.py``, read as text (never executed); None when absent.

    Raises
    ------
    DataError
        ``params.py`` cannot be read, or its ``sample_rate`` is not a positive number.
    """
    path = Path(folder) / "params.py"
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"cannot read params.py: {exc}", str(path)) from None
    matches = _SAMPLE_RATE.findall(text)
    if not matches:
        if re.search(r"^[ \t]*sample_rate\b", text, re.MULTILINE):
            raise DataError("params.py sets sample_rate to something other than a number", str(path),
                            hint="give the rate with --sampling-rate HZ (ncli never executes params.py)")
        return None
    rate = float(matches[-1])
    if not np.isfinite(rate) or rate <= 0:
        raise DataError(f"params.py has sample_rate = {matches[-1]}; expected a positive number of Hz", str(path),
                        hint="give the rate with --sampling-rate HZ")
    return rate


def _read_tsv(path: Path) -> tuple[list[str], dict[int, dict[str, str]]]:
    """(columns other than the key, {cluster id: {column: text}}) of one ``cluster_*.tsv``."""
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            rows = list(csv.reader(fh, delimiter="\t"))
    except OSError as exc:
        raise DataError(f"cannot read {path.name}: {exc}", str(path)) from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        log.warning("warning: %s is empty; not read", path.name)
        return [], {}
    header = [h.strip() for h in rows[0]]
    key = next((k for k in _KEY_COLUMNS if k in header), None)
    if key is None:
        raise DataError(f"{path.name} has no cluster_id column (header: {', '.join(header)})", str(path),
                        hint="a phy cluster table is tab-separated with a cluster_id column")
    k = header.index(key)
    columns = [h for i, h in enumerate(header) if i != k and h]
    table: dict[int, dict[str, str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        try:
            cid = int(float(row[k]))
        except (IndexError, ValueError):
            raise DataError(f"{path.name} line {line}: cluster id '{row[k] if k < len(row) else ''}' is not an "
                            "integer", str(path)) from None
        table[cid] = {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(header) if i != k and h}
    return columns, table


def _typed(values: list[str]) -> np.ndarray:
    """A column of texts as int64 (all integers), float64 (numbers; '' and nan -> NaN) or str."""
    present = [v for v in values if v != ""]
    if not present:
        return np.asarray(values, dtype=str)
    try:
        for v in present:
            float(v)
    except ValueError:
        return np.asarray(values, dtype=str)
    if len(present) == len(values) and all(v.lstrip("+-").isdigit() for v in present):
        return np.asarray([int(v) for v in values], dtype=np.int64)
    return np.asarray([float(v) if v != "" else np.nan for v in values], dtype=np.float64)


def read_cluster_labels(folder: str | Path, ids: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Per-unit columns of the folder's cluster tables, and each unit's group label.

    Parameters
    ----------
    folder : str or Path
    ids : (N,) int
        Cluster ids of the units, in store order.

    Returns
    -------
    columns : dict name -> (N,) array
        ``units/<name>`` columns (int64, float64 with NaN for missing, or str with '').
    groups : (N,) str or None
        ``cluster_group.tsv`` group, else ``cluster_info.tsv`` group, else KSLabel
        ('' when none applies); None when the folder has none of them.
    """
    folder = Path(folder)
    files = [folder / "cluster_info.tsv"] if (folder / "cluster_info.tsv").is_file() else []
    files += [f for f in sorted(folder.glob("cluster_*.tsv"))
              if f.name not in ("cluster_info.tsv", "cluster_group.tsv") and f.is_file()]
    if (folder / "cluster_group.tsv").is_file():
        files.append(folder / "cluster_group.tsv")
    merged: dict[str, dict[int, str]] = {}
    group_sources: list[dict[int, str]] = []  # lowest priority first
    kslabel: dict[int, str] = {}
    for f in files:
        columns, table = _read_tsv(f)
        for c in columns:
            col = merged.setdefault(c, {})
            for cid, row in table.items():
                if row.get(c, "") != "" or cid not in col:
                    col[cid] = row.get(c, "")
        if "group" in columns:
            group_sources.append({cid: row.get("group", "") for cid, row in table.items()})
        if "KSLabel" in columns:
            kslabel.update({cid: row["KSLabel"] for cid, row in table.items() if row.get("KSLabel", "")})
        log.info("%s: %d clusters, columns %s", f.name, len(table), ", ".join(columns))
    int_ids = [int(i) for i in ids]
    out: dict[str, np.ndarray] = {}
    for name, col in merged.items():
        key = re.sub(r"[/\s]+", "_", name)
        while key in RESERVED_UNIT_ARRAYS or key in out:
            key = f"phy_{key}"
        out[key] = _typed([col.get(i, "") for i in int_ids])
    if not group_sources and not kslabel:
        return out, None
    groups = []
    for i in int_ids:
        label = ""
        for src in reversed(group_sources):  # cluster_group.tsv first, then cluster_info.tsv
            if src.get(i, ""):
                label = src[i]
                break
        groups.append(label or kslabel.get(i, ""))
    return out, np.asarray(groups, dtype=str)


def parse_phy_groups(text: str | None) -> list[str] | None:
    """``--phy-groups good,mua`` -> ['good', 'mua'] (None when not given).

    Raises
    ------
    UsageError
        No group named.
    """
    if text is None:
        return None
    groups = [g.strip() for g in text.split(",") if g.strip()]
    if not groups:
        raise UsageError(f"invalid --phy-groups '{text}'", "--phy-groups",
                         hint="name the groups to keep, e.g. --phy-groups good,mua")
    return groups


def _samples(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    st = np.asarray(load_npy(folder / "spike_times.npy"))
    sc = np.asarray(load_npy(folder / "spike_clusters.npy"))
    if st.ndim == 2 and 1 in st.shape:
        st = st.ravel()
    if sc.ndim == 2 and 1 in sc.shape:
        sc = sc.ravel()
    if st.ndim != 1 or sc.ndim != 1:
        raise DataError(f"spike_times.npy {st.shape} and spike_clusters.npy {sc.shape} must hold one value per "
                        "spike", str(folder))
    if st.shape != sc.shape:
        raise DataError(f"spike_times.npy has {st.size} spikes but spike_clusters.npy has {sc.size} cluster ids",
                        str(folder))
    if st.dtype.kind not in "iuf":
        raise DataError(f"spike_times.npy is not numeric (dtype {st.dtype})", str(folder))
    if st.dtype.kind == "f":
        if not np.all(np.isfinite(st)):
            raise DataError("spike_times.npy has NaN or infinite values", str(folder))
        if np.any(st != np.round(st)):
            raise DataError("spike_times.npy holds non-integer values; kilosort/phy spike times are sample "
                            "indices", str(folder),
                            hint="for spike times in seconds save them in a .npz and use --spike-times/--spike-clusters")
    if st.size and st.dtype.kind == "i" and st.min() < 0:
        raise DataError("spike_times.npy has negative sample indices", str(folder))
    return st, sc


def convert_phy(w, folder: str | Path, session_id: str, *, bin_size: float, sampling_rate: float | None,
                groups: list[str] | None, sha256: str) -> Grid:
    """Write one spiking session from a kilosort/phy output folder.

    Parameters
    ----------
    w : StoreWriter
    folder : str or Path
        Holds ``spike_times.npy`` (samples) and ``spike_clusters.npy``.
    session_id : str
    bin_size : float
        Bin width (s).
    sampling_rate : float or None
        Samples per second (Hz); None reads ``sample_rate`` from ``params.py`` (as text).
    groups : list of str or None
        Keep only clusters whose group label is one of these.
    sha256 : str
        Identity of the folder's files.

    Returns
    -------
    Grid
        First to last spike.

    Raises
    ------
    UsageError
        No sampling rate anywhere; ``groups`` given but the folder has no group labels.
    DataError
        Mismatched or non-integer arrays; no cluster left after ``groups``.
    """
    folder = Path(folder)
    rate_source = "--sampling-rate"
    if sampling_rate is None:
        sampling_rate, rate_source = read_sample_rate(folder), "params.py"
    if sampling_rate is None:
        raise missing_rate_error(folder)
    samples, clusters = _samples(folder)
    times = samples.astype(np.float64) / float(sampling_rate)
    units = spike_units(times, clusters, "spike_clusters.npy")
    columns, labels = read_cluster_labels(folder, units.ids.astype(np.int64))
    units.columns = columns
    if groups is not None:
        if labels is None:
            raise UsageError("--phy-groups: the folder has no group labels (no cluster_group.tsv, no group or "
                             "KSLabel column in cluster_info.tsv)", str(folder),
                             hint="curate the clusters in phy, or omit --phy-groups")
        keep = np.flatnonzero(np.isin(labels, groups))
        if keep.size == 0:
            found = sorted(set(labels.tolist()) - {""})
            raise DataError(f"no cluster has group {' or '.join(groups)}", str(folder),
                            hint=f"groups present: {', '.join(found) or '(none)'}")
        all_spikes = units.spikes
        units.ids, units.areas = units.ids[keep], units.areas[keep]
        units.columns = {k: v[keep] for k, v in units.columns.items()}
        units.spikes = lambda u: all_spikes(int(keep[u]))
        log.info("%s: kept %d of %d clusters (group %s)", folder.name, keep.size, labels.size, ",".join(groups))
    attrs = {"source": {"path": str(folder.resolve()), "sha256": sha256}, "format": "phy", "start_time": "",
             "sampling_rate_hz": float(sampling_rate), "sampling_rate_source": rate_source}
    if groups is not None:
        attrs["phy_groups"] = list(groups)
    return write_session(w, session_id, units=units, bin_size=bin_size, attrs=attrs)


def missing_rate_error(folder: str | Path) -> UsageError:
    """The usage error of a phy folder without a sampling rate (neither params.py nor --sampling-rate)."""
    return UsageError("kilosort/phy folder has no sampling rate: no 'sample_rate = ...' line in params.py and no "
                      "--sampling-rate", str(folder),
                      hint="give the recording's rate, e.g. --sampling-rate 30000")
