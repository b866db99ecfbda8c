"""``ncli merge A B ... -o OUT``: the sessions of several stores in one self-contained store.

Files converted with different options (a MATLAB file binned with ``--time``,
another with ``--bin-size``) end up in different stores; commands that work
across sessions (``align``, ``fit-lds``, ``decode --train-sessions``) read one
store. ``merge`` copies every session of every input, with everything visible
through its parent chain (units, binned, behaviour, trials, latents, ...),
into one new store with no parent, like ``export --flatten``:

- session ids stay unique: the first store to hold an id keeps it, a later
  session of the same id becomes ``<id>_2`` (``_3``, ...), with a warning;
- ``--rename-behavior OLD=NEW`` renames a behaviour (``behavior/OLD`` and
  ``binned/behavior/OLD``) in every session that has it, so sessions whose
  files named the same variable differently can be aligned on it;
- provenance: the root history is every input's history, in input order, then
  the ``merge`` entry; ``attrs.ncli.merged_from`` lists each input's location,
  layer id, layers, history and session renaming; each session's attribute
  ``merged_from`` names the store and the session id it came from;
- ``models/`` and anything else outside ``sessions/`` is not carried (a
  warning names it): a model fitted on one store's sessions does not describe
  the merged set.

Arrays are copied block by block with their source chunking, so memory stays
bounded; the output is written atomically (no partial store on error) and
the inputs are never modified. See docs/commands/merge.md.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

import numpy as np
import typer

from ncli.commands._io import open_input, write_result
from ncli.commands._options import Debug, NoCache, Output, Overwrite, Quiet
from ncli.commands._runtime import ncli_command
from ncli.core.errors import DataError, UsageError
from ncli.core.progress import progress
from ncli.formats.store import Store, StoreWriter, as_str_array

log = logging.getLogger("ncli")

#: Bytes read per block when copying a numeric array.
COPY_BLOCK_BYTES = 8 << 20
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def parse_renames(specs: list[str] | None) -> dict[str, str]:
    """Parse ``--rename-behavior OLD=NEW`` values into ``{OLD: NEW}``.

    Raises
    ------
    UsageError
        A value without ``=``, an empty or non-path-safe name, OLD == NEW, or
        the same OLD (or NEW) given twice.
    """
    out: dict[str, str] = {}
    for spec in specs or []:
        old, sep, new = str(spec).partition("=")
        old, new = old.strip(), new.strip()
        if not sep or not old or not new:
            raise UsageError(f"invalid --rename-behavior '{spec}'", "--rename-behavior",
                             hint="use OLD=NEW, e.g. --rename-behavior hand_velocity=velocity")
        for name in (old, new):
            if not _NAME.match(name) or name.startswith("."):
                raise UsageError(f"invalid behaviour name '{name}' in --rename-behavior", "--rename-behavior",
                                 hint="letters, digits, '_', '.', '-'; not starting with '.'")
        if old == new:
            raise UsageError(f"--rename-behavior {spec} renames a behaviour to itself", "--rename-behavior")
        if old in out:
            raise UsageError(f"--rename-behavior names '{old}' twice", "--rename-behavior")
        if new in out.values():
            raise UsageError(f"--rename-behavior gives two behaviours the name '{new}'", "--rename-behavior")
        out[old] = new
    return out


def plan_session_ids(stores: list[Store]) -> list[dict[str, str]]:
    """New session id of every session, per store: ``[{old id: new id}, ...]`` in input order.

    The first store to hold an id keeps it; a later session with a taken id
    gets ``<id>_2``, ``<id>_3``, ... (the first free one; never an id that
    a later store keeps).
    """
    keep: set[str] = set()  # ids kept by the first store that holds them
    first: list[set[str]] = []
    for store in stores:
        own = {sid for sid in store.sessions() if sid not in keep}
        keep |= own
        first.append(own)
    taken = set(keep)
    plan: list[dict[str, str]] = []
    for store, own in zip(stores, first):
        mapping: dict[str, str] = {}
        for sid in store.sessions():
            new, k = sid, 2
            if sid not in own:
                while new in taken:
                    new, k = f"{sid}_{k}", k + 1
                taken.add(new)
            mapping[sid] = new
        plan.append(mapping)
    return plan


def _rename(rel: str, attrs: dict, renames: dict[str, str]) -> tuple[str, dict]:
    """Path and attributes of a session-relative node after the behaviour renames.

    ``behavior/OLD[/...]`` and ``binned/behavior/OLD`` become ``.../NEW``; in
    their attributes the default column names ``OLD_k`` become ``NEW_k``.
    Other paths are returned unchanged.
    """
    parts = rel.split("/")
    at = 1 if parts[0] == "behavior" else 2 if parts[:2] == ["binned", "behavior"] else None
    if at is None or len(parts) <= at or parts[at] not in renames:
        return rel, attrs
    old, new = parts[at], renames[parts[at]]
    parts[at] = new
    cols = attrs.get("columns")
    if isinstance(cols, list):
        attrs = dict(attrs, columns=[f"{new}{c[len(old):]}" if isinstance(c, str) and c.startswith(f"{old}_")
                                     else c for c in cols])
    return "/".join(parts), attrs


def _subtree(store: Store, path: str) -> tuple[list[str], list[str]]:
    """(groups, arrays) below ``path`` (paths relative to it), over all layers; groups parent first."""
    groups: list[str] = []
    arrays: list[str] = []

    def visit(rel: str) -> None:
        for name in store.children(f"{path}/{rel}".rstrip("/")):
            sub = f"{rel}/{name}".strip("/")
            if store.is_array(f"{path}/{sub}"):
                arrays.append(sub)
            else:
                groups.append(sub)
                visit(sub)

    visit("")
    return groups, arrays


def copy_array(src, w: StoreWriter, path: str, *, attrs: dict | None = None) -> None:
    """Copy one Zarr array into ``w`` at ``path``, block by block along its first axis.

    Numeric arrays keep their dtype, chunking and fill value and are read in
    blocks of whole chunks of about :data:`COPY_BLOCK_BYTES`, so memory is
    bounded by the block, not the array. String arrays (unit ids, areas,
    trial labels: small) are copied whole.
    """
    attrs = dict(src.attrs) if attrs is None else attrs
    if src.dtype.kind in ("U", "O", "T") or str(src.dtype).startswith("StringDType"):
        dst = w.array(path, as_str_array(src[...]))
    else:
        dst = w.create(path, src.shape, src.dtype, chunks=src.chunks, fill_value=src.fill_value)
        if src.ndim == 0:
            dst[...] = src[...]
        else:
            row_bytes = int(np.prod(src.shape[1:], dtype=np.int64)) * src.dtype.itemsize
            step = src.chunks[0] * max(1, COPY_BLOCK_BYTES // max(1, row_bytes * src.chunks[0]))
            for lo in range(0, src.shape[0], step):
                dst[lo: lo + step] = src[lo: lo + step]
    if attrs:
        dst.attrs.update(attrs)


def copy_session(store: Store, sid: str, w: StoreWriter, new_sid: str, renames: dict[str, str],
                 provenance: dict) -> int:
    """Copy ``sessions/<sid>`` of ``store`` (all layers) to ``sessions/<new_sid>`` of ``w``.

    Parameters
    ----------
    store : Store
        An input store (read through its parent chain).
    sid, new_sid : str
        Session id in the input and in the output.
    renames : dict
        ``{OLD: NEW}`` behaviour names.
    provenance : dict
        Written as the session attribute ``merged_from``.

    Returns
    -------
    int
        Number of arrays copied.

    The renames are checked beforehand (:func:`check_renames`).
    """
    base = f"sessions/{sid}"
    groups, arrays = _subtree(store, base)
    w.group(f"sessions/{new_sid}", {**store.attrs(base), "merged_from": provenance})
    for rel in groups:
        out, attrs = _rename(rel, store.attrs(f"{base}/{rel}"), renames)
        w.group(f"sessions/{new_sid}/{out}", attrs)
    for rel in arrays:
        src = store.array(f"{base}/{rel}")
        out, attrs = _rename(rel, dict(src.attrs), renames)
        copy_array(src, w, f"sessions/{new_sid}/{out}", attrs=attrs)
    return len(arrays)


def check_renames(stores: list[Store], renames: dict[str, str]) -> None:
    """Refuse renames that name no behaviour, or that would land on a behaviour a session already has.

    Raises
    ------
    UsageError
        OLD is a behaviour of no session (``behavior/`` or ``binned/behavior/``);
        a session holding OLD also holds NEW.
    """
    found: set[str] = set()
    for store in stores:
        for sid in store.sessions():
            for layer in ("behavior", "binned/behavior"):
                have = set(store.children(f"sessions/{sid}/{layer}"))
                for old, new in renames.items():
                    if old in have and new in have:
                        raise UsageError(f"--rename-behavior {old}={new}: session '{sid}' already has a "
                                         f"behaviour '{new}'", store.location)
                found |= have & set(renames)
    missing = [old for old in renames if old not in found]
    if missing:
        raise UsageError(f"--rename-behavior: no session has a behaviour '{missing[0]}'", "--rename-behavior")


def _resolve_inputs(stores: list[str] | None) -> list[str]:
    """The input locations, with at most one ``-`` read from stdin (UsageError otherwise)."""
    stores = [str(s) for s in (stores or [])]
    if sum(1 for s in stores if s.strip() in ("-", "")) > 1:
        raise UsageError("only one input may be '-' (stdin holds one store location)", "argument STORE")
    if len(stores) < 2:
        raise UsageError(f"merge needs at least two stores, got {len(stores)}", "argument STORE",
                         hint="ncli merge A.zarr B.zarr -o AB.zarr ('-' reads one location from stdin)")
    return stores


@ncli_command("merge")
def merge(
    stores: Annotated[list[str] | None, typer.Argument(
        help="Input stores (two or more); '-' reads one location from stdin.", show_default=False,
        metavar="STORE")] = None,
    rename_behavior: Annotated[list[str] | None, typer.Option(
        "--rename-behavior", metavar="OLD=NEW", help="Rename behaviour OLD to NEW in every session that has it "
        "(behavior/ and binned/behavior/). Repeatable.", show_default=False)] = None,
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Merge the sessions of several stores into one self-contained store.

    \b
    Example:
      ncli merge m1.zarr s1.zarr --rename-behavior hand_velocity=velocity -o reach.zarr
      ncli align reach.zarr --method candy --behavior velocity

    Session ids stay unique (a later duplicate becomes <id>_2, with a warning); models/ are not
    carried. The history holds every input's history, then this merge. Prints the output location.
    """
    locations = _resolve_inputs(stores)
    renames = parse_renames(rename_behavior)
    srcs = [open_input(loc) for loc in locations]
    seen: dict[str, str] = {}
    for src in srcs:
        if not src.sessions():
            raise DataError("store has no sessions", src.location)
        for layer in src.layers:
            key = str(layer.meta.get("id", layer.location))
            if key in seen and seen[key] != src.location:
                raise UsageError("two inputs share a layer (one is the other, a copy of it or built on it); "
                                 "its sessions would be merged twice", src.location,
                                 hint=f"also shared by {seen[key]}")
            if key in seen:
                raise UsageError("store given twice", src.location)
        for layer in src.layers:
            seen[str(layer.meta.get("id", layer.location))] = src.location
    check_renames(srcs, renames)
    plan = plan_session_ids(srcs)

    def build(w: StoreWriter) -> None:
        for src, mapping in zip(srcs, plan):  # here, once the output location has been accepted
            for old, new in mapping.items():
                if old != new:
                    log.warning("warning: session '%s' of %s is renamed '%s' (the id is taken by an earlier input)",
                                old, src.location, new)
            others = [name for name in src.children("") if name != "sessions"]
            if others:
                log.warning("warning: merge copies sessions only: %s of %s not carried",
                            ", ".join(f"{n}/" for n in others), src.location)
        jobs = [(src, sid, new) for src, mapping in zip(srcs, plan) for sid, new in mapping.items()]
        n_arrays = 0
        for src, sid, new in progress(jobs, total=len(jobs), desc="sessions"):
            n_arrays += copy_session(src, sid, w, new, renames,
                                     {"store": src.location, "store_id": src.id, "session": sid})
        meta = dict(w.root.attrs["ncli"])
        meta["history"] = [h for src in srcs for h in src.history] + meta["history"][-1:]
        meta["merged_from"] = [{"location": src.location, "id": src.id,
                                "layers": [layer.location for layer in src.layers],
                                "sessions": mapping, "history": src.history}
                               for src, mapping in zip(srcs, plan)]
        w.root.attrs["ncli"] = meta
        log.info("merged %d sessions (%d arrays) from %d stores", len(jobs), n_arrays, len(srcs))

    params = {"inputs": [src.location for src in srcs], "rename_behavior": renames,
              "sessions": [mapping for mapping in plan]}
    write_result("merge", parent=None, params=params, build=build, output=output, overwrite=overwrite,
                 no_cache=no_cache, inputs=[src.location for src in srcs],
                 identity=[v for src in srcs for v in (src.id, src.location)],
                 protect=[layer.location for src in srcs for layer in src.layers])
