"""The stdin/stdout protocol of ncli commands (DESIGN.md §3).

A command that reads a store takes its location as the first argument; when
that is omitted or ``-`` it reads one line from stdin. A command that writes a
store prints exactly one line to stdout: the location of its output.
"""

from __future__ import annotations

import sys

from ncli.core.errors import UsageError


def read_location(argument: str | None, *, stdin=None) -> str:
    """Resolve a store argument: the argument itself, or one line read from stdin.

    Parameters
    ----------
    argument : str or None
        The positional argument; ``None`` or ``"-"`` means read stdin.
    stdin : file, optional
        Stream to read (default ``sys.stdin``).

    Raises
    ------
    UsageError
        No argument and stdin is a terminal, or stdin is empty.
    """
    if argument not in (None, "-", ""):
        return str(argument)
    stream = stdin if stdin is not None else sys.stdin
    if stream is None or (hasattr(stream, "isatty") and stream.isatty()):
        raise UsageError("missing input store", "argument STORE",
                         hint="give a store path, or pipe one in: ncli convert x.nwb | ncli info")
    line = stream.readline().strip()
    if not line:
        raise UsageError("no store location on stdin", "stdin",
                         hint="the previous command in the pipe failed or printed nothing")
    return line


def emit_location(location: str, *, stdout=None) -> None:
    """Print the output store's location as the one line of stdout."""
    stream = stdout if stdout is not None else sys.stdout
    stream.write(f"{location}\n")
    stream.flush()
