"""Commands whose options come from the method registry (``ncli.methods.registry``).

:func:`method_command` turns a command body into a Typer command whose
``--method`` choices and method-specific options are those registered for the
command. It

- adds every option that any method of the command declares (one CLI option
  per flag; methods that share a flag share the option);
- refuses, with one rule and one wording, an option the chosen method does
  not declare (``--alpha applies to --method ridge only``);
- checks the given values against the declared constraints and builds the
  method's ``Config`` (options not given keep *that method's* defaults);
- sets the flag map so that a model's :class:`~ncli.core.errors.ParameterError`
  is shown with the flag (``--steps must be at least 1``);
- shows, for ``--method M --help``, only M's options and the common ones.

The body receives ``plan``: a :class:`Plan` with the method class, its
config and which options were given.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Optional

import typer

from ncli.core.errors import UsageError
from ncli.methods import registry


@dataclass
class Plan:
    """What the command line chose: the method class, its ``Config``, and the options given.

    Attributes
    ----------
    method : type
        The registered :class:`~ncli.methods.registry.Method` subclass.
    config : Any
        An instance of ``method.Config``.
    given : set of str
        Field names of the method options the user gave explicitly.
    """

    method: type
    config: Any
    given: set = field(default_factory=set)

    def build(self):
        """An instance of the method adapter with its config."""
        return self.method(self.config)


class _MethodHelpCommand(typer.core.TyperCommand):
    """A Typer command whose ``--help`` lists only the chosen ``--method``'s options."""

    ncli_command_name: str = ""
    ncli_method_flags: dict = {}

    def parse_args(self, ctx, args):  # noqa: D401 - click API
        ctx.meta["ncli_method"] = _peek_method(args)
        return super().parse_args(ctx, args)

    def format_options(self, ctx, formatter):
        chosen = ctx.meta.get("ncli_method")
        table = registry.methods(self.ncli_command_name)
        defaults = {f.flag: f for f in table[chosen].fields()} if chosen in table else {}
        keep_flags = set(defaults) if chosen in table else None
        records_args, records_opts = [], []
        for param in self.get_params(ctx):
            flag = param.opts[0] if getattr(param, "opts", None) else None
            is_method_option = flag in self.ncli_method_flags
            if keep_flags is not None and is_method_option and flag not in keep_flags:
                continue
            if flag in defaults and param.param_type_name == "option":
                param = _with_default(param, defaults[flag].default, defaults[flag].spec.help)
            rv = param.get_help_record(ctx)
            if rv is None:
                continue
            (records_args if param.param_type_name == "argument" else records_opts).append(rv)
        if records_args:
            with formatter.section("Arguments"):
                formatter.write_dl(records_args)
        if records_opts:
            title = f"Options (--method {chosen} and common)" if keep_flags is not None else "Options"
            with formatter.section(title):
                formatter.write_dl(records_opts)


def _with_default(param, default, help_text: str):
    """A copy of a click option that shows one method's ``default`` and help text."""
    import copy

    p = copy.copy(param)
    p.default = default
    p.help = help_text
    p.show_default = default is not None and default != [] and not isinstance(default, bool)
    return p


def _peek_method(args: list[str]) -> str | None:
    """The value of ``--method`` in raw argv (``--method X`` or ``--method=X``), if any."""
    for i, a in enumerate(args):
        if a == "--method" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--method="):
            return a.split("=", 1)[1]
    return None


def _union_fields(command: str) -> dict[str, list[registry.Field]]:
    """Flag -> the fields (of every method) that declare it, in registration order."""
    out: dict[str, list[registry.Field]] = {}
    for m in registry.methods(command).values():
        for f in m.fields():
            out.setdefault(f.flag, []).append(f)
    return out


def _cli_parameter(flag: str, fields: list[registry.Field], takers: list[str]) -> tuple[str, inspect.Parameter]:
    """The Typer parameter for one method option shared by ``takers``."""
    f = fields[0]
    tp = registry._base_type(f.type)
    defaults = {repr(x.default) for x in fields}
    same_default = len(defaults) == 1
    prefix = f"{', '.join(takers)}: " if takers else ""
    help_text = prefix + f.spec.help
    if not same_default and tp is not bool:
        help_text += " (default: " + ", ".join(f"{t} {x.default}" for t, x in zip(takers, fields)) + ")"
    decls = [flag] + ([f.spec.short] if f.spec.short else [])
    if tp is bool:
        if f.spec.secondary:
            decls = [f"{flag}/{f.spec.secondary}"]
        annotation = bool
        default = bool(f.default)
        show = True
    elif _is_list(tp):
        annotation = Optional[list[str]]
        default = None
        show = False
    else:
        annotation = Optional[tp]
        default = f.default if same_default else None
        show = f.spec.show_default and same_default and f.default is not None
    kw = {"help": help_text, "show_default": show}
    if f.spec.metavar:
        kw["metavar"] = f.spec.metavar
    pname = "m_" + f.name
    param = inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, default=default,
                              annotation=Annotated[annotation, typer.Option(*decls, **kw)])
    return pname, param


