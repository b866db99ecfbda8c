"""The method registry: one adapter class per (command, method), with a ``Config`` dataclass.

Adding a method to a command is one module under ``ncli/methods/<command>/``
that defines a :class:`Method` subclass and decorates it with
:func:`register`. The command builds its ``--method`` choices and its
method-specific options from the registry (``ncli.commands._methods``), so an
option the chosen method does not declare is refused by one rule, and
``ncli <command> --method M --help`` lists only what M takes.

A ``Config`` is a plain dataclass whose fields are declared with
:func:`option`, which records the field's help, its flag, and its
constraints. The field name is the parameter name the method passes on (for
example to an estimator); the flag is only the command line's spelling.

Example
-------
::

    @dataclass
    class LinearConfig:
        alpha: float = option(0.0, "Ridge penalty.", minimum=0.0)

    @register
    class Linear(DecodeMethod):
        name = "linear"
        summary = "zero-lag least squares"
        Config = LinearConfig
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
from dataclasses import dataclass
from typing import Any, ClassVar

from ncli.core.errors import UsageError

_REGISTRY: dict[str, dict[str, type["Method"]]] = {}
_DISCOVERED = False


@dataclass(frozen=True)
class OptionSpec:
    """How one ``Config`` field appears on the command line, and its constraints.

    Attributes
    ----------
    help : str
        One sentence for ``--help``.
    flag : str, optional
        The option's flag; default ``--`` + the field name with ``-`` for ``_``.
    secondary : str, optional
        The negative flag of a boolean (``--no-sqrt``).
    short : str, optional
        A one-letter alias (``-k``).
    minimum, maximum : float, optional
        Inclusive bounds.
    positive : bool
        Must be > 0.
    finite : bool
        Numbers must be finite (default True).
    choices : tuple of str, optional
        Allowed string values.
    requires : str, optional
        Name of another field of the same ``Config`` that must be set (truthy)
        for this option to apply (``--spikes`` needs ``--stream``).
    param : str, optional
        The estimator parameter this field feeds when its name differs, so an
        estimator's :class:`~ncli.core.errors.ParameterError` is shown with
        this field's flag.
    metavar : str, optional
    show_default : bool
    """

    help: str
    flag: str | None = None
    secondary: str | None = None
    short: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    finite: bool = True
    choices: tuple[str, ...] | None = None
    requires: str | None = None
    param: str | None = None
    metavar: str | None = None
    show_default: bool = True


def option(default: Any = None, help: str = "", *, factory=None, **spec) -> Any:
    """A ``Config`` field with its command-line spec (see :class:`OptionSpec` for ``spec``).

    Parameters
    ----------
    default : Any
        The method's default value (``None``: not set).
    help : str
    factory : callable, optional
        ``default_factory`` for mutable defaults (lists).
    """
    meta = {"ncli": OptionSpec(help=help, **spec)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Field:
    """One option of a method, as the command line sees it."""

    name: str
    type: Any
    default: Any
    spec: OptionSpec

    @property
    def flag(self) -> str:
        """The option's flag (``--n-latents``)."""
        return self.spec.flag or "--" + self.name.replace("_", "-")


