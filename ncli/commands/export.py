"""``ncli export --flatten``: materialise a layered store into one self-contained store."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer

from ncli.commands._io import open_input, write_result
from ncli.commands._options import Debug, InputStore, NoCache, Output, Overwrite, Quiet
from ncli.commands._runtime import ncli_command
from ncli.core.errors import UsageError
from ncli.core.progress import progress
from ncli.formats.store import Store, StoreWriter, as_str_array


def _groups(store: Store, path: str = "") -> list[str]:
    out = []
    for name in store.children(path):
        sub = f"{path}/{name}".strip("/")
        if not store.is_array(sub):
            out.append(sub)
            out.extend(_groups(store, sub))
    return out


def flatten_into(store: Store, w: StoreWriter) -> int:
    """Copy every array and group attribute visible through ``store``'s layers into ``w``.

    Arrays are copied block by block along their first axis with the source's
    chunking, so memory stays bounded. The parent chain is not kept: the result
    has no parent, but its history holds the full chain of commands.

    Returns
    -------
    int
        Number of arrays copied.
    """
    for gpath in _groups(store):
        w.group(gpath, store.attrs(gpath))
    arrays = list(store.walk())
    for path, src in progress(arrays, total=len(arrays), desc="arrays"):
        attrs = dict(src.attrs)
        if src.dtype.kind in ("U", "O", "T") or str(src.dtype).startswith("StringDType"):
            dst = w.array(path, as_str_array(src[...]))
        else:
            dst = w.create(path, src.shape, src.dtype, chunks=src.chunks, fill_value=src.fill_value)
            if src.ndim == 0:
                dst[...] = src[...]
            else:
                row_bytes = int(np.prod(src.shape[1:], dtype=np.int64)) * src.dtype.itemsize
                step = src.chunks[0] * max(1, (8 << 20) // max(1, row_bytes * src.chunks[0]))
                for lo in range(0, src.shape[0], step):
                    dst[lo : lo + step] = src[lo : lo + step]
        if attrs:
            dst.attrs.update(attrs)
    return len(arrays)


@ncli_command("export")
def export(
    store: InputStore = None,
    flatten: Annotated[bool, typer.Option("--flatten", help="Copy all layers into one self-contained store.")] = False,
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Materialise a layered store (a result and all its parents) into one store with no parent.

    The history of every layer is kept, so the flattened store can still be traced
    to the exact chain of commands that made it.
    """
    if not flatten:
        raise UsageError("nothing to export", "export", hint="use --flatten -o OUT.zarr")
    src = open_input(store)

    def build(w: StoreWriter) -> None:
        flatten_into(src, w)
        meta = dict(w.root.attrs["ncli"])
        meta["history"] = src.history + meta["history"][-1:]
        meta["flattened_from"] = [layer.location for layer in src.layers]
        w.root.attrs["ncli"] = meta

    write_result("export", parent=None, params={"flatten": True}, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache, inputs=[src.location], identity=[src.id, src.location],
                 protect=[layer.location for layer in src.layers])
