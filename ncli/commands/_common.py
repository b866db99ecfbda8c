"""Glue shared by every command: options, error reporting, the run cache, output.

A command body looks like::

    @ncli_command("embed")
    def embed(store: InputStore = None, ..., output: Output = None, overwrite: Overwrite = False,
              no_cache: NoCache = False, quiet: Quiet = False, debug: Debug = False):
        src = open_input(store)
        def build(w: StoreWriter): ...
        write_result("embed", parent=src, params={...}, build=build,
                     output=output, overwrite=overwrite, no_cache=no_cache)

``ncli_command`` turns every :class:`~ncli.core.errors.NcliError` into one line
on stderr and the right exit code, handles Ctrl-C and SIGTERM (the store
writer removes partial output), and sets up logging on stderr.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import logging
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Callable, Optional

import numpy as np
import typer

from ncli import __version__
from ncli.core import progress as _progress
from ncli.core.errors import DataError, NcliError, ParameterError, StoreError, TemplatedError, UsageError
from ncli.formats.pipe import emit_location, read_location
from ncli.formats.store import Store, StoreWriter, jsonable, normalize_location, validate

log = logging.getLogger("ncli")
_ORIGINAL_SHOWWARNING = warnings.showwarning

# ----------------------------------------------------------------------------- option types

InputStore = Annotated[
    Optional[str],
    typer.Argument(help="Input store (path or URL); '-' or omitted: read its location from stdin.",
                   show_default=False),
]
Output = Annotated[
    Optional[str],
    typer.Option("--output", "-o", help="Output store location. Default: the run cache ($NCLI_CACHE).",
                 show_default=False),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing -o target.")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Recompute even when the run cache holds this result.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr; no progress bars.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")]
Seed = Annotated[int, typer.Option("--seed", min=0, help="Random seed (>= 0); the same seed gives the same result.")]
Device = Annotated[str, typer.Option("--device", help="Torch device: cpu, cuda or auto.")]


# ----------------------------------------------------------------------------- error handling

#: parameter name -> flag, for showing a model's ParameterError with the command's flag
FLAGS: contextvars.ContextVar[dict] = contextvars.ContextVar("ncli_flags", default={})


def set_flags(mapping: dict[str, str]) -> None:
    """Add ``{parameter name: flag}`` pairs used to render :class:`ParameterError` (e.g. ``n_units`` -> ``--units``)."""
    FLAGS.set({**FLAGS.get(), **mapping})


def flag_of(name: str) -> str:
    """The flag for a parameter name: the registered one, else ``--`` + the name with dashes."""
    return FLAGS.get().get(name) or "--" + name.replace("_", "-")


class Terminated(BaseException):
    """Raised from the SIGTERM handler so cleanup runs as for Ctrl-C."""


def _on_sigterm(signum, frame):  # pragma: no cover - exercised through subprocess tests
    raise Terminated()


def format_error(command: str, err: NcliError) -> str:
    """The one-line message for ``err``: ``ncli <command>: error: <what> (<where>)[; hint: ...]``."""
    line = f"ncli {command}: error: {err.what}"
    if err.where:
        line += f" ({err.where})"
    if err.hint:
        line += f"; hint: {err.hint}"
    return line.replace("\n", " ")


def setup_logging(quiet: bool = False, debug: bool = False) -> None:
    """Route the ``ncli`` logger to stderr at INFO (WARNING with ``--quiet``, DEBUG with ``--debug``)."""
    logger = logging.getLogger("ncli")
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO))
    _progress.configure(enabled=not quiet)
    # Python warnings (numpy, sklearn, pynwb) become one line each on the same handler
    warnings.showwarning = _show_warning if not debug else _ORIGINAL_SHOWWARNING


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = str(message).replace("\n", " ").strip()
    logging.getLogger("ncli").warning("warning: %s (%s)", text, category.__name__)


def ncli_command(name: str) -> Callable:
    """Decorate a Typer command body with ncli's error, signal and logging conventions."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            quiet = bool(kwargs.get("quiet", False))
            debug = bool(kwargs.get("debug", False)) or os.environ.get("NCLI_DEBUG") == "1"
            setup_logging(quiet, debug)
            FLAGS.set({})
            previous = None
            try:
                previous = signal.signal(signal.SIGTERM, _on_sigterm)
            except ValueError:  # not in the main thread
                previous = None
            try:
                return fn(*args, **kwargs)
            except (typer.Exit, typer.Abort):
                raise
            except TemplatedError as err:  # ParameterError, ParameterDataError: parameter names -> flags
                if debug:
                    traceback.print_exc(file=sys.stderr)
                print(format_error(name, err.render(flag_of)), file=sys.stderr)
                raise typer.Exit(err.exit_code) from None
            except NcliError as err:
                if debug:
                    traceback.print_exc(file=sys.stderr)
                print(format_error(name, err), file=sys.stderr)
                raise typer.Exit(err.exit_code) from None
            except KeyboardInterrupt:
                print(f"ncli {name}: error: interrupted; no output was written", file=sys.stderr)
                raise typer.Exit(130) from None
            except Terminated:
                print(f"ncli {name}: error: terminated; no output was written", file=sys.stderr)
                raise typer.Exit(143) from None
            except BrokenPipeError:
                # the reader of our stdout went away (e.g. `ncli info | head`): exit like SIGPIPE
                try:
                    sys.stdout = open(os.devnull, "w")
                except OSError:
                    pass
                raise typer.Exit(141) from None
            except MemoryError:
                print(f"ncli {name}: error: out of memory", file=sys.stderr)
                raise typer.Exit(1) from None
            except Exception as exc:  # an ncli bug or an unforeseen data problem
                if type(exc).__module__.split(".")[0] in ("click", "typer"):
                    raise  # Typer's own usage errors (exit 2)
                if debug:
                    traceback.print_exc(file=sys.stderr)
                msg = str(exc).replace("\n", " ")
                print(f"ncli {name}: error: {exc.__class__.__name__}: {msg}; hint: run with --debug "
                      "for the traceback and report it if the input looks valid", file=sys.stderr)
                raise typer.Exit(1) from None
            finally:
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)

        return wrapper

    return decorate


# ----------------------------------------------------------------------------- inputs


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


def finite(value: float | None, option: str, *, minimum: float | None = None, positive: bool = False,
           maximum: float | None = None) -> float | None:
    """Check a numeric option: finite, and within bounds when given (UsageError otherwise)."""
    if value is None:
        return None
    if not np.isfinite(value):
        raise UsageError(f"{option} must be a finite number, got {value}", option)
    if positive and value <= 0:
        raise UsageError(f"{option} must be > 0, got {value:g}", option)
    if minimum is not None and value < minimum:
        raise UsageError(f"{option} must be >= {minimum:g}, got {value:g}", option)
    if maximum is not None and value > maximum:
        raise UsageError(f"{option} must be <= {maximum:g}, got {value:g}", option)
    return float(value)


# ----------------------------------------------------------------------------- run cache


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


def choice(value: str, allowed: list[str], option: str) -> str:
    """Validate a string option against its allowed values (UsageError otherwise)."""
    if value not in allowed:
        raise UsageError(f"invalid value '{value}' for {option}", option,
                         hint=f"choose one of: {', '.join(allowed)}")
    return value


def check_result_name(name: str | None) -> None:
    """Refuse a ``--name`` that is not one store path component (empty, with '/', or starting with '.').

    Raises
    ------
    UsageError
    """
    if name is not None and (not name.strip() or "/" in name or name.startswith(".")):
        raise UsageError(f"invalid --name '{name}' (one path component, not starting with '.')", "--name")


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