def fields_of(config_cls: type) -> list[Field]:
    """The options of a ``Config`` dataclass, in declaration order.

    Raises
    ------
    TypeError
        A field declared without :func:`option`.
    """
    import typing

    hints = typing.get_type_hints(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        spec = f.metadata.get("ncli")
        if spec is None:
            raise TypeError(f"{config_cls.__name__}.{f.name} is not declared with option()")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        out.append(Field(f.name, hints[f.name], default, spec))
    return out


@dataclass
class NoConfig:
    """The ``Config`` of a method without options of its own."""


@dataclass(frozen=True)
class Example:
    """A small, seeded invocation of a method, for the registry's generated contract tests.

    Attributes
    ----------
    setup : list of list of str
        A chain of commands that makes the input: step ``i`` writes
        ``{setup<i>}`` and may name earlier outputs; the last one is the
        input, e.g. ``[["simulate", "nuclr"], ["embed", "{setup0}", "--method",
        "nuclr", "--steps", "3"]]``.
    args : list of str
        The method's own arguments after ``ncli <command> {input} --method M``.
    split : (str, str), optional
        A training and a test session of the input, for the ``causal``
        check (``--train-sessions A --test-sessions B``: only the test
        session's later input is changed).
    """

    setup: tuple[tuple[str, ...], ...]
    args: tuple[str, ...] = ()
    split: tuple[str, str] | None = None


class Method:
    """Base of every method adapter: ``command``/``name`` identify it, ``Config`` declares its options.

    Class attributes
    ----------------
    command : str
        The subcommand (``"decode"``).
    name : str
        The ``--method`` value (``"ridge"``).
    summary : str
        One line for ``--help`` and ``docs/``.
    Config : type
        A dataclass of :func:`option` fields; :class:`NoConfig` when there are none.
    estimator : type or str, optional
        The :class:`~ncli.models.base.Estimator` it fits, or its
        ``"module:Class"`` path so the CLI need not import torch to list
        methods (contract tests check its error before fitting and that the
        method saves at least one).
    invariances : tuple of str
        Properties the generated contract tests check: ``"seed"``
        (determinism, every method), ``"permutation"`` (unit order does not
        matter), ``"causal"`` (a prediction never depends on later input),
        the unit-order and causality checks need ``example`` to have two
        sessions (``split``) for ``"causal"``.
    example : Example, optional
        The invocation the contract tests run.
    """

    command: ClassVar[str] = ""
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig
    estimator: ClassVar[type | str | None] = None
    invariances: ClassVar[tuple[str, ...]] = ("seed",)
    example: ClassVar[Example | None] = None

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    @classmethod
    def estimator_class(cls) -> type | None:
        """The estimator class (imported now when ``estimator`` is a ``"module:Class"`` path)."""
        est = cls.estimator
        if isinstance(est, str):
            module, _, name = est.partition(":")
            return getattr(importlib.import_module(module), name)
        return est

    @classmethod
    def fields(cls) -> list[Field]:
        """This method's options."""
        return fields_of(cls.Config)

    @classmethod
    def flags(cls) -> dict[str, str]:
        """Parameter name -> flag, for rendering :class:`~ncli.core.errors.ParameterError`.

        Both the field name and the estimator parameter it feeds (``spec.param``) map to the flag.
        """
        out = {}
        for f in cls.fields():
            out[f.name] = f.flag
            if f.spec.param:
                out[f.spec.param] = f.flag
        return out


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: add a :class:`Method` subclass to the registry.

    Raises
    ------
    TypeError
        No ``command``/``name``, a duplicate, or an option whose flag another
        method of the same command declares with another type.
    """
    if not cls.command or not cls.name:
        raise TypeError(f"{cls.__name__} needs class attributes 'command' and 'name'")
    table = _REGISTRY.setdefault(cls.command, {})
    if cls.name in table and table[cls.name] is not cls:
        raise TypeError(f"method '{cls.name}' of '{cls.command}' is registered twice")
    mine = {f.flag: f for f in cls.fields()}
    for other in table.values():
        for f in other.fields():
            if f.flag in mine and _base_type(mine[f.flag].type) != _base_type(f.type):
                raise TypeError(f"{cls.command} {f.flag}: {cls.name} declares {mine[f.flag].type}, "
                                f"{other.name} {f.type}")
    table[cls.name] = cls
    return cls


def _base_type(tp: Any) -> Any:
    """``Optional[int]`` -> ``int``."""
    import types
    import typing

    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return tp


_DISCOVERED_COMMANDS: set[str] = set()


def discover(command: str | None = None) -> None:
    """Import the modules under :mod:`ncli.methods` once, so their ``@register`` runs.

    With ``command``, only that command's package (``ncli.methods.fit_lds`` for ``fit-lds``)
    is imported, so running one command never imports the others' methods (and their
    dependencies); without, every package is.
    """
    global _DISCOVERED
    if _DISCOVERED or (command is not None and command in _DISCOVERED_COMMANDS):
        return
    import ncli.methods as pkg

    if command is not None:
        _DISCOVERED_COMMANDS.add(command)
        name = f"ncli.methods.{command.replace('-', '_')}"
        try:
            sub = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            return
        for info in pkgutil.walk_packages(sub.__path__, prefix=name + "."):
            importlib.import_module(info.name)
        return
    _DISCOVERED = True
    for info in pkgutil.walk_packages(pkg.__path__, prefix="ncli.methods."):
        importlib.import_module(info.name)


def methods(command: str) -> dict[str, type[Method]]:
    """Every registered method of ``command``, by name, in registration order."""
    discover(command)
    return dict(_REGISTRY.get(command, {}))


def commands() -> list[str]:
    """The commands that have registered methods."""
    discover()
    return sorted(_REGISTRY)


def get(command: str, name: str) -> type[Method]:
    """The method ``name`` of ``command``.

    Raises
    ------
    UsageError
        Unknown method; the hint lists the registered ones.
    """
    table = methods(command)
    if name not in table:
        raise UsageError(f"invalid value '{name}' for --method", "--method",
                         hint=f"choose one of: {', '.join(table)}")
    return table[name]


def check_value(f: Field, value: Any) -> None:
    """Check one given option value against its field's constraints.

    Raises
    ------
    UsageError
        Non-finite number, out of bounds, or not one of ``choices``; worded as
        ``--flag must be ...`` like every other option check of ncli.
    """
    s, flag = f.spec, f.flag
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if v is None or isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            if s.finite and isinstance(v, float) and not math.isfinite(v):
                raise UsageError(f"{flag} must be a finite number, got {v}", flag)
            integer = isinstance(v, int)
            if s.positive and v <= 0:
                raise UsageError(f"{flag} must be {'a positive integer' if integer else '> 0'}, got {v:g}", flag)
            if s.minimum is not None and v < s.minimum:
                raise UsageError(f"{flag} must be at least {s.minimum:g}, got {v:g}" if integer else
                                 f"{flag} must be >= {s.minimum:g}, got {v:g}", flag)
            if s.maximum is not None and v > s.maximum:
                raise UsageError(f"{flag} must be at most {s.maximum:g}, got {v:g}" if integer else
                                 f"{flag} must be <= {s.maximum:g}, got {v:g}", flag)
        if s.choices is not None and isinstance(v, str) and v not in s.choices:
            raise UsageError(f"invalid value '{v}' for {flag}", flag, hint=f"choose one of: {', '.join(s.choices)}")


def make_config(method: type[Method], given: dict[str, Any]) -> Any:
    """Build ``method.Config`` from the options given on the command line (others keep the method's defaults).

    Parameters
    ----------
    method : Method subclass
    given : dict
        Field name -> value, only for options the user gave.

    Raises
    ------
    UsageError
        A value out of its constraint, or an option given without the option it requires.
    """
    by_name = {f.name: f for f in method.fields()}
    for name, value in given.items():
        check_value(by_name[name], value)
    config = method.Config(**given)
    for name in given:
        req = by_name[name].spec.requires
        if req and not getattr(config, req):
            raise UsageError(f"{by_name[name].flag} applies to {by_name[req].flag} only", by_name[name].flag)
    return config


def foreign_option_error(command: str, flag: str, method: str) -> UsageError:
    """The one error for an option that ``--method`` does not take: names the methods that do."""
    takers = [n for n, m in methods(command).items() if any(f.flag == flag for f in m.fields())]
    return UsageError(f"{flag} applies to --method {', '.join(takers)} only", flag,
                      hint=f"--method {method} does not take it; see 'ncli {command} --method {method} --help'")