def _is_argument(p: inspect.Parameter) -> bool:
    """True for a parameter declared as a Typer argument (``Annotated[..., typer.Argument()]``)."""
    import typing

    meta = typing.get_args(p.annotation)[1:] if typing.get_origin(p.annotation) is Annotated else ()
    return any(type(m).__name__ == "ArgumentInfo" for m in meta)


def _is_list(tp) -> bool:
    import typing

    return typing.get_origin(tp) in (list, tuple)


def method_command(command: str, *, default: str | None = None, required: bool = False,
                   resolve: Callable[[str, dict], str] | None = None) -> Callable:
    """Decorate a command body so its ``--method`` and method options come from the registry.

    Parameters
    ----------
    command : str
        The command whose registered methods apply.
    default : str, optional
        The default ``--method`` (default: the first registered method).
    required : bool
        ``--method`` has no default: without it the command stops with
        ``missing --method`` (exit 2), the hint listing the methods.
    resolve : callable, optional
        ``resolve(method_name, common_kwargs) -> method_name``: lets the command
        pick another registered method from its common options (``decode
        --target units/area`` runs the unit probe).

    The body's signature lists the common options (Typer annotations) and a
    keyword-only ``plan`` parameter; it must not declare ``method``.
    """

    def decorate(body: Callable) -> Callable:
        table = registry.methods(command)
        if not table:
            raise TypeError(f"no methods registered for '{command}'")
        chosen_default = None if required else (default or next(iter(table)))
        union = _union_fields(command)
        sig = inspect.signature(body)
        # resolve string annotations (``from __future__ import annotations`` in the command's module)
        # here: Typer would evaluate them in this module's globals
        import typing

        hints = typing.get_type_hints(body, include_extras=True)
        sig = sig.replace(parameters=[p.replace(annotation=hints.get(p.name, p.annotation))
                                      for p in sig.parameters.values()])
        common = [p for p in sig.parameters.values() if p.name != "plan"]
        method_help = "Method: " + "; ".join(f"{n} ({m.summary})" if m.summary else n for n, m in table.items()) + "."
        method_param = inspect.Parameter(
            "method", inspect.Parameter.KEYWORD_ONLY, default=chosen_default,
            annotation=Annotated[Optional[str] if required else str,
                                 typer.Option("--method", help=method_help, show_default=not required)])
        extra: dict[str, tuple[str, list[registry.Field]]] = {}
        params = []
        for flag, fields in union.items():
            takers = [n for n, m in table.items() if any(f.flag == flag for f in m.fields())]
            pname, p = _cli_parameter(flag, fields, takers)
            extra[pname] = (flag, fields)
            params.append(p)
        positional = [p for p in common if _is_argument(p)]
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in common if p not in positional]
        ctx_param = inspect.Parameter("ncli_ctx", inspect.Parameter.KEYWORD_ONLY, default=None,
                                      annotation=typer.Context)
        new_sig = inspect.Signature(positional + [method_param] + params + keyword + [ctx_param])

        @functools.wraps(body)
        def wrapper(*args, **kwargs):
            from ncli.commands._runtime import FLAGS

            ctx = kwargs.pop("ncli_ctx", None)
            name = kwargs.pop("method")
            if name is None:
                raise UsageError("missing --method", "--method", hint="choose one of: " + ", ".join(table))
            method_values = {k: kwargs.pop(k) for k in list(kwargs) if k in extra}
            name = resolve(name, kwargs) if resolve is not None else name
            method = registry.get(command, name)
            own = {f.flag: f for f in method.fields()}
            given: dict[str, Any] = {}
            for pname, value in method_values.items():
                flag, _ = extra[pname]
                if not _was_given(ctx, pname, value):
                    continue
                if flag not in own:
                    raise registry.foreign_option_error(command, flag, name)
                given[own[flag].name] = list(value) if isinstance(value, (list, tuple)) else value
            config = registry.make_config(method, given)
            FLAGS.set({**FLAGS.get(), **method.flags()})
            return body(*args, plan=Plan(method, config, set(given)), **kwargs)

        wrapper.__signature__ = new_sig  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in new_sig.parameters.values()}
        del wrapper.__wrapped__  # Typer must read the built signature, not the body's
        wrapper.ncli_method_command = command  # type: ignore[attr-defined]
        wrapper.ncli_method_flags = {flag: fields for flag, fields in union.items()}  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _was_given(ctx, pname: str, value: Any) -> bool:
    """True when the user gave the option (not its default)."""
    if ctx is not None and hasattr(ctx, "get_parameter_source"):
        src = ctx.get_parameter_source(pname)
        if src is not None:
            return src.name not in ("DEFAULT", "DEFAULT_MAP")
    return value is not None and value != []


def register_command(app: typer.Typer, name: str, fn: Callable) -> None:
    """Add ``fn`` to ``app`` as ``name``; a :func:`method_command` gets the method-aware help."""
    command = getattr(fn, "ncli_method_command", None)
    if command is None:
        app.command(name)(fn)
        return
    cls = type(f"{name.title()}Command", (_MethodHelpCommand,),
               {"ncli_command_name": command, "ncli_method_flags": fn.ncli_method_flags})
    app.command(name, cls=cls)(fn)

