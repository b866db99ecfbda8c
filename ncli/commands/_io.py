"""Inputs and outputs of a command: opening input stores, the run cache, writing the result layer.

:func:`open_input` resolves the STORE argument (or stdin) and validates the
store; :func:`open_inputs` opens further stores a command reads
(``embed --train-with``); :func:`write_result` / :func:`write_job` build the
output layer atomically, or return the cached one, and print its location
(the one line of stdout).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Callable

from ncli import __version__
from ncli.core.errors import DataError, StoreError, UsageError
from ncli.formats.pipe import emit_location, read_location
from ncli.formats.store import Store, StoreWriter, jsonable, normalize_location, validate

log = logging.getLogger("ncli")



def open_input(argument: str | None, *, check: bool = True) -> Store:
    """Resolve the STORE argument (or stdin) and open the store with its parents.

    With ``check`` (the default) the store is validated against schema 1 first,
    so a damaged or inconsistent store is one clear error instead of a failure
    deep inside a model.

    Raises
    ------
    UsageError
        No store given and stdin is a terminal or empty.
    StoreError
        The store or a parent is missing, or the store fails validation.
    """
    store = Store.open(read_location(argument))
    if check:
        problems = validate(store)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise StoreError(f"store does not match schema 1: {problems[0]}{more}", store.location,
                             hint="`ncli info --check` lists every problem")
    return store


def open_inputs(locations: list[str] | None, *, option: str, input: Store | None = None,
                why: str = "they would be read twice", check: bool = True) -> list[Store]:
    """Open the further stores named by a repeatable option (``embed --train-with STORE ...``).

    Each location is opened like the input (:func:`open_input`, with its
    parents). Stdin is the input store's, so an empty location or ``-`` is
    refused; so is a store that shares a layer with ``input`` or with another
    store of the list (its sessions would count twice), and a store without
    sessions.

    Parameters
    ----------
    locations : list of str or None
        The option's values, in order (None: none given).
    option : str
        The option's flag, for the messages (``--train-with``).
    input : Store, optional
        The command's input store, whose layers the others must not share.
    why : str
        What sharing a layer would do, for the message.
    check : bool
        Validate each store against schema 1 (as :func:`open_input`).

    Returns
    -------
    list of Store
        In the order given.

    Raises
    ------
    UsageError
        An empty or ``-`` location, or a store that shares a layer with the input or another one.
    StoreError
        A store or a parent is missing or damaged.
    DataError
        A store has no sessions.
    """
    locations = list(locations or [])
    if any(not str(loc).strip() or str(loc).strip() == "-" for loc in locations):
        raise UsageError(f"{option} needs a store location (stdin is the input store's)", option)
    stores = [open_input(loc, check=check) for loc in locations]
    seen = {layer.meta.get("id", layer.location) for layer in input.layers} if input is not None else set()
    for other in stores:
        ids = {layer.meta.get("id", layer.location) for layer in other.layers}
        if ids & seen:
            raise UsageError(f"{option} names a store that shares its sessions with the input or with another "
                             f"{option} store; {why}", other.location)
        seen |= ids
        if not other.sessions():
            raise DataError("store has no sessions", other.location)
    return stores


def cache_dir() -> Path:
    """The run cache: ``$NCLI_CACHE`` or the user cache directory of ncli."""
    env = os.environ.get("NCLI_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("ncli"))


def cache_key(command: str, params: dict, inputs: list[str]) -> str:
    """Hash of (command, parameters incl. seed, input identities, ncli version)."""
    blob = json.dumps(
        {"command": command, "params": jsonable(params), "inputs": list(inputs), "version": __version__},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def file_identity(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes (streamed), used for source provenance and cache keys."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _usable_cache(target: str, parent: Store | None) -> bool:
    """True when ``target`` holds a readable cached result computed from ``parent`` itself."""
    if not Path(target).exists():
        return False
    try:
        cached = Store.open(target)
    except StoreError:
        log.info("cached result %s is unreadable; recomputing", target)
        return False
    if parent is None:
        return True
    if len(cached.layers) < 2 or cached.layers[1].location != parent.location \
            or cached.layers[1].meta.get("id") != parent.id:
        log.info("cached result %s was computed from another input; recomputing", target)
        return False
    return True


def write_result(
    command: str,
    *,
    parent: Store | None,
    params: dict,
    build: Callable[[StoreWriter], None],
    output: str | None,
    overwrite: bool = False,
    no_cache: bool = False,
    inputs: list[str] | None = None,
    identity: list[str] | None = None,
    protect: list[str] | None = None,
) -> str:
    """Build a new store layer and print its location (the one line of stdout).

    Parameters
    ----------
    command : str
        Command name, recorded in history and used in the cache key.
    parent : Store or None
        The input store (``None`` for ``convert``/``simulate``).
    params : dict
        Every parameter that changes the result (including the seed).
    build : callable
        ``build(writer)`` writes the layer's arrays.
    output, overwrite, no_cache
        The ``-o``, ``--overwrite`` and ``--no-cache`` options.
    inputs : list of str, optional
        Input locations recorded in history (default: the parent's location).
    identity : list of str, optional
        Input identities for the cache key (default: the parent's id).
    protect : list of str, optional
        Further locations the output must never replace (the inputs, the
        parent and its layers are always protected).

    Returns
    -------
    str
        The output location.
    """
    inputs = inputs if inputs is not None else ([parent.location] if parent else [])
    # a copied store keeps its layer id, so the location is part of the identity too
    identity = identity if identity is not None else ([parent.id, parent.location] if parent else [])
    if output:
        target = normalize_location(output)
        replace = overwrite
    else:
        directory = cache_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the run cache directory: {exc.strerror or exc}", str(directory),
                             hint="set NCLI_CACHE to a writable directory, or pass -o") from None
        target = str(directory / f"{command}-{cache_key(command, params, identity)}.zarr")
        replace = True
        if not no_cache and _usable_cache(target, parent):
            log.info("ncli %s: using cached result (--no-cache recomputes)", command)
            emit_location(target)
            return target
    argv = sys.argv[1:] if os.path.basename(sys.argv[0]).startswith("ncli") else [command]
    with StoreWriter(target, parent=parent, command=command, argv=argv, params=params,
                     inputs=inputs, overwrite=replace, protect=list(inputs) + list(protect or [])) as writer:
        build(writer)
    emit_location(target)
    return target


def write_job(command: str, parent: Store | None, job, *, output: str | None, overwrite: bool = False,
              no_cache: bool = False) -> str:
    """:func:`write_result` for a method's :class:`~ncli.methods.results.Job` (its params, build and inputs).

    Returns
    -------
    str
        The output location (also printed: the one line of stdout).
    """
    return write_result(command, parent=parent, params=job.params, build=job.build, output=output,
                        overwrite=overwrite, no_cache=no_cache, inputs=job.inputs, identity=job.identity,
                        protect=job.protect)


def refuse_taken_name(src: Store, name: str, paths: list[str], what: str) -> None:
    """Refuse a result name whose layer paths ``paths`` already exist in ``src`` (they would mix).

    Raises
    ------
    UsageError
        Naming ``what`` (e.g. "chunks") and the first path that exists.
    """
    taken = [p for p in paths if src.exists(p)]
    if taken:
        raise UsageError(f"the input already holds {what} named '{name}' ({taken[0]})", "--name",
                         hint="choose another --name; a layer of the same name would mix with the earlier result")
