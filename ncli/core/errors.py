"""Exception types shared by every layer of ncli.

Every error a user can cause is an :class:`NcliError`. The command wrapper
(``ncli.commands._runtime``) prints it as one line on stderr::

    ncli <command>: error: <what> (<where>)
    hint: <hint>

and exits 1 (:class:`DataError`, runtime problems) or 2 (:class:`UsageError`).
"""

from __future__ import annotations

import re


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


class TemplatedError(NcliError):
    """An error whose text names parameters as ``{name}`` placeholders, never as flags.

    Models and simulators write every parameter name in braces
    (``"{n_units} must be at least 2, got 1"``). :meth:`render` fills the
    placeholders in: the command layer with the option's flag (``--units``),
    everyone else sees the parameter name itself (``str(err)``, ``err.what``),
    so models never name a command-line flag. A placeholder is a parameter
    name of the estimator (its ``__init__`` argument) or of the method called
    (``duration`` of ``sample``, ``finetune`` of ``fit``); ``method`` names the
    method choice of the command.

    Parameters
    ----------
    template : str
        The message (``what``) with ``{name}`` placeholders.
    where : str, optional
        Also a template (e.g. ``"{method} gru"``).
    hint : str, optional
        Also a template.
    """

    _PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

    def __init__(self, template: str, where: str | None = None, hint: str | None = None):
        self.template = template
        self.where_template = where
        self.hint_template = hint
        super().__init__(self._fill(template, _same), self._fill(where, _same), self._fill(hint, _same))

    @classmethod
    def _fill(cls, text: str | None, name_of) -> str | None:
        return None if text is None else cls._PLACEHOLDER.sub(lambda m: name_of(m.group(1)), text)

    def render(self, name_of) -> "TemplatedError":
        """A copy of this error with ``name_of(name)`` (e.g. a flag) in place of each placeholder.

        Parameters
        ----------
        name_of : callable
            ``name_of(param_name) -> str``.

        Returns
        -------
        TemplatedError
            Of the same class (and exit code), ``what``, ``where`` and ``hint`` filled in.
        """
        err = type(self).__new__(type(self))
        err.__dict__.update(self.__dict__)
        for attr, template in (("what", self.template), ("where", self.where_template),
                               ("hint", self.hint_template)):
            if getattr(self, attr) == self._fill(template, _same):  # not replaced since (e.g. where = a store)
                setattr(err, attr, self._fill(template, name_of))
        err.args = (err.what,)
        return err


def _same(name: str) -> str:
    return name


class ParameterError(TemplatedError, UsageError):
    """A hyperparameter out of its constraint (exit code 2), named by its parameter name.

    Parameters
    ----------
    param : str
        The parameter at fault (the estimator's ``__init__`` argument); the
        error's ``where`` is ``{param}`` unless ``where`` is given.
    template : str
        The message with ``{name}`` placeholders for parameter names.
    hint : str, optional
        Also a template.
    where : str, optional
        A template for ``where`` other than ``{param}`` (``"{duration}/{dt}"``).

    Examples
    --------
    >>> err = ParameterError("n_units", "{n_units} must be at least 2, got 1")
    >>> err.what
    'n_units must be at least 2, got 1'
    >>> err.render({"n_units": "--units"}.get).what
    '--units must be at least 2, got 1'
    """

    def __init__(self, param: str, template: str, hint: str | None = None, *, where: str | None = None):
        self.param = param
        super().__init__(template, "{" + param + "}" if where is None else where, hint)


class ParameterDataError(TemplatedError, DataError):
    """Data that does not fit the chosen parameter values (exit code 1), parameters as placeholders.

    Example: ``ParameterDataError("no population state recurs 3 times",
    hint="use fewer {n_levels}")``.

    Parameters
    ----------
    template : str
    where : str, optional
    hint : str, optional
        Templates, as for :class:`TemplatedError`.
    """
