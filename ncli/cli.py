"""The ``ncli`` command line: every subcommand on one Typer app.

``ncli.cli.app`` holds every command (built on first access); the console entry point
:func:`main` registers only the command being run, so ``ncli convert`` never imports the
modules (torch, scikit-learn, the methods) of the others.
"""

from __future__ import annotations

import typer

from ncli import __version__


def _new_app() -> typer.Typer:
    """The root ``ncli`` app, without subcommands."""
    root = typer.Typer(
        name="ncli",
        help="Composable command-line tools for neural population data. Each command reads an ncli "
        "store (Zarr v3), runs one model and prints the location of the store it writes, so steps "
        "chain in pipes: ncli convert s.nwb | ncli embed --method pca | ncli info",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    root.callback()(_root)
    return root


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ncli {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """ncli: neural population data in composable steps."""


#: command -> (module, attribute, how it is registered): "plain" (a Typer command function),
#: "methods" (a method_command of the registry), "typer" (a sub-app).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "convert": ("ncli.commands.convert", "convert", "plain"),
    "info": ("ncli.commands.info", "info", "plain"),
    "export": ("ncli.commands.export", "export", "plain"),
    "merge": ("ncli.commands.merge", "merge", "plain"),
    "embed": ("ncli.commands.embed", "embed", "methods"),
    "decode": ("ncli.commands.decode", "decode", "methods"),
    "align": ("ncli.commands.align", "align", "methods"),
    "fit-lds": ("ncli.commands.fit_lds", "fit_lds", "methods"),
    "spectrum": ("ncli.commands.spectrum", "spectrum", "plain"),
    "plot": ("ncli.commands.plot", "plot", "plain"),
    "chunk": ("ncli.commands.chunk", "chunk", "methods"),
    "inpaint": ("ncli.commands.inpaint", "inpaint", "methods"),
    "simulate": ("ncli.commands.simulate", "app", "typer"),
}


def _register(target: typer.Typer, only: str | None = None) -> None:
    """Add every command (or only ``only``) to ``target``, importing just the modules it needs."""
    import importlib

    for name, (module, attr, how) in COMMANDS.items():
        if only is not None and name != only:
            continue
        obj = getattr(importlib.import_module(module), attr)
        if how == "plain":
            target.command(name)(obj)
        elif how == "typer":
            target.add_typer(obj, name=name)
        else:
            from ncli.commands._methods import register_command

            register_command(target, name, obj)


def __getattr__(name: str):
    """``ncli.cli.app``: the app with every command, built on first use (PEP 562)."""
    if name == "app":
        full = _new_app()
        _register(full)
        globals()["app"] = full
        return full
    raise AttributeError(f"module 'ncli.cli' has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    Parse errors (unknown option, bad value, missing argument) are reported as
    one line, ``ncli <command>: error: <what>; hint: ...``, with exit code 2.
    """
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:  # one command: import only what it needs (start-up time)
        lean = _new_app()
        _register(lean, only=args[0])
        command = typer.main.get_command(lean)
    else:
        command = typer.main.get_command(__getattr__("app"))
    try:
        rv = command.main(args=args, prog_name="ncli", standalone_mode=False)
    except Exception as exc:
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        ctx = getattr(exc, "ctx", None)
        path = ctx.command_path if ctx is not None else "ncli"
        name = path.split(" ", 1)[1] if " " in path else ""
        prefix = f"ncli {name}: " if name else "ncli: "
        msg = str(exc.format_message()).replace("\n", " ").strip()
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.stderr.write((ctx.get_help() if ctx is not None else msg) + "\n")
            raise SystemExit(2) from None
        sys.stderr.write(f"{prefix}error: {msg}; hint: see '{path} --help'\n")
        raise SystemExit(exc.exit_code) from None
    if isinstance(rv, int) and not isinstance(rv, bool):
        raise SystemExit(rv)


if __name__ == "__main__":  # pragma: no cover
    main()
