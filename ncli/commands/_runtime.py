"""The runtime of a command: one-line errors, exit codes, signals, logging on stderr.

A command body looks like::

    @ncli_command("embed")
    @method_command("embed")
    def embed(store: InputStore = None, ..., output: Output = None, ..., *, plan: Plan):
        src = open_input(store)
        write_job("embed", src, plan.build().job(...), output=output, ...)

``ncli_command`` turns every :class:`~ncli.core.errors.NcliError` into one line
on stderr and the right exit code (a model's
:class:`~ncli.core.errors.ParameterError` is shown with the command's flag,
:data:`FLAGS`), handles Ctrl-C and SIGTERM (the store writer removes partial
output), and sets up logging on stderr.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import signal
import sys
import traceback
import warnings
from typing import Callable

import typer

from ncli.core import progress as _progress
from ncli.core.errors import NcliError, TemplatedError

log = logging.getLogger("ncli")
_ORIGINAL_SHOWWARNING = warnings.showwarning

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
