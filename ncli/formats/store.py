"""The ncli store (schema 1): a layered Zarr v3 group.

See ``docs/store.md`` for the full reference. In short::

    <root>                      attrs.ncli = {schema: 1, id, parent, history: [...]}
      sessions/<session_id>/    units/, binned/, behavior/, trials/, intervals/, stim/,
                                latents/<name>, neurons/<name>, predictions/<name>
      models/<name>/            fitted model: attrs {class, config, version, metrics}

A store written by any command other than ``convert`` holds only what that
command produced and names the store it read as its ``parent``. :class:`Store`
resolves every read through the chain of parents, nearest layer first; a layer
may shadow but never mutates a parent. :class:`StoreWriter` builds a new layer
under a temporary name and renames it into place only when complete.
"""

from __future__ import annotations

import datetime as _dt
import os
import posixpath
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import zarr

from ncli import __version__
from ncli.core.errors import StoreError, UsageError
from ncli.core.jsonutil import jsonable
from ncli.core.strings import as_str_array

SCHEMA = 1
#: Target size of one chunk in bytes (DESIGN.md: about 1-8 MB a chunk).
CHUNK_BYTES = 4 * 1024 * 1024
MAX_PARENT_DEPTH = 64


# ----------------------------------------------------------------------------- locations


def is_local(location: str) -> bool:
    """True when ``location`` is a local path (no URL scheme other than file://)."""
    return "://" not in str(location) or str(location).startswith("file://")


def _local_path(location: str) -> Path:
    loc = str(location)
    if loc.startswith("file://"):
        loc = loc[len("file://") :]
    return Path(loc)


def normalize_location(location: str | os.PathLike) -> str:
    """Absolute path for local stores, the URL unchanged otherwise."""
    loc = str(location)
    if is_local(loc):
        return str(_local_path(loc).expanduser().resolve())
    return loc


