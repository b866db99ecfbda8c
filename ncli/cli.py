"""The ``ncli`` command line: registers every subcommand on one Typer app."""

from __future__ import annotations

import typer

from ncli import __version__

app = typer.Typer(
    name="ncli",
    help="Composable command-line tools for neural population data. Each command reads an ncli "
    "store (Zarr v3), runs one model and prints the location of the store it writes, so steps "
    "chain in pipes: ncli convert s.nwb | ncli embed --method pca | ncli info",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ncli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """ncli: neural population data in composable steps."""


def _register() -> None:
    from ncli.commands import align, convert, decode, embed, export, fit_lds, info, simulate
    from ncli.commands._methods import register_command

    app.command("convert")(convert.convert)
    app.command("info")(info.info)
    app.command("export")(export.export)
    from ncli.commands import merge as merge_command
    app.command("merge")(merge_command.merge)
    register_command(app, "embed", embed.embed)
    register_command(app, "decode", decode.decode)
    register_command(app, "align", align.align)
    register_command(app, "fit-lds", fit_lds.fit_lds)
    from ncli.commands import plot as plot_command, spectrum as spectrum_command
    app.command("spectrum")(spectrum_command.spectrum)
    app.command("plot")(plot_command.plot)
    from ncli.commands import chunk as chunk_command
    register_command(app, "chunk", chunk_command.chunk)
    app.add_typer(simulate.app, name="simulate")


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    Parse errors (unknown option, bad value, missing argument) are reported as
    one line, ``ncli <command>: error: <what>; hint: ...``, with exit code 2.
    """
    import sys

    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
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
