"""NWB files with the Zarr backend (``*.nwb.zarr`` folders written by hdmf-zarr).

hdmf-zarr (the NWB Zarr backend, https://github.com/hdmf-dev/hdmf-zarr) stores the
same NWB tree as an HDF5 NWB file, in a Zarr v2 folder:

- groups are folders with ``.zgroup``; attributes live in ``.zattrs``;
- datasets are Zarr v2 arrays (``.zarray`` + chunk files); ``.zattrs`` key
  ``zarr_dtype`` says ``scalar`` (an HDF5 scalar stored as shape (1,)), ``str``,
  ``bytes``, ``object`` (object references) or the numeric type;
- object references are dicts ``{"source": ".", "path": "/...", ...}``: in attributes as
  ``{"zarr_dtype": "object", "value": {...}}``, in datasets as Zarr object arrays
  (numcodecs ``JSON`` or, by default, ``Pickle`` of ``hdmf_zarr.utils.ZarrReference``);
- links are listed in a group's ``.zattrs`` under ``zarr_link``;
- the root's ``.specloc`` names the ``specifications`` group (cached namespaces).

hdmf-zarr itself needs zarr < 3, which ncli (zarr 3) cannot install next to it. Instead
:func:`hdf5_mirror` copies the tree into a temporary HDF5 file with the HDF5 NWB layout
(references as HDF5 object references, links as soft links, scalars as scalars), which
the ordinary :class:`ncli.formats.nwb.NwbReader` (pynwb ``NWBHDF5IO``) then reads, so
every NWB quirk repair is shared by both backends. Numeric arrays are read with zarr 3
block by block (bounded memory); object arrays are decoded chunk by chunk with numcodecs
(``vlen-utf8``, ``vlen-bytes``, ``json2``). ``Pickle`` chunks are never unpickled: a
data-only interpreter of the pickle opcodes (:func:`decode_reference_pickle`) accepts
only the object arrays of ``ZarrReference`` dicts that hdmf-zarr writes and refuses
anything that would import or call other code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import pickletools
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ncli.core.errors import DataError, NcliError

log = logging.getLogger("ncli")

_BLOCK_BYTES = 1 << 24  # numeric arrays are copied in blocks of about 16 MiB
_ZARR_ONLY_ATTRS = {"zarr_dtype", "_ARRAY_DIMENSIONS", "zarr_link"}


# ----------------------------------------------------------------------------- detection


def _read_json(path: Path, folder: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot read NWB-Zarr folder: {path.relative_to(folder)} is unreadable or not JSON "
                        f"({exc.__class__.__name__})", str(folder),
                        hint="the .nwb.zarr folder is truncated or corrupt; copy it again") from None
    if not isinstance(data, dict):
        raise DataError(f"cannot read NWB-Zarr folder: {path.relative_to(folder)} is not a JSON object",
                        str(folder))
    return data


def is_nwb_zarr(path: str | Path) -> bool:
    """True when ``path`` is a folder that looks like an NWB file with the Zarr backend.

    A Zarr v2 group (``.zgroup``, or a ``.zattrs``) whose root attributes hold
    ``nwb_version`` or ``neurodata_type == 'NWBFile'``, or any folder named ``*.nwb.zarr``
    that has a ``.zgroup`` or ``.zattrs`` (so that a partial copy gets a precise error from
    :func:`check_nwb_zarr` instead of a "not a suite2p folder" one).
    """
    p = Path(path)
    if not p.is_dir():
        return False
    if not ((p / ".zgroup").is_file() or (p / ".zattrs").is_file()):
        return p.name.lower().endswith(".nwb.zarr")
    if p.name.lower().endswith(".nwb.zarr"):
        return True
    try:
        attrs = json.loads((p / ".zattrs").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(attrs, dict) and ("nwb_version" in attrs or attrs.get("neurodata_type") == "NWBFile")


def check_nwb_zarr(path: str | Path) -> None:
    """Check that ``path`` is a readable NWB 2 Zarr folder, without reading its data.

    Raises
    ------
    DataError
        No ``.zgroup`` (not a Zarr v2 group: a Zarr v3 ``zarr.json`` is named), an unreadable
        ``.zattrs``, no ``nwb_version`` attribute, an NWB version other than 2.x, or no
        ``specifications`` group (the cached namespaces pynwb needs).
    """
    p = Path(path)
    if (p / "zarr.json").is_file() and not (p / ".zgroup").is_file():
        raise DataError("cannot read NWB-Zarr folder: it is a Zarr v3 store (zarr.json); hdmf-zarr writes "
                        "Zarr v2 (.zgroup)", str(p))
    if not (p / ".zgroup").is_file():
        raise DataError("cannot read NWB-Zarr folder: no .zgroup at its root (partial copy or not a Zarr "
                        "group)", str(p), hint="give the .nwb.zarr folder itself, copied completely")
    attrs = _read_json(p / ".zattrs", p) if (p / ".zattrs").is_file() else {}
    version = attrs.get("nwb_version")
    if version is None:
        raise DataError("not an NWB file: the Zarr folder's root has no 'nwb_version' attribute", str(p))
    version = str(version)
    if not version.strip().lstrip("NWB-_ ").startswith("2"):
        raise DataError(f"unsupported NWB version '{version}': ncli reads NWB 2.x files", str(p))
    if not (p / str(attrs.get(".specloc", "specifications")) / ".zgroup").is_file():
        raise DataError("cannot read NWB-Zarr folder: no 'specifications' group (the cached NWB namespaces)",
                        str(p), hint="the folder is incomplete; copy the whole .nwb.zarr folder again")


# ----------------------------------------------------------------------------- pickle (data only)


class _Global:
    """A pickle GLOBAL, kept as a name and never imported."""

    def __init__(self, module: str, name: str):
        self.key = f"{module}.{name}"


class _Stub:
    """The result of applying an allowed pickle global (an object array or its dtype)."""

    def __init__(self, kind: str):
        self.kind, self.shape, self.items = kind, (0,), []


_ALLOWED = {"numpy._core.multiarray._reconstruct": "array", "numpy.core.multiarray._reconstruct": "array",
            "numpy.ndarray": "ndarray", "numpy.dtype": "dtype", "hdmf_zarr.utils.ZarrReference": "reference"}


def decode_reference_pickle(data: bytes, where: str) -> np.ndarray:
    """Decode one hdmf-zarr ``Pickle`` chunk without unpickling it.

    The pickle opcodes are interpreted by a small stack machine that understands only
    containers, scalars and the four globals of an object ``numpy.ndarray`` of
    ``hdmf_zarr.utils.ZarrReference`` dicts; no global is ever imported or called.

    Parameters
    ----------
    data : bytes
        The chunk after decompression (numcodecs ``Pickle`` filter input).
    where : str
        The dataset, for error messages.

    Returns
    -------
    ndarray of object, shape as pickled
        The chunk's elements (dicts ``{"source", "path", ...}``, strings or numbers).

    Raises
    ------
    DataError
        The stream holds any other global, opcode or numeric array payload.
    """
    def refuse(what: str) -> DataError:
        return DataError(f"cannot read NWB-Zarr dataset '{where}': its Pickle chunk holds {what}; ncli never "
                         "unpickles, it decodes only hdmf-zarr's object references", where)

    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list:
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    try:
        ops = list(pickletools.genops(data))
    except Exception as exc:  # noqa: BLE001 - any parse failure is a corrupt chunk
        raise DataError(f"cannot read NWB-Zarr dataset '{where}': corrupt Pickle chunk ({exc})", where) from None
    for op, arg, _pos in ops:
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            break
        if name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
                    "BINSTRING", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BININT", "BININT1", "BININT2",
                    "LONG1", "BINFLOAT"):
            stack.append(arg)
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            stack.append(name == "NEWTRUE")
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            stack.append(memo[int(arg)])
        elif name == "MARK":
            marks.append(len(stack))
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif name == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "APPEND":
            item = stack.pop()
            stack[-1].append(item)
        elif name == "APPENDS":
            items = pop_mark()
            stack[-1].extend(items)
        elif name in ("SETITEM", "SETITEMS"):
            items = [stack.pop(), stack.pop()][::-1] if name == "SETITEM" else pop_mark()
            target = stack[-1]
            if not isinstance(target, dict):
                raise refuse("items set on a non-dict")
            for k in range(0, len(items), 2):
                target[items[k]] = items[k + 1]
        elif name in ("STACK_GLOBAL", "GLOBAL"):
            if name == "GLOBAL":
                module, attr = str(arg).split(" ", 1)
            else:
                attr, module = stack.pop(), stack.pop()
            g = _Global(str(module), str(attr))
            if g.key not in _ALLOWED:
                raise refuse(f"the global '{g.key}'")
            stack.append(g)
        elif name in ("REDUCE", "NEWOBJ"):
            args, func = stack.pop(), stack.pop()
            kind = _ALLOWED.get(getattr(func, "key", ""))
            if kind == "reference" and name == "NEWOBJ":
                stack.append({})
            elif kind == "array" and name == "REDUCE":
                stack.append(_Stub("array"))
            elif kind == "dtype" and name == "REDUCE" and args and args[0] in ("O8", "O4", "O"):
                stack.append(_Stub("dtype"))
            else:
                raise refuse(f"a call of '{getattr(func, 'key', type(func).__name__)}'")
        elif name == "BUILD":
            state, obj = stack.pop(), stack[-1]
            if isinstance(obj, _Stub) and obj.kind == "dtype":
                continue
            if isinstance(obj, _Stub) and obj.kind == "array":
                if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], _Stub)
                        and isinstance(state[4], list)):
                    raise refuse("a non-object numpy array")
                obj.shape, obj.items = tuple(state[1]), state[4]
            elif isinstance(obj, dict) and isinstance(state, dict):
                obj.update(state)
            else:
                raise refuse("an object state it cannot decode")
        else:
            raise refuse(f"the opcode {name}")
    if len(stack) != 1 or not isinstance(stack[0], _Stub) or stack[0].kind != "array":
        raise refuse("something other than an object array")
    arr = np.empty(len(stack[0].items), dtype=object)
    arr[:] = stack[0].items if stack[0].items else []
    if math.prod(stack[0].shape) != arr.size:
        raise refuse("an array whose shape does not match its items")
    return arr.reshape(stack[0].shape)


# ----------------------------------------------------------------------------- Zarr v2 arrays


class _V2Array:
    """One Zarr v2 array of the folder (metadata from ``.zarray``/``.zattrs``)."""

    def __init__(self, folder: Path, rel: str, root: Path):
        self.folder, self.rel, self.root = folder, rel, root
        self.meta = _read_json(folder / ".zarray", root)
        self.attrs = _read_json(folder / ".zattrs", root) if (folder / ".zattrs").is_file() else {}
        try:
            self.shape = tuple(int(s) for s in self.meta["shape"])
            self.chunks = tuple(int(c) for c in self.meta["chunks"])
            self.dtype_spec = self.meta["dtype"]
        except (KeyError, TypeError, ValueError):
            raise DataError(f"cannot read NWB-Zarr dataset '{rel}': malformed .zarray", str(root)) from None
        self.filters = list(self.meta.get("filters") or [])
        self.is_object = self.dtype_spec == "|O"

    def _chunk_key(self, idx: tuple[int, ...]) -> Path:
        sep = self.meta.get("dimension_separator", ".") or "."
        return self.folder / (sep.join(str(i) for i in idx) if idx else "0")

    def read_object(self) -> np.ndarray:
        """All elements of an object array, decoded chunk by chunk with numcodecs."""
        import numcodecs

        out = np.empty(self.shape, dtype=object)
        out[...] = None
        if not self.shape or math.prod(self.shape) == 0:
            shape_chunks = [()] if not self.shape else []
        else:
            shape_chunks = list(np.ndindex(*[math.ceil(s / c) for s, c in zip(self.shape, self.chunks)]))
        compressor = numcodecs.get_codec(self.meta["compressor"]) if self.meta.get("compressor") else None
        for idx in shape_chunks:
            key = self._chunk_key(idx)
            if not key.is_file():
                continue  # a missing chunk holds the fill value
            try:
                buf = key.read_bytes()
                if compressor is not None:
                    buf = compressor.decode(buf)
                values = None
                for spec in reversed(self.filters):
                    fid = spec.get("id")
                    if fid == "pickle":
                        values = decode_reference_pickle(bytes(buf), self.rel)
                    elif fid in ("vlen-utf8", "vlen-bytes", "json2", "json", "vlen-array"):
                        values = numcodecs.get_codec(spec).decode(buf)
                    else:
                        raise DataError(f"cannot read NWB-Zarr dataset '{self.rel}': unsupported object codec "
                                        f"'{fid}'", str(self.root))
                if values is None:
                    raise DataError(f"cannot read NWB-Zarr dataset '{self.rel}': object array without an "
                                    "object codec", str(self.root))
            except NcliError:
                raise
            except Exception as exc:  # noqa: BLE001 - a chunk that does not decode is corrupt
                raise DataError(f"cannot read NWB-Zarr dataset '{self.rel}': chunk {key.name} is corrupt "
                                f"({exc.__class__.__name__})", str(self.root),
                                hint="the .nwb.zarr folder is truncated or corrupt; copy it again") from None
            values = np.asarray(values, dtype=object)
            if self.shape:
                sel = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, self.chunks, self.shape))
                want = tuple(sl.stop - sl.start for sl in sel)
                full = values.reshape(self.chunks) if values.size == math.prod(self.chunks) else None
                if full is None and values.size == math.prod(want):
                    full = values.reshape(want)
                if full is None:
                    raise DataError(f"cannot read NWB-Zarr dataset '{self.rel}': chunk {key.name} holds "
                                    f"{values.size} values, not {math.prod(self.chunks)}", str(self.root))
                out[sel] = full[tuple(slice(0, w) for w in want)]
            else:
                out[()] = values.ravel()[0]
        return out

    def open_numeric(self):
        """The array opened with zarr 3 (numeric and fixed-size dtypes)."""
        import zarr

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return zarr.open_array(str(self.folder), mode="r", zarr_format=2)
            except Exception as exc:  # noqa: BLE001 - zarr's many metadata errors are one cause for the user
                raise DataError(f"cannot read NWB-Zarr dataset '{self.rel}': zarr cannot open it "
                                f"({exc.__class__.__name__}: {str(exc)[:120]})", str(self.root)) from None


# ----------------------------------------------------------------------------- the mirror


def _ref_path(value: Any) -> str | None:
    """The in-file path of an hdmf-zarr reference dict (None when it is not one)."""
    if isinstance(value, dict) and "path" in value and "source" in value:
        return str(value["path"])
    return None


class _Mirror:
    """Copy one NWB-Zarr folder into an open h5py.File with the HDF5 NWB layout."""

    def __init__(self, root: Path, h5: h5py.File):
        self.root, self.h5 = root, h5
        self.pending_refs: list[tuple[str, str, Any]] = []  # (h5 object path, attr name or '', values)
        self.links: list[tuple[str, str]] = []

    def fail(self, msg: str) -> DataError:
        return DataError(f"cannot read NWB-Zarr folder: {msg}", str(self.root))

    def _check_source(self, ref: dict, rel: str) -> str:
        source = str(ref.get("source", "."))
        if source not in (".", "", "./"):
            raise self.fail(f"'{rel}' refers to another file ({source}); external links are not supported")
        path = _ref_path(ref) or "/"
        return path if path.startswith("/") else "/" + path

    def copy_attrs(self, obj, attrs: dict, rel: str) -> None:
        for key, value in attrs.items():
            if key in _ZARR_ONLY_ATTRS:
                continue
            if key == ".specloc":
                self.pending_refs.append((obj.name, key, "/" + str(value).strip("/")))
                continue
            if isinstance(value, dict) and value.get("zarr_dtype") == "object":
                inner = value.get("value")
                refs = inner if isinstance(inner, list) else [inner]
                paths = [self._check_source(r, rel) for r in refs if _ref_path(r) is not None]
                if len(paths) != len(refs):
                    raise self.fail(f"attribute '{key}' of '{rel}' is an object but not a reference")
                self.pending_refs.append((obj.name, key, paths if isinstance(inner, list) else paths[0]))
                continue
            if isinstance(value, dict):
                value = json.dumps(value)
            if isinstance(value, list):
                if value and all(isinstance(v, str) for v in value):
                    value = np.array(value, dtype=h5py.string_dtype())
                elif not value:
                    value = np.array([], dtype=float)
                else:
                    try:
                        value = np.asarray(value)
                    except ValueError:
                        value = json.dumps(value)
                    if value.dtype == object:
                        value = json.dumps(value.tolist())
            if value is None:
                continue
            obj.attrs[key] = value

    def group(self, folder: Path, rel: str, h5g) -> None:
        attrs = _read_json(folder / ".zattrs", self.root) if (folder / ".zattrs").is_file() else {}
        self.copy_attrs(h5g, attrs, rel or "/")
        for link in attrs.get("zarr_link") or []:
            if not isinstance(link, dict) or "name" not in link:
                raise self.fail(f"malformed zarr_link in '{rel or '/'}'")
            self.links.append((f"{h5g.name.rstrip('/')}/{link['name']}", self._check_source(link, rel)))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise self.fail(f"cannot list '{rel or '/'}' ({exc.__class__.__name__})") from None
        for entry in entries:
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            sub = Path(entry.path)
            sub_rel = f"{rel}/{entry.name}" if rel else entry.name
            if (sub / ".zarray").is_file():
                self.dataset(_V2Array(sub, sub_rel, self.root), h5g, entry.name)
            elif (sub / ".zgroup").is_file():
                self.group(sub, sub_rel, h5g.create_group(entry.name))
            else:
                raise self.fail(f"'{sub_rel}' has neither .zgroup nor .zarray (partial copy?)")

    def dataset(self, a: _V2Array, h5g, name: str) -> None:
        ztype = a.attrs.get("zarr_dtype")
        scalar = ztype == "scalar" and a.shape in ((1,), ())
        if a.is_object:
            values = a.read_object()
            flat = values.ravel()
            if any(_ref_path(v) is not None for v in flat if v is not None):
                paths = np.array([self._check_source(v, a.rel) if _ref_path(v) is not None else ""
                                  for v in flat], dtype=object).reshape(values.shape)
                ds = h5g.create_dataset(name, shape=() if scalar else values.shape, dtype=h5py.ref_dtype)
                self.pending_refs.append((ds.name, "", paths[0] if scalar else paths))
            else:
                text = np.array([_as_text(v) for v in flat], dtype=object).reshape(values.shape)
                data = text.ravel()[0] if scalar else text
                ds = h5g.create_dataset(name, data=data, dtype=h5py.string_dtype())
        elif isinstance(a.dtype_spec, list):
            raise self.fail(f"dataset '{a.rel}' has a compound type ({len(a.dtype_spec)} fields), which the Zarr "
                            "reader does not support yet")
        else:
            z = a.open_numeric()
            if scalar:
                ds = h5g.create_dataset(name, data=np.asarray(z[...]).reshape(-1)[0])
            else:
                ds = self._copy_blocks(z, h5g, name, a)
        self.copy_attrs(ds, a.attrs, a.rel)

    def _copy_blocks(self, z, h5g, name: str, a: _V2Array):
        dtype = np.dtype(z.dtype.to_native_dtype() if hasattr(z.dtype, "to_native_dtype") else z.dtype)
        if dtype.kind in "OUT":  # fixed-width strings read as text
            data = np.asarray(z[...])
            return h5g.create_dataset(name, data=np.array([_as_text(v) for v in data.ravel()], dtype=object)
                                      .reshape(data.shape), dtype=h5py.string_dtype())
        shape = a.shape
        chunks = True if shape and 0 not in shape else None
        ds = h5g.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks)
        if not shape or 0 in shape:
            if not shape:
                ds[()] = z[...]
            return ds
        row = max(1, math.prod(shape[1:]) * dtype.itemsize)
        chunk_rows = max(1, a.chunks[0] if a.chunks else shape[0])
        # whole Zarr chunks per block (a chunk is decoded once), about _BLOCK_BYTES, at least one chunk
        step = max(1, _BLOCK_BYTES // row) // chunk_rows * chunk_rows or chunk_rows
        for start in range(0, shape[0], step):
            stop = min(shape[0], start + step)
            try:
                ds[start:stop] = z[start:stop]
            except NcliError:
                raise
            except Exception as exc:  # noqa: BLE001 - a chunk zarr cannot decode is corrupt
                raise DataError(f"cannot read NWB-Zarr dataset '{a.rel}': rows {start}-{stop} do not decode "
                                f"({exc.__class__.__name__})", str(self.root),
                                hint="the .nwb.zarr folder is truncated or corrupt; copy it again") from None
        return ds

    def finish(self) -> None:
        for name, target in self.links:
            if target not in self.h5:
                raise self.fail(f"link '{name}' points to '{target}', which the folder lacks")
            self.h5[name] = h5py.SoftLink(target)
        for obj_name, attr, value in self.pending_refs:
            obj = self.h5[obj_name]
            refs = self._refs(value, obj_name)
            if attr:
                obj.attrs.create(attr, refs, dtype=h5py.ref_dtype)
            else:
                obj[...] = refs

    def _refs(self, value: Any, where: str):
        if isinstance(value, str):
            return self._ref(value, where)
        flat = [self._ref(p, where) for p in np.asarray(value, dtype=object).ravel()]
        out = np.empty(len(flat), dtype=h5py.ref_dtype)
        out[:] = flat
        return out.reshape(np.shape(value))

    def _ref(self, path: str, where: str):
        if not path:
            return h5py.Reference()
        if path not in self.h5:
            raise self.fail(f"'{where}' refers to '{path}', which the folder lacks")
        return self.h5[path].ref


def _as_text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return "" if v is None else str(v)


@contextlib.contextmanager
def hdf5_mirror(path: str | Path) -> Iterator[str]:
    """A temporary HDF5 copy of an NWB-Zarr folder with the HDF5 NWB layout.

    The copy lies in a fresh temporary directory (``$TMPDIR``), never next to the input,
    and is removed on exit, also on errors and Ctrl-C. The input is only read.

    Parameters
    ----------
    path : str or Path
        The ``.nwb.zarr`` folder.

    Yields
    ------
    str
        Path of the HDF5 file (named after the folder, e.g. ``session.nwb``).

    Raises
    ------
    DataError
        See :func:`check_nwb_zarr`; plus a corrupt chunk or metadata file, a dataset type the
        reader does not support (compound, unknown codec, a Pickle chunk that is not
        hdmf-zarr's references), a reference or link to a missing object or another file.
        Errors name the input folder, never the temporary copy.
    """
    root = Path(path)
    check_nwb_zarr(root)
    tmpdir = tempfile.mkdtemp(prefix="ncli-nwbzarr-")
    stem = root.name[:-5] if root.name.lower().endswith(".zarr") else root.name
    target = os.path.join(tmpdir, stem or "session.nwb")
    try:
        with h5py.File(target, "w") as h5:
            m = _Mirror(root, h5)
            m.group(root, "", h5)
            m.finish()
        log.debug("NWB-Zarr %s mirrored to %s (%d bytes)", root, target, os.path.getsize(target))
        try:
            yield target
        except NcliError as err:
            if err.where and target in str(err.where):
                err.where = str(root)
            err.what = str(err.what).replace(target, str(root))
            raise
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