def now_iso() -> str:
    """Current UTC time as an ISO 8601 string with seconds precision."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _exists(location: str) -> bool:
    if is_local(location):
        return _local_path(location).exists()
    import fsspec

    fs, path = fsspec.core.url_to_fs(location)
    return fs.exists(path)


def _drain_zarr_io(timeout: float = 30.0) -> None:
    """Wait for zarr's background I/O tasks to finish.

    zarr runs its writes on an event loop in a separate thread. When Ctrl-C
    interrupts the main thread in the middle of a write, those tasks keep
    running and could re-create files in a directory we are about to remove.
    """
    try:
        import asyncio

        from zarr.core import sync as zsync

        loop = zsync.loop[0]
        if loop is None or not loop.is_running():
            return

        async def _wait_for_others() -> None:
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=timeout)

        asyncio.run_coroutine_threadsafe(_wait_for_others(), loop).result(timeout + 1.0)
    except Exception:  # best effort: cleanup below retries anyway
        pass


def _remove(location: str) -> None:
    if is_local(location):
        p = _local_path(location)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists() or p.is_symlink():
            p.unlink()
        return
    import fsspec

    fs, path = fsspec.core.url_to_fs(location)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def looks_like_store(location: str) -> bool:
    """True when ``location`` holds a Zarr group with an ``ncli`` root attribute."""
    try:
        if is_local(location):
            p = _local_path(location)
            if not (p.is_dir() and (p / "zarr.json").is_file()):
                return False
        group = zarr.open_group(str(_local_path(location)) if is_local(location) else location, mode="r")
        return isinstance(group.attrs.get("ncli"), dict)
    except Exception:
        return False


def chunk_rows(row_shape: tuple[int, ...], itemsize: int, target: int = CHUNK_BYTES) -> int:
    """Number of leading-axis rows per chunk so a chunk holds about ``target`` bytes."""
    per_row = max(1, int(np.prod(row_shape, dtype=np.int64)) * itemsize)
    return max(1, target // per_row)


# ----------------------------------------------------------------------------- reading


def _open_layer(location: str) -> zarr.Group:
    if is_local(location):
        p = _local_path(location)
        if not p.exists():
            raise StoreError("store not found", location)
        if not p.is_dir() or not (p / "zarr.json").is_file():
            raise StoreError(
                "not an ncli store (no Zarr v3 group here)", location,
                hint="stores are directories written by ncli, e.g. made by `ncli convert`",
            )
    try:
        group = zarr.open_group(str(_local_path(location)) if is_local(location) else location, mode="r")
    except (FileNotFoundError, KeyError, ValueError, TypeError, OSError) as exc:
        raise StoreError(f"cannot open store: {exc.__class__.__name__}: {exc}", location) from None
    meta = group.attrs.get("ncli")
    if not isinstance(meta, dict) or "schema" not in meta:
        raise StoreError("not an ncli store (root attribute 'ncli' missing)", location)
    if meta["schema"] != SCHEMA:
        raise StoreError(
            f"unsupported store schema {meta['schema']!r} (this ncli reads schema {SCHEMA})", location
        )
    return group


def resolve_parent(child_location: str, parent: str) -> str:
    """Location of ``parent`` as written in a store at ``child_location``.

    A relative parent is relative to the directory that contains the child
    store (like a symbolic link); URLs and absolute paths are used as they are.
    """
    if not is_local(parent):
        return parent
    p = _local_path(parent)
    if p.is_absolute() or not is_local(child_location):
        if not is_local(child_location) and not p.is_absolute():
            return posixpath.normpath(posixpath.join(posixpath.dirname(child_location.rstrip("/")), parent))
        return str(p)
    base = _local_path(child_location).parent
    return str((base / p).resolve())


@dataclass
class Layer:
    """One store in a parent chain."""

    location: str
    group: zarr.Group

    @property
    def meta(self) -> dict:
        return dict(self.group.attrs.get("ncli", {}))


def numeric_compressors() -> list:
    """The codec of every numeric array ncli writes: Blosc LZ4 with bit shuffling.

    On spike counts (sparse int32) it writes 2x and reads 1.5x faster than zarr's default
    Zstd at the same size (bench/bench_convert_speed.py); any zarr reader decodes it.
    Stores written with the default codec (ncli <= 0.1) read unchanged.
    """
    from zarr.codecs import BloscCodec

    return [BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")]


class Store:
    """A read-only view of an ncli store and its chain of parents.

    Reads resolve nearest layer first: ``store.array("sessions/s/binned/counts")``
    returns the array from the first layer that holds that path. Group attributes
    are merged (nearest layer wins per key); child listings are the union over
    layers.

    Raises
    ------
    StoreError
        When the store, or any parent it names, is missing or is not an ncli store.
    """

    def __init__(self, layers: list[Layer]):
        self.layers = layers

    # -- construction
    @classmethod
    def open(cls, location: str | os.PathLike) -> "Store":
        """Open the store at ``location`` and every parent it names.

        Raises
        ------
        StoreError
            The store or a parent is missing (the message names the missing path),
            is not an ncli store, or the parent chain loops.
        """
        loc = normalize_location(location)
        layers: list[Layer] = []
        seen: set[str] = set()
        child: str | None = None
        while True:
            if loc in seen:
                raise StoreError("parent chain loops back on itself", loc)
            seen.add(loc)
            try:
                group = _open_layer(loc)
            except StoreError as exc:
                if child is not None and exc.what == "store not found":
                    raise StoreError(
                        f"parent store not found: {loc}", child,
                        hint="the store was built on a parent that has been moved or deleted; "
                        "re-run the pipeline, or keep parents with `ncli export --flatten`",
                    ) from None
                raise
            layers.append(Layer(loc, group))
            parent = group.attrs["ncli"].get("parent")
            if not parent:
                break
            if len(layers) > MAX_PARENT_DEPTH:
                raise StoreError(f"parent chain longer than {MAX_PARENT_DEPTH} layers", loc)
            child = loc
            loc = resolve_parent(loc, parent)
        return cls(layers)

    # -- metadata
    @property
    def location(self) -> str:
        """Location of the top (nearest) layer."""
        return self.layers[0].location

    @property
    def root(self) -> zarr.Group:
        """Zarr group of the top layer."""
        return self.layers[0].group

    @property
    def meta(self) -> dict:
        """The ``ncli`` root attribute of the top layer."""
        return self.layers[0].meta

    @property
    def id(self) -> str:
        """Unique id of the top layer (input identity for the run cache)."""
        return str(self.meta.get("id", self.location))

    @property
    def history(self) -> list[dict]:
        """Every command that contributed to this store, oldest first."""
        return list(self.meta.get("history", []))

    # -- navigation
    def _find(self, path: str):
        path = path.strip("/")
        for layer in self.layers:
            try:
                node = layer.group[path] if path else layer.group
            except (KeyError, FileNotFoundError):
                continue
            return node
        return None

    def exists(self, path: str) -> bool:
        """True when some layer holds ``path`` (group or array)."""
        return self._find(path) is not None

    def is_array(self, path: str) -> bool:
        """True when the nearest node at ``path`` is an array."""
        return isinstance(self._find(path), zarr.Array)

    def array(self, path: str) -> zarr.Array:
        """The array at ``path`` from the nearest layer that holds it.

        Raises
        ------
        StoreError
            No layer holds an array at ``path``.
        """
        node = self._find(path)
        if not isinstance(node, zarr.Array):
            raise StoreError(f"no array '{path.strip('/')}' in store", self.location)
        return node

    def read(self, path: str) -> np.ndarray:
        """Read a whole array into memory (small arrays only: ids, trials, behaviour)."""
        return np.asarray(self.array(path)[...])

    def children(self, path: str = "") -> list[str]:
        """Sorted names of the groups and arrays under ``path``, over all layers."""
        names: set[str] = set()
        path = path.strip("/")
        for layer in self.layers:
            try:
                node = layer.group[path] if path else layer.group
            except (KeyError, FileNotFoundError):
                continue
            if isinstance(node, zarr.Group):
                names.update(node.keys())
        return sorted(names)

    def attrs(self, path: str = "") -> dict[str, Any]:
        """Attributes of the group or array at ``path``, merged over layers (nearest wins)."""
        merged: dict[str, Any] = {}
        path = path.strip("/")
        for layer in reversed(self.layers):
            try:
                node = layer.group[path] if path else layer.group
            except (KeyError, FileNotFoundError):
                continue
            merged.update(dict(node.attrs))
        return merged

    def layer_of(self, path: str) -> str | None:
        """Location of the nearest layer holding ``path``."""
        path = path.strip("/")
        for layer in self.layers:
            try:
                layer.group[path]
            except (KeyError, FileNotFoundError):
                continue
            return layer.location
        return None

    def walk(self, path: str = "") -> Iterator[tuple[str, zarr.Array]]:
        """Yield ``(path, array)`` for every array under ``path``, nearest layer per path."""
        for name in self.children(path):
            sub = f"{path.strip('/')}/{name}".strip("/")
            node = self._find(sub)
            if isinstance(node, zarr.Array):
                yield sub, node
            elif isinstance(node, zarr.Group):
                yield from self.walk(sub)

    # -- the schema's vocabulary
    def sessions(self) -> list[str]:
        """Session ids, sorted."""
        return self.children("sessions")

    def require_session(self, session: str) -> str:
        """Return ``sessions/<session>`` or raise a clear error naming the choices."""
        if session not in self.sessions():
            raise UsageError(
                f"unknown session '{session}'", self.location,
                hint=f"sessions in this store: {', '.join(self.sessions()) or '(none)'}",
            )
        return f"sessions/{session}"

    def unit_spikes(self, session: str, unit: int) -> np.ndarray:
        """Spike times (s) of unit number ``unit`` (0-based) in ``session``."""
        base = f"sessions/{session}/units"
        index = self.array(f"{base}/spike_index")
        lo, hi = (int(v) for v in index[unit : unit + 2])
        return np.asarray(self.array(f"{base}/spike_times")[lo:hi], dtype=np.float64)


# ----------------------------------------------------------------------------- writing


def _history_entry(command: str, argv: list[str], params: dict, inputs: list[str]) -> dict:
    return {
        "command": command,
        "argv": list(argv),
        "version": __version__,
        "params": jsonable(params),
        "started": now_iso(),
        "finished": None,
        "inputs": list(inputs),
    }


class StoreWriter:
    """Build one store layer atomically.

    Use as a context manager. Local targets are built under a hidden temporary
    name beside the target and renamed into place only when the block finishes
    without error; on any exception (including ``KeyboardInterrupt``) the
    temporary directory is removed and the target is left as it was. Remote
    targets (fsspec URLs) are written in place and removed on failure.

    Parameters
    ----------
    target : str
        Where the finished store goes (a ``*.zarr`` path or a URL).
    parent : Store, optional
        The store this layer was computed from; recorded as ``parent`` (relative
        path when both are local) and its history is carried forward.
    command, argv, params, inputs
        Recorded in the history entry this layer appends.
    overwrite : bool
        Replace an existing target, which must be an ncli store. Without it an
        existing target is an error.
    protect : list of str, optional
        Further locations (input files, stores) the output must never replace.

    Raises
    ------
    UsageError
        The target exists and ``overwrite`` is false; the target exists and is
        not an ncli store; the target is (or contains) the parent, one of its
        layers or a protected input; the target's directory does not exist.
    """

    def __init__(
        self,
        target: str | os.PathLike,
        *,
        parent: Store | None = None,
        command: str,
        argv: list[str] | None = None,
        params: dict | None = None,
        inputs: list[str] | None = None,
        overwrite: bool = False,
        protect: list[str] | None = None,
    ):
        self.target = normalize_location(target)
        self.protect = list(protect or [])
        self.parent = parent
        self.command = command
        self.overwrite = overwrite
        self.entry = _history_entry(command, argv if argv is not None else sys.argv[1:], params or {},
                                    inputs or ([parent.location] if parent else []))
        self.root: zarr.Group | None = None
        self._build_location: str | None = None

    # -- context management
    def __enter__(self) -> "StoreWriter":
        self._check_target()
        if is_local(self.target):
            tgt = _local_path(self.target)
            self._build_location = str(tgt.parent / f".{tgt.name}.partial-{uuid.uuid4().hex[:12]}")
        else:
            if _exists(self.target):
                _remove(self.target)
            self._build_location = self.target
        self.root = zarr.open_group(self._build_location, mode="w-")
        meta = {
            "schema": SCHEMA,
            "id": uuid.uuid4().hex,
            "parent": self._parent_reference(),
            "history": (self.parent.history if self.parent else []) + [self.entry],
        }
        self.root.attrs["ncli"] = meta
        return self

    def _check_target(self) -> None:
        """Refuse targets that would destroy an input or something that is not a store."""
        protected = list(self.protect)
        if self.parent is not None:
            protected += [layer.location for layer in self.parent.layers]
        for loc in protected:
            loc = normalize_location(loc)
            if loc == self.target:
                raise UsageError("output would overwrite its own input", self.target,
                                 hint="choose another -o location")
            if is_local(loc) and is_local(self.target):
                inside = _local_path(loc)
                if _local_path(self.target) in inside.parents:
                    raise UsageError("output would replace a folder that holds an input", self.target,
                                     hint="choose another -o location")
                if inside in _local_path(self.target).parents:
                    raise UsageError("output would be written inside an input store", self.target,
                                     hint="choose a location outside the input store")
        if _exists(self.target):
            if not self.overwrite:
                raise UsageError("output already exists", self.target, hint="pass --overwrite to replace it")
            if not looks_like_store(self.target):
                raise UsageError("refusing to replace something that is not an ncli store", self.target,
                                 hint="--overwrite only replaces stores; choose another -o location")
        if is_local(self.target):
            tgt = _local_path(self.target)
            if not tgt.parent.is_dir():
                raise UsageError("output directory does not exist", str(tgt.parent))
            for folder in tgt.parents:  # a store written into another store's folder corrupts that store
                if (folder / "zarr.json").is_file() and looks_like_store(str(folder)):
                    raise UsageError(f"output would be written inside the store {folder}", self.target,
                                     hint="choose a location outside any ncli store")

    def _parent_reference(self) -> str | None:
        if self.parent is None:
            return None
        ploc = self.parent.location
        if is_local(ploc) and is_local(self.target):
            return os.path.relpath(ploc, start=str(_local_path(self.target).parent))
        return ploc

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            if self._build_location:
                self._discard()
            return False
        try:
            meta = dict(self.root.attrs["ncli"])
            history = list(meta["history"])
            history[-1] = dict(history[-1], finished=now_iso())
            meta["history"] = history
            self.root.attrs["ncli"] = meta
            self._commit()
        except BaseException:
            if self._build_location and self._build_location != self.target:
                self._discard()
            raise
        return False

    def _discard(self) -> None:
        """Remove the partial build, after zarr's in-flight writes have finished."""
        _drain_zarr_io()
        for _ in range(20):
            _remove(self._build_location)
            if not _exists(self._build_location):
                return
            time.sleep(0.05)

    def _commit(self) -> None:
        if not is_local(self.target):
            return
        tgt = _local_path(self.target)
        build = Path(self._build_location)
        if tgt.exists() or tgt.is_symlink():
            if not self.overwrite:
                raise UsageError("output already exists", self.target, hint="pass --overwrite to replace it")
            old = tgt.parent / f".{tgt.name}.old-{uuid.uuid4().hex[:12]}"
            os.replace(tgt, old)
            os.replace(build, tgt)
            _remove(str(old))
        else:
            os.replace(build, tgt)

    # -- writing helpers
    def group(self, path: str, attrs: dict | None = None) -> zarr.Group:
        """Create (or open) the group at ``path`` in this layer and update its attributes."""
        g = self.root.require_group(path.strip("/"))
        if attrs:
            g.attrs.update(jsonable(attrs))
        return g

    def array(
        self,
        path: str,
        data: np.ndarray,
        *,
        unit: str | None = None,
        attrs: dict | None = None,
        chunk_rows_: int | None = None,
    ) -> zarr.Array:
        """Write ``data`` at ``path``, chunked along the first (time) axis.

        String data is stored with Zarr's variable-length string dtype.
        """
        data = np.asarray(data)
        if data.dtype.kind in ("U", "O", "T"):
            arr = self.root.create_array(path.strip("/"), shape=data.shape, dtype=str,
                                         chunks=data.shape if data.size else (1,) * max(1, data.ndim),
                                         overwrite=True)
            if data.size:
                arr[...] = as_str_array(data)
        else:
            arr = self.create(path, data.shape, data.dtype, chunk_rows_=chunk_rows_)
            if data.size:
                arr[...] = data
        meta = dict(attrs or {})
        if unit is not None:
            meta["unit"] = unit
        if meta:
            arr.attrs.update(jsonable(meta))
        return arr

    def create(
        self,
        path: str,
        shape: tuple[int, ...],
        dtype,
        *,
        unit: str | None = None,
        attrs: dict | None = None,
        chunk_rows_: int | None = None,
        chunks: tuple[int, ...] | None = None,
        fill_value=0,
    ) -> zarr.Array:
        """Create an empty numeric array at ``path`` to fill block by block."""
        dtype = np.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        if chunks is None:
            rows = chunk_rows_ or chunk_rows(shape[1:], dtype.itemsize)
            chunks = (max(1, min(rows, shape[0] if shape and shape[0] else 1)),) + tuple(max(1, s) for s in shape[1:])
            if not shape:
                chunks = ()
        arr = self.root.create_array(path.strip("/"), shape=shape, dtype=dtype, chunks=chunks,
                                     fill_value=fill_value, overwrite=True, compressors=numeric_compressors())
        meta = dict(attrs or {})
        if unit is not None:
            meta["unit"] = unit
        if meta:
            arr.attrs.update(jsonable(meta))
        return arr

    @property
    def location(self) -> str:
        """Final location of the layer being written."""
        return self.target


