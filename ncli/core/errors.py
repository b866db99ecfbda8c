"""Exception types shared by every layer of ncli.

Every error a user can cause is an :class:`NcliError`. The command wrapper
(``ncli.commands._common``) prints it as one line on stderr::

    ncli <command>: error: <what> (<where>)
    hint: <hint>

and exits 1 (:class:`DataError`, runtime problems) or 2 (:class:`UsageError`).
"""

from __future__ import annotations


class NcliError(Exception):
    """Base class for errors reported to the user as one line.

    Parameters
    ----------
    what : str
        The sentence that says what is wrong.
    where : str, optional
        The file, store path or argument concerned.
    hint : str, optional
        What the user can do about it.
    """

    exit_code = 1

    def __init__(self, what: str, where: str | None = None, hint: str | None = None):
        super().__init__(what)
        self.what = what
        self.where = where
        self.hint = hint

    def __str__(self) -> str:  # used in tests and logs
        return f"{self.what} ({self.where})" if self.where else self.what


class DataError(NcliError):
    """Bad or unreadable input data (exit code 1)."""

    exit_code = 1


class StoreError(DataError):
    """A store that is missing, malformed, or whose parent chain is broken."""


class UsageError(NcliError):
    """Bad arguments or options (exit code 2)."""

    exit_code = 2


class NotFittedError(NcliError):
    """A model method was called before ``fit``."""