# ----------------------------------------------------------------------------- validation


def validate(store: Store) -> list[str]:
    """Check a store against schema 1; return a list of problems (empty when valid).

    Checks the root metadata, and for every session the consistency of
    ``units`` (ids, areas, spike index), ``binned`` (counts ``(T, N)``, valid
    ``(T,)``, behaviour ``(T, D)``), per-bin layers (``latents``/``predictions``
    with ``T`` rows), per-neuron layers (``N`` rows) and trial tables.
    """
    problems: list[str] = []
    meta = store.meta
    for key in ("schema", "history"):
        if key not in meta:
            problems.append(f"root: attribute ncli.{key} missing")
    for sid in store.sessions():
        base = f"sessions/{sid}"
        n_units = None
        if store.exists(f"{base}/units/id"):
            ids = store.array(f"{base}/units/id")
            n_units = ids.shape[0]
            for name in ("area", "spike_index", "spike_times"):
                if not store.exists(f"{base}/units/{name}"):
                    problems.append(f"{base}/units: array '{name}' missing")
            if store.exists(f"{base}/units/area") and store.array(f"{base}/units/area").shape != (n_units,):
                problems.append(f"{base}/units/area: shape differs from units/id")
            if store.exists(f"{base}/units/spike_index"):
                idx = store.read(f"{base}/units/spike_index")
                if idx.shape != (n_units + 1,):
                    problems.append(f"{base}/units/spike_index: shape {idx.shape}, expected ({n_units + 1},)")
                elif idx[0] != 0 or np.any(np.diff(idx) < 0):
                    problems.append(f"{base}/units/spike_index: not a non-decreasing index starting at 0")
                elif store.exists(f"{base}/units/spike_times") and \
                        store.array(f"{base}/units/spike_times").shape[0] != idx[-1]:
                    problems.append(f"{base}/units/spike_index: last entry != number of spike times")
        n_bins = None
        if store.exists(f"{base}/binned/counts"):
            counts = store.array(f"{base}/binned/counts")
            battrs = store.attrs(f"{base}/binned")
            for key in ("bin_size_s", "t_start_s"):
                if key not in battrs:
                    problems.append(f"{base}/binned: attribute {key} missing")
            if counts.ndim != 2:
                problems.append(f"{base}/binned/counts: expected 2-d (T, N), got {counts.ndim}-d")
            else:
                n_bins = counts.shape[0]
                if n_units is not None and counts.shape[1] != n_units:
                    problems.append(f"{base}/binned/counts: {counts.shape[1]} columns but {n_units} units")
            if store.exists(f"{base}/binned/valid") and n_bins is not None and \
                    store.array(f"{base}/binned/valid").shape != (n_bins,):
                problems.append(f"{base}/binned/valid: shape differs from (T,) = ({n_bins},)")
            for name in store.children(f"{base}/binned/behavior"):
                arr = store.array(f"{base}/binned/behavior/{name}")
                if n_bins is not None and (arr.ndim != 2 or arr.shape[0] != n_bins):
                    problems.append(f"{base}/binned/behavior/{name}: shape {arr.shape}, expected ({n_bins}, D)")
        for layer in ("latents", "predictions"):
            for name in store.children(f"{base}/{layer}"):
                path = f"{base}/{layer}/{name}"
                if not store.is_array(path):
                    continue
                arr = store.array(path)
                if n_bins is not None and (arr.ndim != 2 or arr.shape[0] != n_bins):
                    problems.append(f"{path}: shape {arr.shape}, expected ({n_bins}, K)")
        for name in store.children(f"{base}/neurons"):
            path = f"{base}/neurons/{name}"
            if store.is_array(path) and n_units is not None and store.array(path).shape[0] != n_units:
                problems.append(f"{path}: {store.array(path).shape[0]} rows but {n_units} units")
        tables = [f"{base}/trials"] + [f"{base}/intervals/{t}" for t in store.children(f"{base}/intervals")]
        for table in tables:
            cols = [c for c in store.children(table) if store.is_array(f"{table}/{c}")]
            lengths = {store.array(f"{table}/{c}").shape[0] for c in cols}
            if len(lengths) > 1:
                problems.append(f"{table}: columns have different lengths {sorted(lengths)}")
    return problems
